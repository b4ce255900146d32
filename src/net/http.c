/* http.c - http-parser glue with limits, request dispatch, responses, WebSocket upgrade. */
#include <assert.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/http.h"
#include "net/proxy.h"
#include "trace/trace.h"
#include "util/log.h"
#include "util/status.h"

struct hdr_span {
    uint32_t name_off, name_len, value_off, value_len;
};

struct http_state {
    http_parser parser;
    uint8_t in_request;  /* first byte of a request seen */
    uint8_t complete;    /* on_message_complete fired */
    uint8_t last_value;  /* last header callback was a value */
    uint8_t dispatching; /* inside net__http_input's dispatch */
    uint8_t dispatched;  /* the complete request went to the handler (until the reset) */
    int error;           /* HTTP status to answer with, set by a callback that hit a limit */
    uint32_t since;      /* now_s at request start (or connection / last response) */
    char rid[HTTP_REQUEST_ID_LEN + 1]; /* request id, from the request's first byte on */
    uint64_t start_ms;
    uint64_t start_ns;                /* unix ns at the first byte, tracing only */
    struct trace_span *span;          /* the request's span (tracing on), until the response */
    char tid[33];                     /* its trace id in hex, "" without one */
    char peer[PROXY_IP_LEN + 1];      /* the TCP peer's address, once per connection */
    char client_ip[PROXY_IP_LEN + 1]; /* the request's client (proxy.h), "" before dispatch */
    char *text;                       /* URL and header bytes */
    uint32_t text_len, text_cap;
    uint32_t url_len; /* URL is text[0..url_len) */
    struct hdr_span *spans;
    uint32_t nspans, spans_cap;
    char *body;
    uint32_t body_len, body_cap;
    struct http_header *headers; /* built at dispatch */
    char *add_headers;           /* http_add_response_headers, until the response */
    uint32_t add_len;
    uint8_t streaming; /* the body goes to on_stream_data, not into body */
    uint8_t answered;  /* on_stream_begin/data answered early: the rest of the input is dropped */
    uint8_t streamed_response; /* http_respond_begin sent the head; body follows, then _end */
    void *stream; /* the server layer's state of a streamed request (http_stream_set) */
    void (*on_drain)(struct conn *c); /* http_on_drain, one-shot */
};

static const struct net_limits *lim_of(http_parser *p)
{
    struct conn *c = p->data;
    return &c->io->srv->lim;
}

static struct http_state *state_of(http_parser *p)
{
    return ((struct conn *)p->data)->http;
}

static int text_append(struct http_state *h, const struct net_limits *lim, const char *at, size_t n,
                       int is_url)
{
    if (h->text_len + n > lim->http_max_header) {
        h->error = is_url ? 414 : 431;
        return 1;
    }
    if (h->text_len + n > h->text_cap) {
        uint32_t cap = h->text_cap ? h->text_cap : 512;
        while (cap < h->text_len + n)
            cap *= 2;
        h->text = xrealloc(h->text, cap);
        h->text_cap = cap;
    }
    memcpy(h->text + h->text_len, at, n);
    h->text_len += (uint32_t)n;
    return 0;
}

/* A request id: 64 bits of a per-thread splitmix64 sequence seeded from the clock, the thread
 * and the process, in hex. Unique enough to find a request's lines in the logs; not a secret. */
static void request_id_new(char out[HTTP_REQUEST_ID_LEN + 1])
{
    static __thread uint64_t state;
    uint64_t z;
    if (!state) state = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&state;
    z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    snprintf(out, HTTP_REQUEST_ID_LEN + 1, "%016llx", (unsigned long long)z);
}

static int on_message_begin(http_parser *p)
{
    struct http_state *h = state_of(p);
    struct conn *c = p->data;
    request_id_new(h->rid);
    h->in_request = 1;
    h->since = c->io->now_s;
    h->start_ms = net_now_ms();
    if (trace_enabled()) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        h->start_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct http_state *h = state_of(p);
    if (text_append(h, lim_of(p), at, n, 1)) return 1;
    h->url_len += (uint32_t)n;
    return 0;
}

/* RFC 9110 token characters: what a header name may contain. http-parser itself lets spaces
 * and other separators through. */
