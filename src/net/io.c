/* io.c - I/O threads: one libuv loop each, own listener, inbox, end-of-iteration flush, tick. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/net.h"
#include "util/log.h"
#include "util/status.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t net_epoch_ms;

uint64_t net_now_ms(void)
{
    return mono_ms() - net_epoch_ms;
}

int slice_eq(struct slice a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.p, lit, n) == 0;
}

int slice_case_eq(struct slice a, const char *lit)
{
    size_t n = strlen(lit);
    if (a.len != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a.p[i], y = lit[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}

void net_post(struct net_io *io, struct net_task *t)
{
    mpsc_push(&io->inbox, &t->node);
    uv_async_send(&io->wake);
}

static void io_on_connection(uv_stream_t *listener, int status)
{
    struct net_io *io = listener->data;
    if (status < 0) {
        log_warn("accept failed", "\"error\":\"%s\"", uv_strerror(status));
        return;
    }
    net__conn_accept(io, listener);
}

static void io_close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void io_maybe_finish(struct net_io *io)
{
    if (!io->draining) return;
    if (io->nconns == 0 || net_now_ms() >= io->drain_deadline_ms) {
        if (io->nconns) {
            log_warn("drain deadline passed, closing connections", "\"thread\":%d,\"open\":%u",
                     io->index, io->nconns);
            for (struct conn *c = io->conns; c; c = c->next)
                conn_abort(c);
            if (io->nconns) return; /* wait for close callbacks and async work */
        }
        uv_stop(&io->loop);
    }
}

static void io_start_drain(struct net_io *io)
{
    if (io->draining) return;
    io->draining = 1;
    io->drain_deadline_ms = net_now_ms() + (uint64_t)io->srv->lim.drain_timeout * 1000;
    if (!uv_is_closing((uv_handle_t *)&io->listener)) uv_close((uv_handle_t *)&io->listener, NULL);
    net__conn_drain(io);
    io_maybe_finish(io);
}

static void io_on_wake(uv_async_t *a)
{
    struct net_io *io = a->data;
    struct mpsc_node *n;

    while ((n = mpsc_pop(&io->inbox))) {
        struct net_task *t = mpsc_entry(n, struct net_task, node);
        t->run(io, t);
    }
    if (atomic_load(&io->srv->draining)) io_start_drain(io);
}

static void io_on_check(uv_check_t *h)
{
    struct net_io *io = h->data;
    if (io->srv->h.on_loop_end) io->srv->h.on_loop_end(io);
    net__conn_flush_all(io);
    if (io->draining) io_maybe_finish(io);
}

/* Before polling: flush what timers queued (uv_check alone would wait for the poll to return). */
static void io_on_prepare(uv_prepare_t *h)
{
    struct net_io *io = h->data;
    if (io->srv->h.on_loop_end) io->srv->h.on_loop_end(io);
    net__conn_flush_all(io);
}

static void io_on_tick(uv_timer_t *t)
{
    struct net_io *io = t->data;
    io->now_s = (uint32_t)(net_now_ms() / 1000);
    net__conn_tick(io);
    if (io->srv->h.on_tick) io->srv->h.on_tick(io);
    io_maybe_finish(io);
}

static void io_thread_main(void *arg)
{
    struct net_io *io = arg;
    struct net_server *s = io->srv;

    if (s->h.on_thread_start) s->h.on_thread_start(io);
    uv_run(&io->loop, UV_RUN_DEFAULT);
    /* Drained. Handles stay open until net_free, so late net_post calls (the storage writer
     * finishing its queue) remain safe; their tasks run in net_free. */
}

int net_parse_addr(const char *addr, struct sockaddr_storage *ss)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    int port;
    size_t hl;

    if (!colon) return -1;
    port = atoi(colon + 1);
    if (port < 0 || port > 65535) return -1; /* 0: any port (tests, one thread) */
    hl = (size_t)(colon - addr);
    if (hl >= sizeof(host)) return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss);
    }
    if (hl == 0) strcpy(host, "0.0.0.0");
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

