/* conn.c - connection lifecycle, input dispatch, bounded output queue with coalesced writes. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "net/http.h"
#include "util/log.h"
#include "util/status.h"

#define CLOSE_GRACE_S 2 /* after our close frame, how long we wait for the peer's */

static void conn_free(struct conn *c);
static void outq_push(struct conn *c, struct rbuf *b);
static void conn_flush(struct conn *c);

/* ---- lifecycle ---- */

static void conn_on_close(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    struct net_io *io = c->io;

    if (c->http) net__http_closed(c);
    if ((c->user_id || c->app) && io->srv->h.on_ws_close) io->srv->h.on_ws_close(c);
    c->app = NULL;
    c->state = CONN_DEAD;
    if (c->refs == 0) conn_free(c);
}

void conn_release(struct conn *c)
{
    assert(c->refs > 0); /* a release without its hold would wrap the count */
    if (--c->refs == 0 && c->state == CONN_DEAD) conn_free(c);
}

static void outq_clear(struct outq *q, int keep_inflight)
{
    uint16_t keep = keep_inflight ? q->inflight : 0;
    while (q->n > keep) {
        uint16_t last = (uint16_t)((q->head + q->n - 1) % q->cap);
        rbuf_unref(q->q[last]);
        q->n--;
    }
    if (!keep_inflight) {
        q->inflight = 0;
        q->off = 0;
    }
    q->bytes = 0;
    for (uint16_t i = 0; i < q->n; i++) {
        struct rbuf *b = q->q[(q->head + i) % q->cap];
        q->bytes += b->len - (i == 0 ? q->off : 0);
    }
    if (q->n == 0) {
        free(q->q);
        q->q = NULL;
        q->cap = 0;
        q->head = 0;
    }
}

static void conn_free(struct conn *c)
{
    struct net_io *io = c->io;

    assert(c->refs == 0 && c->state == CONN_DEAD && (c->flags & CONN_F_CLOSED));
    /* Still on io->dirty would be a use after free: the loop's check phase (flush_all) always
     * runs between the uv_close and its callback. */
    assert(!(c->flags & CONN_F_DIRTY));

    if (c->prev)
        c->prev->next = c->next;
    else
        io->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    io->nconns--;
    atomic_fetch_sub(&io->srv->nconns, 1);
    STAT_ADD(io, conns_open, -1);
    outq_clear(&c->out, 0);
    ws_reader_reset(&c->ws);
    net__http_free(c);
    free(c->in);
    free(c->wreq);
    free(c);
}

void conn_abort(struct conn *c)
{
    if (c->flags & CONN_F_CLOSED) return;
    c->flags |= CONN_F_CLOSED;
    if (c->state == CONN_WS) STAT_ADD(c->io, ws_open, -1);
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
}

void conn_close_after_flush(struct conn *c)
{
    if (!(c->flags & CONN_F_CLOSE_FLUSH)) c->since = c->io->now_s;
    c->flags |= CONN_F_CLOSE_FLUSH;
    if (c->out.n == 0 && !(c->flags & CONN_F_WRITING))
        conn_abort(c);
    else
        net__conn_mark_dirty(c);
}

void conn_ws_close(struct conn *c, uint16_t code, const char *reason)
{
    uint8_t frame[WS_CLOSE_FRAME_MAX];
    size_t n;

    if (c->state != CONN_WS) {
        if (c->state == CONN_HTTP) conn_abort(c);
        return;
    }
    STAT_ADD(c->io, ws_open, -1);
    c->state = CONN_CLOSING;
    c->close_code = code;
    c->since = c->io->now_s;
    n = ws_close_frame(frame, code, reason);
    {
        struct rbuf *b = rbuf_copy(frame, n);
        outq_push(c, b);
        rbuf_unref(b);
    }
    /* Every close, error codes included, waits for the peer's close frame (or EOF) up to
     * CLOSE_GRACE_S (net__conn_tick) while input is still read. Closing the socket right after
     * the flush would make the kernel answer a client that is still sending with a RST, and the
     * client would lose our close frame and its code (it sees 1006 instead of 1009, 1002...). */
}

void conn_peer_ip(struct conn *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, out, cap) == 0)
            return;
        if (ss.ss_family == AF_INET6 && uv_ip6_name((struct sockaddr_in6 *)&ss, out, cap) == 0)
            return;
    }
    snprintf(out, cap, "unknown");
}