static int is_tchar(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct http_state *h = state_of(p);
    const struct net_limits *lim = lim_of(p);

    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)at[i])) {
            h->error = 400;
            return 1;
        }

    if (h->nspans == 0 || h->last_value) {
        if (h->nspans >= lim->http_max_headers) {
            h->error = 431;
            return 1;
        }
        if (h->nspans == h->spans_cap) {
            h->spans_cap = h->spans_cap ? h->spans_cap * 2 : 16;
            h->spans = xrealloc(h->spans, h->spans_cap * sizeof(*h->spans));
        }
        h->spans[h->nspans++] = (struct hdr_span){h->text_len, 0, 0, 0};
        h->last_value = 0;
    }
    if (text_append(h, lim, at, n, 0)) return 1;
    h->spans[h->nspans - 1].name_len += (uint32_t)n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct http_state *h = state_of(p);
    struct hdr_span *s = &h->spans[h->nspans - 1];

    if (!h->last_value) {
        s->value_off = h->text_len;
        h->last_value = 1;
    }
    if (text_append(h, lim_of(p), at, n, 0)) return 1;
    s->value_len += (uint32_t)n;
    return 0;
}

static int request_build(struct conn *c, struct http_request *req);

/* A request with a body may be streamed (net_handlers.on_stream_begin); the body limit is then
 * the handler's. Otherwise the body is collected up to http_max_body. */