static int io_listen(struct net_io *io, const struct sockaddr_storage *ss)
{
    int one = 1, fd, rc;
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, (const struct sockaddr *)ss, len) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    uv_tcp_init(&io->loop, &io->listener);
    io->listener.data = io;
    if ((rc = uv_tcp_open(&io->listener, fd)) < 0) return rc;
    return uv_listen((uv_stream_t *)&io->listener, 4096, io_on_connection);
}

/* SO_REUSEPORT would let a second chatd on the same port silently take half the connections:
 * probe the address without it first so a port in use fails loudly. */
static int probe_free(const struct sockaddr_storage *ss)
{
    int one = 1, rc = 0, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd < 0) return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0) rc = -errno;
    close(fd);
    return rc;
}

int net_start(struct net_server *s, const char *addr, int nthreads)
{
    struct sockaddr_storage ss;
    int rc;

    if (!net_epoch_ms) net_epoch_ms = mono_ms() - 1;
    memset(&ss, 0, sizeof(ss));
    if (net_parse_addr(addr, &ss)) {
        log_error("invalid listen address", "\"listen\":\"%s\"", addr);
        return CD_E_IO;
    }
    if ((rc = probe_free(&ss)) < 0) {
        log_error("cannot listen", "\"listen\":\"%s\",\"error\":\"%s\"", addr, uv_strerror(rc));
        return CD_E_IO;
    }
    s->nio = nthreads;
    s->io = xcalloc((size_t)nthreads, sizeof(*s->io));
    atomic_init(&s->nconns, 0);
    atomic_init(&s->draining, 0);
    s->start_ms = net_now_ms();
    for (int i = 0; i < nthreads; i++) {
        struct net_io *io = &s->io[i];
        io->srv = s;
        io->index = i;
        uv_loop_init(&io->loop);
        io->loop.data = io;
        mpsc_init(&io->inbox);
        uv_async_init(&io->loop, &io->wake, io_on_wake);
        io->wake.data = io;
        uv_check_init(&io->loop, &io->flush);
        io->flush.data = io;
        uv_check_start(&io->flush, io_on_check);
        uv_prepare_init(&io->loop, &io->preflush);
        io->preflush.data = io;
        uv_prepare_start(&io->preflush, io_on_prepare);
        uv_timer_init(&io->loop, &io->tick);
        io->tick.data = io;
        uv_timer_start(&io->tick, io_on_tick, 1000, 1000);
        io->rbuf = xmalloc(NET_READ_BUF);
        io->iov = xcalloc(NET_IOV_MAX, sizeof(uv_buf_t));
        if ((rc = io_listen(io, &ss)) < 0) {
            log_error("cannot listen", "\"listen\":\"%s\",\"error\":\"%s\"", addr, uv_strerror(rc));
            return CD_E_IO;
        }
    }
    for (int i = 0; i < nthreads; i++)
        uv_thread_create(&s->io[i].thread, io_thread_main, &s->io[i]);
    return CD_OK;
}

void net_drain(struct net_server *s)
{
    atomic_store(&s->draining, 1);
    for (int i = 0; i < s->nio; i++)
        uv_async_send(&s->io[i].wake);
}

void net_join(struct net_server *s)
{
    for (int i = 0; i < s->nio; i++)
        uv_thread_join(&s->io[i].thread);
}

void net_free(struct net_server *s)
{
    for (int i = 0; i < s->nio; i++) {
        struct net_io *io = &s->io[i];
        struct mpsc_node *n;
        /* Late tasks run here, on the joining thread, as if on io (its thread is gone). */
        while ((n = mpsc_pop(&io->inbox))) {
            struct net_task *t = mpsc_entry(n, struct net_task, node);
            t->run(io, t);
        }
        if (s->h.on_thread_stop) s->h.on_thread_stop(io);
        uv_walk(&io->loop, io_close_handle, NULL);
        uv_run(&io->loop, UV_RUN_DEFAULT);
        uv_loop_close(&io->loop);
        free(io->rbuf);
        free(io->iov);
    }
    free(s->io);
    s->io = NULL;
}