/* ---- input ---- */

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct conn *c = (struct conn *)h;
    (void)hint;
    buf->base = (char *)c->io->rbuf;
    buf->len = NET_READ_BUF;
}

static void in_append(struct conn *c, const uint8_t *p, size_t n)
{
    /* Bounded by one read plus one partial frame (ws max_frame <= CFG_MAX_BYTES) or one paused
     * request's pipelined tail: far below the 32-bit counters. */
    assert((uint64_t)c->in_len + n <= UINT32_MAX / 2);
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < c->in_len + n)
            cap *= 2;
        c->in = xrealloc(c->in, cap);
        c->in_cap = (uint32_t)cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += (uint32_t)n;
}

/* Drop `used` bytes from the front of c->in (or of the shared buffer, copying the tail in). */
static void in_consume(struct conn *c, uint8_t *base, size_t len, size_t used, int from_shared)
{
    if (from_shared) {
        if (used < len) in_append(c, base + used, len - used);
        return;
    }
    if (used >= c->in_len) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
    } else if (used) {
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= (uint32_t)used;
    }
}

static int ws_on_message(void *ud, int opcode, uint8_t *data, size_t len)
{
    struct conn *c = ud;
    struct net_io *io = c->io;

    STAT_ADD(io, frames_in, 1);
    switch (opcode) {
    case WS_OP_TEXT:
        if (c->state != CONN_WS) return 0; /* closing: data is dropped */
        io->srv->h.on_ws_message(c, data, len);
        /* Paused by the handler: the frames after this one wait in c->in for conn_resume. */
        return !conn_alive(c) || (c->flags & CONN_F_PAUSED);
    case WS_OP_BINARY:
        conn_ws_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not supported");
        return 1;
    case WS_OP_PING: {
        uint8_t hdr[WS_MAX_HEADER];
        size_t h;
        struct rbuf *b;
        if (c->state != CONN_WS) return 0;
        h = ws_frame_header(hdr, WS_OP_PONG, len);
        b = rbuf_new(h + len);
        memcpy(b->data, hdr, h);
        if (len) memcpy(b->data + h, data, len);
        conn_send(c, b);
        rbuf_unref(b);
        return 0;
    }
    case WS_OP_PONG:
        c->flags &= (uint8_t)~CONN_F_PING_SENT;
        return 0;
    case WS_OP_CLOSE:
        if (c->state == CONN_WS) {
            /* Peer starts the handshake: echo its code (or 1000) and close after the flush. */
            uint16_t code = len >= 2 ? (uint16_t)((data[0] << 8) | data[1]) : WS_CLOSE_NORMAL;
            conn_ws_close(c, code, "");
            conn_close_after_flush(c);
        } else {
            conn_close_after_flush(c); /* the answer to our close */
        }
        return 1;
    }
    return 0;
}

static void ws_input(struct conn *c, uint8_t *buf, size_t len, int from_shared)
{
    uint16_t code = 0;
    ssize_t used = ws_reader_feed(&c->ws, &c->io->srv->lim.ws, buf, len, ws_on_message, c, &code);
    if (used < 0) {
        in_consume(c, buf, len, len, from_shared);
        conn_ws_close(c, code,
                      code == WS_CLOSE_TOO_BIG        ? "message too big"
                      : code == WS_CLOSE_INVALID_DATA ? "invalid UTF-8"
                                                      : "protocol error");
        return;
    }
    if (c->flags & CONN_F_CLOSED) return;
    in_consume(c, buf, len, (size_t)used, from_shared);
}

void conn_pause(struct conn *c)
{
    c->flags |= CONN_F_PAUSED;
    if (!(c->flags & CONN_F_CLOSED)) uv_read_stop((uv_stream_t *)&c->tcp);
}

void conn_resume(struct conn *c)
{
    c->flags &= (uint8_t)~CONN_F_PAUSED;
    net__conn_read_start(c);
    if (c->in_len) net__conn_process_input(c);
}

void net__conn_process_input(struct conn *c)
{
    if (c->flags & (CONN_F_CLOSED | CONN_F_PAUSED | CONN_F_CLOSE_FLUSH)) return;
    if (c->state == CONN_HTTP) {
        net__http_input(c);
    } else if (c->in_len) {
        ws_input(c, c->in, c->in_len, 0);
    }
}