static int on_headers_complete(http_parser *p)
{
    struct http_state *h = state_of(p);
    struct conn *c = p->data;
    const struct net_handlers *hs = &c->io->srv->h;
    int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length);

    if (has_body && hs->on_stream_begin) {
        struct http_request req;
        uint8_t saved = c->flags & (CONN_F_PENDING | CONN_F_NO_KEEPALIVE);
        int rc;
        if (request_build(c, &req) != 0) {
            h->error = 400;
            return 1;
        }
        /* The handler may answer now (then the connection closes after the answer: the body is
         * never read); PENDING makes http_respond valid meanwhile. */
        c->flags |= CONN_F_PENDING | CONN_F_NO_KEEPALIVE;
        rc = hs->on_stream_begin(c, &req);
        if (rc == HTTP_STREAM_ANSWERED) {
            h->answered = 1;
            return 1;
        }
        c->flags = (uint8_t)((c->flags & ~(CONN_F_PENDING | CONN_F_NO_KEEPALIVE)) | saved);
        if (rc == HTTP_STREAM_YES) {
            h->streaming = 1;
            return 0;
        }
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > lim_of(p)->http_max_body) {
        h->error = 413;
        return 1; /* nonzero makes http-parser stop with an error; we answer h->error */
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct http_state *h = state_of(p);
    if (h->streaming) {
        struct conn *c = p->data;
        h->since = c->io->now_s; /* a streamed body times out when it stalls, not by its size */
        if (c->io->srv->h.on_stream_data(c, at, n) != 0) {
            h->answered = 1;
            return 1;
        }
        return 0;
    }
    if (h->body_len + n > lim_of(p)->http_max_body) {
        h->error = 413;
        return 1;
    }
    if (h->body_len + n > h->body_cap) {
        uint32_t cap = h->body_cap ? h->body_cap : 256;
        while (cap < h->body_len + n)
            cap *= 2;
        h->body = xrealloc(h->body, cap);
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, at, n);
    h->body_len += (uint32_t)n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    state_of(p)->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static struct http_state *http_state_get(struct conn *c)
{
    if (!c->http) {
        c->http = xcalloc(1, sizeof(*c->http));
        http_parser_init(&c->http->parser, HTTP_REQUEST);
        c->http->parser.data = c;
        c->http->since = c->io->now_s;
    }
    return c->http;
}

/* Forget the finished request; keep the buffers for the next one on this connection. */
static void http_state_reset(struct conn *c)
{
    struct http_state *h = c->http;
    h->in_request = h->complete = h->last_value = h->dispatched = 0;
    h->streaming = h->answered = h->streamed_response = 0;
    h->stream = NULL;
    h->on_drain = NULL;
    h->error = 0;
    h->rid[0] = '\0';
    h->tid[0] = '\0';
    h->client_ip[0] = '\0';
    trace_span_end(h->span); /* a request that got no response (an upgrade answers with one) */
    h->span = NULL;
    h->text_len = h->url_len = h->nspans = h->body_len = 0;
    h->since = c->io->now_s;
    free(h->headers);
    h->headers = NULL;
    free(h->add_headers);
    h->add_headers = NULL;
    h->add_len = 0;
    http_parser_pause(&h->parser, 0);
}

void net__http_free(struct conn *c)
{
    struct http_state *h = c->http;
    if (!h) return;
    trace_span_end(h->span);
    free(h->text);
    free(h->spans);
    free(h->body);
    free(h->headers);
    free(h->add_headers);
    free(h);
    c->http = NULL;
}

int net__http_timed_out(struct conn *c, uint32_t now_s)
{
    const struct net_limits *lim = &c->io->srv->lim;
    struct http_state *h = c->http;

    if (c->flags & (CONN_F_PENDING | CONN_F_PAUSED)) return 0;      /* our turn, not the client's */
    if (!h) return now_s - c->since >= lim->http_timeout ? 408 : 0; /* connected, said nothing */
    if (h->in_request) return now_s - h->since >= lim->http_timeout ? 408 : 0;
    return now_s - h->since >= lim->http_keepalive ? 1 : 0;
}

const char *http_reason(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 206:
        return "Partial Content";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void http_resume(struct conn *c);

void http_add_response_headers(struct conn *c, const char *lines)
{
    struct http_state *h = c->http;
    size_t n = strlen(lines);
    if (!h || !(c->flags & CONN_F_PENDING) || h->add_len + n > HTTP_ADD_HEADERS_MAX) return;
    h->add_headers = xrealloc(h->add_headers, h->add_len + n + 1);
    memcpy(h->add_headers + h->add_len, lines, n + 1);
    h->add_len += (uint32_t)n;
}

/* The request id of c's current request (one is made for a connection that sent nothing). */
static const char *request_id_of(struct conn *c, char spare[HTTP_REQUEST_ID_LEN + 1])
{
    if (c->http && c->http->rid[0]) return c->http->rid;
    request_id_new(spare);
    return spare;
}

/* The client address of c's current request (the peer's before dispatch). */
static const char *client_of(struct conn *c)
{
    struct http_state *h = c->http;
    if (!h) return "";
    if (h->client_ip[0]) return h->client_ip;
    if (!h->peer[0]) conn_peer_ip(c, h->peer, sizeof(h->peer));
    return h->peer;
}

/* Every value of header `name`, comma-joined: a slice of the request when there is one header,
 * else of *buf (malloc'ed; the caller frees it). */
static struct slice header_all(const struct http_request *req, const char *name, char **buf)
{
    struct slice one = {0};
    size_t len = 0;
    int n = 0;
    for (int i = 0; i < req->nheaders; i++)
        if (slice_case_eq(req->headers[i].name, name)) {
            if (n++ == 0) one = req->headers[i].value;
            len += req->headers[i].value.len + 1;
        }
    if (n <= 1) return one;
    *buf = xmalloc(len);
    len = 0;
    for (int i = 0; i < req->nheaders; i++)
        if (slice_case_eq(req->headers[i].name, name)) {
            if (len) (*buf)[len++] = ',';
            memcpy(*buf + len, req->headers[i].value.p, req->headers[i].value.len);
            len += req->headers[i].value.len;
        }
    return (struct slice){*buf, len};
}

/* The request's client: the peer, or behind a trusted proxy the address it forwarded. */
static void client_resolve(struct conn *c, struct http_request *req)
{
    struct http_state *h = c->http;
    const struct proxy_list *l = c->io->srv->trusted;
    if (!h->peer[0]) conn_peer_ip(c, h->peer, sizeof(h->peer));
    if (l && l->n && proxy_trusted(l, h->peer)) {
        char *b1 = NULL, *b2 = NULL;
        struct slice fwd = header_all(req, "forwarded", &b1),
                     xff = header_all(req, "x-forwarded-for", &b2);
        proxy_client_ip(l, h->peer, fwd, xff, h->client_ip);
        free(b1);
        free(b2);
    } else {
        memcpy(h->client_ip, h->peer, sizeof(h->client_ip));
    }
    req->client_ip = h->client_ip;
}

/* The access log line of a response, with the request id. The path is the URL up to its query
 * (which may hold an access token): escaped by the logger, whatever bytes it holds. */
static void log_response(struct conn *c, const char *rid, int status)
{
    struct http_state *h = c->http;
    const char *url = h && h->in_request ? h->text : NULL;
    const char *q = url ? memchr(url, '?', h->url_len) : NULL;
    int path_len = url ? (int)(q ? (uint32_t)(q - url) : h->url_len) : 0;
    const char *prev, *prev_tid = NULL;

    if (!log_enabled(LOG_INFO)) return;
    prev = log_request_id_set(rid);
    if (h && h->tid[0]) prev_tid = log_trace_id_set(h->tid);
    log_info(
        "http", "\"method\":\"%s\",\"path\":\"%.*s\",\"status\":%d,\"us\":%llu,\"client\":\"%s\"",
        url ? http_method_str((enum http_method)h->parser.method) : "", path_len, url ? url : "",
        status, (unsigned long long)(h && h->in_request ? (net_now_ms() - h->start_ms) * 1000 : 0),
        client_of(c));
    if (h && h->tid[0]) log_trace_id_set(prev_tid);
    log_request_id_set(prev);
}

static void span_finish(struct http_state *h, int status)
{
    trace_attr_int(h->span, "http.response.status_code", status);
    if (status >= 500) trace_span_error(h->span, http_reason(status));
    trace_span_end(h->span);
    h->span = NULL;
}

void http_respond_full(struct conn *c, const struct http_response *r)
{
    struct http_state *h = c->http;
    char head[2048], spare[HTTP_REQUEST_ID_LEN + 1];
    const char *rid;
    int keep, n, status = r->status;
    size_t blen = r->head_only ? 0 : r->len;
    struct rbuf *b;

    if (!(c->flags & CONN_F_PENDING) || (c->flags & CONN_F_CLOSED)) return;
    rid = request_id_of(c, spare);
    keep = h && http_should_keep_alive(&h->parser) && !(c->flags & CONN_F_NO_KEEPALIVE) &&
           !c->io->draining && status != 408 && status != 413 && status != 431 && status != 414;
    n = snprintf(
        head, sizeof(head),
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
        "Cache-Control: %s\r\nX-Content-Type-Options: nosniff\r\n"
        "X-Request-Id: %s\r\nConnection: %s\r\n%s%s\r\n",
        status, http_reason(status), r->content_type ? r->content_type : "application/json", r->len,
        r->cache_control ? r->cache_control : "no-store", rid, keep ? "keep-alive" : "close",
        r->extra_headers ? r->extra_headers : "", h && h->add_headers ? h->add_headers : "");
    log_response(c, rid, status);
    if (h && h->span) span_finish(h, status);
    if (n < 0 || (size_t)n >= sizeof(head)) n = 0;
    b = rbuf_new((size_t)n + blen);
    memcpy(b->data, head, (size_t)n);
    if (blen) memcpy(b->data + n, r->body, blen);
    c->state = CONN_HTTP;
    conn_send(c, b);
    rbuf_unref(b);
    if (h && h->streamed_response) { /* the body follows (http_respond_end) */
        if (!keep) c->flags |= CONN_F_NO_KEEPALIVE;
        return;
    }
    c->flags &= (uint8_t)~CONN_F_PENDING;
    if (!keep) {
        conn_close_after_flush(c);
        return;
    }
    http_resume(c);
}

void http_respond_begin(struct conn *c, const struct http_response *r)
{
    struct http_response head = *r;
    head.head_only = 1;
    if (!c->http || !(c->flags & CONN_F_PENDING) || (c->flags & CONN_F_CLOSED)) return;
    c->http->streamed_response = 1;
    http_respond_full(c, &head);
}

void http_respond_end(struct conn *c)
{
    struct http_state *h = c->http;
    if (!h || !h->streamed_response || !(c->flags & CONN_F_PENDING)) return;
    h->streamed_response = 0;
    c->flags &= (uint8_t)~CONN_F_PENDING;
    if (c->flags & CONN_F_NO_KEEPALIVE || c->io->draining) {
        conn_close_after_flush(c);
        return;
    }
    http_resume(c);
}

void http_on_drain(struct conn *c, void (*cb)(struct conn *c))
{
    if (c->http) c->http->on_drain = cb;
}

void net__http_drained(struct conn *c)
{
    struct http_state *h = c->http;
    void (*cb)(struct conn *);
    if (!h || !h->on_drain || c->out.bytes > HTTP_DRAIN_LOW || (c->flags & CONN_F_CLOSED)) return;
    cb = h->on_drain;
    h->on_drain = NULL;
    cb(c);
}

void http_stream_set(struct conn *c, void *ud)
{
    if (c->http) c->http->stream = ud;
}

void *http_stream_get(struct conn *c)
{
    return c->http ? c->http->stream : NULL;
}

void net__http_closed(struct conn *c)
{
    struct http_state *h = c->http;
    if (h && h->stream && c->io->srv->h.on_stream_abort) {
        void *ud = h->stream;
        h->stream = NULL;
        c->io->srv->h.on_stream_abort(c, ud);
    }
}

void http_respond(struct conn *c, int status, const char *content_type, const void *body,
                  size_t len, const char *extra_headers)
{
    struct http_response r = {.status = status,
                              .content_type = content_type,
                              .body = body,
                              .len = len,
                              .extra_headers = extra_headers};
    http_respond_full(c, &r);
}

void net__http_error(struct conn *c, int status)
{
    int st = status == 408                    ? CD_E_TIMEOUT
             : status == 413                  ? CD_E_TOO_LARGE
             : status == 414 || status == 431 ? CD_E_HEADERS_TOO_LARGE
                                              : CD_E_BAD_REQUEST;
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     cd_status_code(st),
                     status == 414 ? "request line too long" : cd_status_message(st));
    c->flags |= CONN_F_PENDING | CONN_F_NO_KEEPALIVE;
    http_respond(c, status, "application/json", body, (size_t)n, NULL);
}

/* The request's span: a child of the caller's traceparent when it sent a valid one. Named by
 * the method until the router knows the route (http_trace_route). */
static void http_trace_begin(struct conn *c, struct http_request *req)
{
    struct http_state *h = c->http;
    struct trace_ctx parent = {0};
    struct slice tp, ua;

    if (http_header(req, "traceparent", &tp)) trace_parse_traceparent(tp.p, tp.len, &parent);
    trace_span_end(h->span);
    h->span = trace_span_start_at(http_method_str((enum http_method)req->method), TRACE_SERVER,
                                  &parent, h->start_ns);
    trace_id_hex(trace_span_ctx(h->span), h->tid);
    trace_attr_str(h->span, "http.request.method", http_method_str((enum http_method)req->method),
                   strlen(http_method_str((enum http_method)req->method)));
    trace_attr_str(h->span, "url.path", req->path.p, req->path.len);
    trace_attr_str(h->span, "chatd.request_id", h->rid, strlen(h->rid));
    trace_attr_str(h->span, "network.peer.address", h->peer, strlen(h->peer));
    trace_attr_str(h->span, "client.address", h->client_ip, strlen(h->client_ip));
    if (http_header(req, "user-agent", &ua))
        trace_attr_str(h->span, "user_agent.original", ua.p, ua.len < 256 ? ua.len : 256);
    req->span = h->span;
    req->trace_id = h->tid;
}

void http_trace_route(struct conn *c, const char *route)
{
    struct http_state *h = c->http;
    char name[64];
    if (!h || !h->span) return;
    snprintf(name, sizeof(name), "%s %s", http_method_str((enum http_method)h->parser.method),
             route);
    trace_span_rename(h->span, name);
    trace_attr_str(h->span, "http.route", route, strlen(route));
}

/* The request as handlers see it: slices of h->text (and h->body); h->headers is (re)built. */
static int request_build(struct conn *c, struct http_request *req)
{
    struct http_state *h = c->http;
    struct http_parser_url u;
    const char *url = h->text;

    memset(req, 0, sizeof(*req));
    http_parser_url_init(&u);
    if (h->url_len == 0 || http_parser_parse_url(url, h->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return -1;
    req->method = h->parser.method;
    req->path = (struct slice){url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len};
    if (u.field_set & (1 << UF_QUERY))
        req->query = (struct slice){url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len};
    free(h->headers);
    h->headers = xcalloc(h->nspans ? h->nspans : 1, sizeof(*h->headers));
    for (uint32_t i = 0; i < h->nspans; i++) {
        h->headers[i].name = (struct slice){h->text + h->spans[i].name_off, h->spans[i].name_len};
        h->headers[i].value =
            (struct slice){h->text + h->spans[i].value_off, h->spans[i].value_len};
    }
    req->headers = h->headers;
    req->nheaders = (int)h->nspans;
    req->body =
        (struct slice){h->body && !h->streaming ? h->body : "", h->streaming ? 0 : h->body_len};
    req->keep_alive = http_should_keep_alive(&h->parser);
    req->upgrade = h->parser.upgrade;
    req->start_ms = h->start_ms;
    req->request_id = h->rid;
    client_resolve(c, req);
    return 0;
}

static void http_dispatch(struct conn *c)
{
    struct http_state *h = c->http;
    struct http_request req;

    if (request_build(c, &req) != 0) {
        net__http_error(c, 400);
        return;
    }
    if (trace_enabled()) http_trace_begin(c, &req);
    {
        const char *prev = log_request_id_set(h->rid);
        const char *prev_tid = log_trace_id_set(h->tid[0] ? h->tid : NULL);
        c->io->srv->h.on_request(c, &req);
        log_trace_id_set(prev_tid);
        log_request_id_set(prev);
    }
}

/* Drop n bytes from the front of c->in. */
static void in_drop(struct conn *c, size_t n)
{
    if (n >= c->in_len) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= (uint32_t)n;
}

/* Parse and dispatch the requests in c->in, one at a time. The loop stops at a pending request
 * (its response resumes it), at a closing connection (a response that ended keep-alive, an
 * error, an abort: whatever follows in the buffer is never parsed), at the upgrade and when
 * the input runs out. A request is dispatched exactly once: the parser stays paused after it
 * until http_state_reset. */
void net__http_input(struct conn *c)
{
    while (c->state == CONN_HTTP &&
           !(c->flags & (CONN_F_PENDING | CONN_F_CLOSED | CONN_F_CLOSE_FLUSH)) && c->in_len) {
        struct http_state *h = http_state_get(c);
        size_t n =
            http_parser_execute(&h->parser, &parser_settings, (const char *)c->in, c->in_len);
        enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);

        if (h->answered) { /* a streamed request answered early: nothing more is parsed */
            in_drop(c, c->in_len);
            return;
        }
        if (h->error) {
            in_drop(c, c->in_len);
            net__http_error(c, h->error);
            return;
        }
        if (err != HPE_OK && err != HPE_PAUSED) {
            in_drop(c, c->in_len);
            net__http_error(c, 400);
            return;
        }
        in_drop(c, n);
        if (!h->complete) {
            if (h->parser.upgrade) { /* upgrade without message_complete: treat as complete */
                h->complete = 1;
            } else {
                break; /* need more bytes */
            }
        }
        assert(!h->dispatched);
        if (h->dispatched) break; /* never answer one request twice */
        c->flags |= CONN_F_PENDING;
        uv_read_stop((uv_stream_t *)&c->tcp);
        h->dispatched = h->dispatching = 1;
        http_dispatch(c);
        if (c->http) c->http->dispatching = 0;
        if (c->state != CONN_HTTP) net__http_free(c);
    }
    if (c->state == CONN_WS && c->in_len) net__conn_process_input(c);
}

static void http_resume(struct conn *c)
{
    struct http_state *h = c->http;
    http_state_reset(c);
    net__conn_read_start(c);
    if (!h->dispatching) net__http_input(c);
}

int http_header(const struct http_request *r, const char *name, struct slice *out)
{
    for (int i = 0; i < r->nheaders; i++)
        if (slice_case_eq(r->headers[i].name, name)) {
            *out = r->headers[i].value;
            return 1;
        }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decode v[0..len) into out; HTTP_QUERY_TOO_LONG when it does not fit. */
static int query_decode(const char *v, const char *end, char *out, size_t cap)
{
    size_t o = 0;
    for (; v < end; v++) {
        char ch = *v;
        if (ch == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
            ch = (char)(hexval(v[1]) * 16 + hexval(v[2]));
            v += 2;
        } else if (ch == '+') {
            ch = ' ';
        }
        if (o + 1 >= cap) {
            out[0] = '\0';
            return HTTP_QUERY_TOO_LONG;
        }
        if (ch == '\0') { /* %00 would cut the C string: "limit=5%00x" must not read as 5 */
            out[0] = '\0';
            return HTTP_QUERY_NUL;
        }
        out[o++] = ch;
    }
    out[o] = '\0';
    return 1;
}

/* Every occurrence of name (a "name" without "=" counts, with an empty value). */
int http_query_value(const struct http_request *r, const char *name, char *out, size_t cap)
{
    const char *p = r->query.p, *end = p ? p + r->query.len : NULL; /* no query: {NULL, 0} */
    const char *val = NULL, *val_end = NULL;
    size_t nlen = strlen(name);

    if (cap == 0) return HTTP_QUERY_TOO_LONG;
    out[0] = '\0';
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(seg_end - p));
        const char *key_end = eq ? eq : seg_end;
        if ((size_t)(key_end - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (val) return HTTP_QUERY_REPEATED;
            val = eq ? eq + 1 : seg_end;
            val_end = seg_end;
        }
        p = amp ? amp + 1 : end;
    }
    return val ? query_decode(val, val_end, out, cap) : 0;
}

int http_query_param(const struct http_request *r, const char *name, char *out, size_t cap)
{
    const char *p = r->query.p, *end;
    size_t nlen = strlen(name);

    if (!p || cap == 0) return 0; /* no query: {NULL, 0}, and NULL + 0 is undefined */
    end = p + r->query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *seg_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(seg_end - p));
        if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0)
            return cap && query_decode(eq + 1, seg_end, out, cap) == 1;
        p = amp ? amp + 1 : end;
    }
    return 0;
}

