/* metrics_listen.c - /metrics on its own address (--metrics-listen), for an internal network:
 * one thread with its own loop, answering `GET /metrics` and closing each connection. Small by
 * design: a request of up to 4 KiB read within 10 seconds, at most 16 connections at a time, no
 * keep-alive. Anything else than GET /metrics is 404. */
#include "server/metrics_listen.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "server/app.h"
#include "util/log.h"
#include "util/rbuf.h"

#define REQ_MAX    4096
#define CONNS_MAX  16
#define TIMEOUT_MS 10000

struct metrics_listener {
    struct app *app;
    uv_loop_t loop;
    uv_tcp_t srv;
    uv_async_t stop;
    uv_thread_t th;
    int nconns;
};

struct mconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct metrics_listener *ml;
    char req[REQ_MAX];
    size_t len;
    char *resp;
    int closing, handles;
};

static void mconn_closed(uv_handle_t *h)
{
    struct mconn *mc = h->data;
    if (--mc->handles) return;
    mc->ml->nconns--;
    free(mc->resp);
    free(mc);
}

static void mconn_close(struct mconn *mc)
{
    if (mc->closing) return;
    mc->closing = 1;
    uv_close((uv_handle_t *)&mc->tcp, mconn_closed);
    uv_close((uv_handle_t *)&mc->timer, mconn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    mconn_close(w->data);
}

static void respond(struct mconn *mc)
{
    size_t len = 0, cap = 8192, hl;
    char *body = xmalloc(cap), head[160];
    int ok = !strncmp(mc->req, "GET /metrics ", 13) || !strncmp(mc->req, "GET /metrics? ", 14);
    uv_buf_t b;

    uv_read_stop((uv_stream_t *)&mc->tcp);
    if (ok)
        app_metrics_render(mc->ml->app, &body, &len, &cap);
    else
        len = (size_t)snprintf(body, cap, "not found: only GET /metrics is served here\n");
    hl = (size_t)snprintf(head, sizeof(head),
                          "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          ok ? "200 OK" : "404 Not Found", len);
    mc->resp = xmalloc(hl + len);
    memcpy(mc->resp, head, hl);
    memcpy(mc->resp + hl, body, len);
    free(body);
    b = uv_buf_init(mc->resp, (unsigned)(hl + len));
    mc->wr.data = mc;
    if (uv_write(&mc->wr, (uv_stream_t *)&mc->tcp, &b, 1, on_written)) mconn_close(mc);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct mconn *mc = h->data;
    (void)hint;
    *buf = uv_buf_init(mc->req + mc->len, (unsigned)(REQ_MAX - 1 - mc->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct mconn *mc = s->data;
    (void)buf;
    if (n < 0) {
        mconn_close(mc);
        return;
    }
    mc->len += (size_t)n;
    mc->req[mc->len] = '\0';
    if (strstr(mc->req, "\r\n\r\n") || strstr(mc->req, "\n\n"))
        respond(mc);
    else if (mc->len >= REQ_MAX - 1)
        mconn_close(mc); /* a request too large for this endpoint */
}

static void on_timeout(uv_timer_t *t)
{
    mconn_close(t->data);
}

static void on_conn(uv_stream_t *srv, int status)
{
    struct metrics_listener *ml = srv->data;
    struct mconn *mc;

    if (status < 0) return;
    mc = xcalloc(1, sizeof(*mc));
    mc->ml = ml;
    uv_tcp_init(&ml->loop, &mc->tcp);
    uv_timer_init(&ml->loop, &mc->timer);
    mc->tcp.data = mc->timer.data = mc;
    mc->handles = 2;
    ml->nconns++;
    if (uv_accept(srv, (uv_stream_t *)&mc->tcp) || ml->nconns > CONNS_MAX) {
        mconn_close(mc);
        return;
    }
    uv_timer_start(&mc->timer, on_timeout, TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&mc->tcp, on_alloc, on_read);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) return;
    if (h->type == UV_TCP && h->data &&
        h != (uv_handle_t *)&((struct metrics_listener *)arg)->srv) {
        mconn_close(h->data);
        return;
    }
    if (h->type == UV_TIMER) return; /* closed with its connection */
    uv_close(h, NULL);
}

static void on_stop(uv_async_t *a)
{
    struct metrics_listener *ml = a->data;
    uv_walk(&ml->loop, close_any, ml);
}

static void run(void *arg)
{
    struct metrics_listener *ml = arg;
    uv_run(&ml->loop, UV_RUN_DEFAULT);
}

int metrics_listen_start(struct app *app, const char *addr, struct metrics_listener **out)
{
    struct metrics_listener *ml = xcalloc(1, sizeof(*ml));
    struct sockaddr_storage ss;
    int rc;

    *out = NULL;
    ml->app = app;
    if (net_parse_addr(addr, &ss)) {
        log_error("invalid --metrics-listen", "\"value\":\"%s\",\"expected\":\"host:port\"", addr);
        free(ml);
        return -1;
    }
    uv_loop_init(&ml->loop);
    uv_tcp_init(&ml->loop, &ml->srv);
    ml->srv.data = ml;
    uv_async_init(&ml->loop, &ml->stop, on_stop);
    ml->stop.data = ml;
    if ((rc = uv_tcp_bind(&ml->srv, (const struct sockaddr *)&ss, 0)) ||
        (rc = uv_listen((uv_stream_t *)&ml->srv, 64, on_conn))) {
        log_error("cannot listen for metrics", "\"addr\":\"%s\",\"error\":\"%s\"", addr,
                  uv_strerror(rc));
        uv_close((uv_handle_t *)&ml->srv, NULL);
        uv_close((uv_handle_t *)&ml->stop, NULL);
        uv_run(&ml->loop, UV_RUN_DEFAULT);
        uv_loop_close(&ml->loop);
        free(ml);
        return -1;
    }
    if (uv_thread_create(&ml->th, run, ml)) {
        log_error("cannot start the metrics thread", "\"addr\":\"%s\"", addr);
        abort();
    }
    log_info("metrics listening", "\"addr\":\"%s\"", addr);
    *out = ml;
    return 0;
}

void metrics_listen_stop(struct metrics_listener *ml)
{
    if (!ml) return;
    uv_async_send(&ml->stop);
    uv_thread_join(&ml->th);
    uv_loop_close(&ml->loop);
    free(ml);
}