void net__conn_input(struct conn *c, uint8_t *buf, size_t n)
{
    struct net_io *io = c->io;

    if (n == 0 || (c->flags & CONN_F_CLOSED)) return;
    STAT_ADD(io, bytes_in, (uint64_t)n);
    c->last_rx = io->now_s;
    if (c->flags & CONN_F_CLOSE_FLUSH) return; /* last response queued: nothing more is read */
    if (c->flags & CONN_F_PAUSED) {            /* keep it for conn_resume */
        in_append(c, buf, n);
        return;
    }
    if (c->state == CONN_HTTP) {
        in_append(c, buf, n);
        net__http_input(c);
        return;
    }
    if (c->in_len) {
        in_append(c, buf, n);
        ws_input(c, c->in, c->in_len, 0);
    } else {
        ws_input(c, buf, n, 1);
    }
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;

    if (nread < 0) {
        conn_abort(c); /* EOF or error; queued output is moot */
        return;
    }
    net__conn_input(c, (uint8_t *)buf->base, (size_t)nread);
}

void net__conn_read_start(struct conn *c)
{
    if (!(c->flags & (CONN_F_CLOSED | CONN_F_PAUSED)))
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read);
}

void net__conn_accept(struct net_io *io, uv_stream_t *listener)
{
    struct conn *c = xcalloc(1, sizeof(*c));

    uv_tcp_init(&io->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    net__conn_add(io, c);
}

int net__conn_add(struct net_io *io, struct conn *c)
{
    struct net_server *s = io->srv;

    if (atomic_fetch_add(&s->nconns, 1) >= s->lim.max_conns || io->draining) {
        atomic_fetch_sub(&s->nconns, 1);
        STAT_ADD(io, refused, 1);
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return CD_E_UNAVAILABLE;
    }
    c->io = io;
    c->last_rx = c->since = io->now_s;
    c->next = io->conns;
    if (io->conns) io->conns->prev = c;
    io->conns = c;
    io->nconns++;
    STAT_ADD(io, conns_open, 1);
    STAT_ADD(io, conns_total, 1);
    uv_tcp_nodelay(&c->tcp, 1);
    net__conn_read_start(c);
    return CD_OK;
}

/* ---- output ---- */

void net__conn_mark_dirty(struct conn *c)
{
    if (c->flags & (CONN_F_DIRTY | CONN_F_CLOSED)) return;
    c->flags |= CONN_F_DIRTY;
    c->dirty_next = c->io->dirty;
    c->io->dirty = c;
}

int conn_send(struct conn *c, struct rbuf *b)
{
    struct outq *q = &c->out;

    if (c->state == CONN_CLOSING || (c->flags & (CONN_F_CLOSED | CONN_F_CLOSE_FLUSH)))
        return CD_E_UNAVAILABLE;
    if (q->bytes + b->len > c->io->srv->lim.ws_max_outq || q->n >= OUTQ_MAX_ITEMS) {
        /* Over the bound before the end-of-iteration flush: hand what the kernel takes now, so
         * only a client whose socket is really full (it reads too slowly) counts as slow, not
         * one that pipelined a burst of requests that one loop iteration answered. */
        conn_flush(c);
        if (c->flags & CONN_F_CLOSED) return CD_E_UNAVAILABLE;
    }
    if ((q->bytes + b->len > c->io->srv->lim.ws_max_outq || q->n >= OUTQ_MAX_ITEMS) &&
        c->state != CONN_WS) {
        /* An HTTP connection answers one request at a time: a full queue is a peer that does
         * not read its responses. */
        STAT_ADD(c->io, slow_closed, 1);
        conn_abort(c);
        return CD_E_UNAVAILABLE;
    }
    if (q->bytes + b->len > c->io->srv->lim.ws_max_outq || q->n >= OUTQ_MAX_ITEMS) {
        STAT_ADD(c->io, slow_closed, 1);
        log_info("slow consumer closed", "\"user\":%lld,\"queued\":%u", (long long)c->user_id,
                 q->bytes);
        outq_clear(q, 1);
        conn_ws_close(c, WS_CLOSE_SLOW_CONSUMER, "output queue limit exceeded");
        return CD_E_UNAVAILABLE;
    }
    if (c->state == CONN_WS) STAT_ADD(c->io, frames_out, 1);
    outq_push(c, b);
    return CD_OK;
}

/* Append a reference without limit checks (close frames may exceed the bound). */
static void outq_push(struct conn *c, struct rbuf *b)
{
    struct outq *q = &c->out;

    assert(q->n <= q->cap && q->inflight <= q->n);
    if (q->n >= OUTQ_HARD_MAX) { /* unreachable through conn_send; never let a counter wrap */
        assert(!"output queue past its hard bound");
        conn_abort(c);
        return;
    }
    if (q->n == q->cap) {
        uint16_t cap = q->cap ? (uint16_t)(q->cap * 2) : 8;
        assert(cap > q->cap && cap <= 2 * OUTQ_MAX_ITEMS);
        struct rbuf **nq = xmalloc(sizeof(*nq) * cap);
        for (uint16_t i = 0; i < q->n; i++)
            nq[i] = q->q[(q->head + i) % q->cap];
        free(q->q);
        q->q = nq;
        q->cap = cap;
        q->head = 0;
    }
    assert((uint64_t)q->bytes + b->len <= UINT32_MAX); /* ws_max_outq + a close frame */
    q->q[(q->head + q->n) % q->cap] = rbuf_ref(b);
    q->n++;
    q->bytes += b->len;
    net__conn_mark_dirty(c);
}

int conn_ws_text(struct conn *c, const void *data, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = ws_frame_header(hdr, WS_OP_TEXT, len);
    struct rbuf *b = rbuf_new(h + len);
    int rc;

    memcpy(b->data, hdr, h);
    memcpy(b->data + h, data, len);
    rc = conn_send(c, b);
    rbuf_unref(b);
    return rc;
}

/* Release `written` bytes from the head of the queue. */
static void outq_consume(struct outq *q, size_t written)
{
    assert(written <= q->bytes);
    while (written && q->n) {
        struct rbuf *b = q->q[q->head];
        size_t left = b->len - q->off;
        if (written < left) {
            q->off += (uint32_t)written;
            q->bytes -= (uint32_t)written;
            return;
        }
        written -= left;
        q->bytes -= (uint32_t)left;
        rbuf_unref(b);
        q->off = 0;
        q->head = (uint16_t)((q->head + 1) % q->cap);
        q->n--;
        if (q->inflight) q->inflight--;
    }
}

static void conn_on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    struct outq *q = &c->out;
    size_t bytes = 0;

    for (uint16_t i = 0; i < q->inflight; i++)
        bytes += q->q[(q->head + i) % q->cap]->len - (i == 0 ? q->off : 0);
    c->flags &= (uint8_t)~CONN_F_WRITING;
    if (status < 0) {
        conn_abort(c);
        conn_release(c);
        return;
    }
    STAT_ADD(c->io, bytes_out, bytes);
    outq_consume(q, bytes);
    q->inflight = 0;
    if (!(c->flags & CONN_F_CLOSED)) conn_flush(c);
    conn_release(c);
}