int http_bearer_token(const struct http_request *r, struct slice *tok)
{
    struct slice h;
    const char *p, *end;

    if (!http_header(r, "authorization", &h)) return 0;
    p = h.p;
    end = h.p + h.len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - p < 7 || !slice_case_eq((struct slice){p, 6}, "bearer") ||
        (p[6] != ' ' && p[6] != '\t'))
        return -1;
    p += 7;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end) return -1;
    for (const char *q = p; q < end; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f) return -1;
    *tok = (struct slice){p, (size_t)(end - p)};
    return 1;
}

static int header_has_token(const struct http_request *r, const char *name, const char *token)
{
    for (int i = 0; i < r->nheaders; i++) {
        const char *p, *end;
        if (!slice_case_eq(r->headers[i].name, name)) continue;
        p = r->headers[i].value.p;
        end = p + r->headers[i].value.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *te = comma ? comma : end;
            while (p < te && (*p == ' ' || *p == '\t'))
                p++;
            while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
                te--;
            if (slice_case_eq((struct slice){p, (size_t)(te - p)}, token)) return 1;
            p = comma ? comma + 1 : end;
        }
    }
    return 0;
}

int http_ws_check(const struct http_request *r, char accept_out[29])
{
    struct slice key, ver;

    if (r->method != HTTP_GET || !header_has_token(r, "upgrade", "websocket") ||
        !header_has_token(r, "connection", "upgrade"))
        return CD_E_UPGRADE_REQUIRED;
    if (!http_header(r, "sec-websocket-version", &ver) || !slice_eq(ver, "13"))
        return CD_E_UPGRADE_REQUIRED;
    if (!http_header(r, "sec-websocket-key", &key)) return CD_E_BAD_REQUEST;
    return ws_accept_key(key.p, key.len, accept_out);
}

void http_upgrade_ws(struct conn *c, const char accept_key[29])
{
    char head[320], spare[HTTP_REQUEST_ID_LEN + 1];
    const char *rid = request_id_of(c, spare);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Request-Id: %s\r\n\r\n",
                     accept_key, rid);
    struct rbuf *b = rbuf_copy(head, (size_t)n);

    log_response(c, rid, 101);
    if (c->http && c->http->span) span_finish(c->http, 101);

    c->state = CONN_WS;
    c->flags &= (uint8_t)~CONN_F_PENDING;
    c->last_rx = c->since = c->io->now_s;
    STAT_ADD(c->io, ws_open, 1);
    conn_send(c, b);
    rbuf_unref(b);
    /* The request (and the handler's view of it) lives in c->http until dispatch returns. */
    if (c->http && !c->http->dispatching) net__http_free(c);
    net__conn_read_start(c);
}