static void conn_flush(struct conn *c)
{
    struct net_io *io = c->io;
    struct outq *q = &c->out;

    while (q->n && !(c->flags & (CONN_F_WRITING | CONN_F_CLOSED))) {
        uv_buf_t *iov = io->iov;
        uint16_t cnt = 0;
        size_t total = 0;
        int r;

        for (; cnt < q->n && cnt < NET_IOV_MAX; cnt++) {
            struct rbuf *b = q->q[(q->head + cnt) % q->cap];
            size_t off = cnt == 0 ? q->off : 0;
            iov[cnt] = uv_buf_init((char *)b->data + off, (unsigned)(b->len - off));
            total += b->len - off;
        }
        r = uv_try_write((uv_stream_t *)&c->tcp, iov, cnt);
        if (r < 0 && r != UV_EAGAIN) {
            conn_abort(c);
            return;
        }
        if (r > 0) {
            STAT_ADD(io, bytes_out, (uint64_t)r);
            outq_consume(q, (size_t)r);
        }
        if (r == (int)total) continue;
        /* Kernel buffer full: hand the rest of this batch to libuv, which waits for POLLOUT. */
        cnt = 0;
        for (; cnt < q->n && cnt < NET_IOV_MAX; cnt++) {
            struct rbuf *b = q->q[(q->head + cnt) % q->cap];
            size_t off = cnt == 0 ? q->off : 0;
            iov[cnt] = uv_buf_init((char *)b->data + off, (unsigned)(b->len - off));
        }
        if (!c->wreq) c->wreq = xmalloc(sizeof(*c->wreq));
        c->wreq->data = c;
        q->inflight = cnt;
        if (uv_write(c->wreq, (uv_stream_t *)&c->tcp, iov, cnt, conn_on_write) < 0) {
            q->inflight = 0;
            conn_abort(c);
            return;
        }
        c->flags |= CONN_F_WRITING;
        conn_hold(c);
        return;
    }
    if (q->n == 0 && !(c->flags & CONN_F_WRITING) && (c->flags & CONN_F_CLOSE_FLUSH)) {
        conn_abort(c);
        return;
    }
    if (c->http && c->state == CONN_HTTP) net__http_drained(c);
}

void net__conn_flush_all(struct net_io *io)
{
    struct conn *c = io->dirty;
    io->dirty = NULL;
    while (c) {
        struct conn *next = c->dirty_next;
        c->flags &= (uint8_t)~CONN_F_DIRTY;
        c->dirty_next = NULL;
        conn_flush(c);
        c = next;
    }
}

/* ---- periodic work ---- */

void net__conn_tick(struct net_io *io)
{
    const struct net_limits *lim = &io->srv->lim;
    uint32_t now = io->now_s;

    for (struct conn *c = io->conns, *next; c; c = next) {
        next = c->next;
        if (c->flags & CONN_F_CLOSED) continue;
        if ((c->flags & CONN_F_CLOSE_FLUSH) &&
            now - c->since >=
                (lim->http_timeout > CLOSE_GRACE_S ? lim->http_timeout : CLOSE_GRACE_S)) {
            conn_abort(c); /* the peer does not take its last response (or close frame) */
            continue;
        }
        if (c->state == CONN_HTTP && (c->flags & CONN_F_CLOSE_FLUSH)) {
            /* waiting for the flush only */
        } else if (c->state == CONN_HTTP) {
            int st = net__http_timed_out(c, now);
            if (st == 408)
                net__http_error(c, 408);
            else if (st)
                conn_abort(c);
        } else if (c->state == CONN_WS && c->deadline && now >= c->deadline &&
                   io->srv->h.on_ws_deadline) {
            c->deadline = 0;
            io->srv->h.on_ws_deadline(c);
        } else if (c->state == CONN_WS) {
            uint32_t idle = now - c->last_rx;
            /* Any traffic after our ping proves the peer alive, not only the pong. */
            if ((c->flags & CONN_F_PING_SENT) && c->last_rx >= c->since)
                c->flags &= (uint8_t)~CONN_F_PING_SENT;
            if ((c->flags & CONN_F_PING_SENT) &&
                now - c->since >= lim->ws_idle - lim->ws_idle / 2) {
                conn_ws_close(c, WS_CLOSE_IDLE_TIMEOUT, "idle timeout");
            } else if (!(c->flags & CONN_F_PING_SENT) && idle >= lim->ws_idle / 2) {
                uint8_t hdr[WS_MAX_HEADER];
                size_t h = ws_frame_header(hdr, WS_OP_PING, 0);
                struct rbuf *b = rbuf_copy(hdr, h);
                c->flags |= CONN_F_PING_SENT;
                c->since = now;
                conn_send(c, b);
                rbuf_unref(b);
            }
        } else if (now - c->since >= CLOSE_GRACE_S) {
            conn_abort(c); /* peer never answered our close frame */
        }
        /* Trim: an idle connection keeps no output ring and no input buffer capacity. */
        if (c->out.n == 0 && c->out.q) {
            free(c->out.q);
            c->out.q = NULL;
            c->out.cap = c->out.head = 0;
        }
    }
}

void net__conn_drain(struct net_io *io)
{
    for (struct conn *c = io->conns, *next; c; c = next) {
        next = c->next;
        if (c->flags & CONN_F_CLOSED) continue;
        if (c->state == CONN_WS)
            conn_ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        else if (c->state == CONN_HTTP && (c->flags & CONN_F_PENDING))
            c->flags |= CONN_F_NO_KEEPALIVE;
        else if (c->state == CONN_HTTP)
            conn_abort(c);
    }
}
