/* fuzz_conn.c - libFuzzer target for a whole connection's input path: src/net/conn.c (input
 * dispatch, pause/resume, bounded output queue, ticks), src/net/http.c (http-parser glue, limits,
 * pipelining, keep-alive ending, upgrade) and the WebSocket codec behind it.
 *
 * One fuzz input is one connection. The harness owns a real libuv loop and a one-thread
 * net_server set up as net_start would (without the listener and the thread); the connection's
 * uv_tcp_t is opened on one end of a socketpair, so responses and frames are really written (the
 * harness reads the other end), and input is delivered through net__conn_input, the function the
 * read callback calls, only while the connection is reading (as the kernel would). Between two
 * reads the harness does what the loop does (flushes, write and close callbacks through uv_run
 * with io.c's check and prepare flushes, ticks with the clock moved on), completes the stub's
 * deferred work, and now and then drains (as on SIGTERM) or hangs up (EOF or a closed socket).
 *
 * Input layout: byte 0 = limits and modes (bit 0: small HTTP header limits, bit 1: small body
 * limit, bit 2: small WebSocket limits, bit 3: small output queue bound, bit 4: small socket send
 * buffer and a peer that reads rarely; bits 5-7: how the stream is split into reads, 0 = one
 * read), bytes 1-2 = seed of the harness's choices (read sizes, ticks, when deferred work
 * completes), the rest = the bytes the client sends.
 *
 * The stub server layer (struct net_handlers) answers a request by the first character of its
 * path: 'c' ends keep-alive, 'e' answers an error, 'd' answers later (conn_hold, as an async
 * call), 'b' answers with a large body, 'u' or any upgrade request upgrades when http_ws_check
 * accepts it (pausing the connection until a later step, as the hub does while it loads rooms),
 * anything else 200. Upgrade requests end keep-alive when refused, as app_on_request does.
 * WebSocket messages: 'c' closes (1000), 'p' pauses until a later step, 'b' answers a large
 * message, anything else is echoed.
 *
 * Checked after every step: the output queue's counters and byte count are consistent and within
 * their bounds, the input buffer is consistent, a request is dispatched only when none is
 * pending and never on a closing or upgraded connection, messages only on an open WebSocket,
 * on_ws_close at most once. At the end, what the peer received must be a sequence of complete
 * HTTP responses (at most one per dispatched request plus one error from the glue) with nothing
 * after one that says "Connection: close", optionally followed after a 101 by server frames with
 * nothing after a close frame; and the connection must be freed with no reference left.
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/http.h"
#include "net/ws_codec.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"
#include "fuzz_check.h"

#define BIG_LEN  (96 * 1024) /* a response or message larger than a small socket buffer */
#define OUT_KEEP (1 << 20)   /* peer bytes kept for the final check */

static struct net_server srv;
static struct net_io *io;
static uint8_t big[BIG_LEN];

/* What the harness knows about the one connection of the current input. */
static struct {
    struct conn *c;      /* NULL once freed */
    uint32_t rng;        /* harness choices */
    int pending;         /* a dispatched request has no answer yet */
    int deferred;        /* the pending request is answered at a later step (conn held) */
    int paused;          /* paused by the stub, resumed at a later step (conn held) */
    int upgraded;        /* http_upgrade_ws was called */
    int ws_closed;       /* on_ws_close ran */
    unsigned dispatched; /* on_request calls */
    int peer_slow;       /* peer reads only now and then */
    int peer_fd;
    int hung_up;  /* the peer shut its sending side (1) or closed the socket (2) */
    uint8_t *out; /* bytes the peer received (first OUT_KEEP) */
    size_t out_len;
    int out_truncated;
} h;

static uint32_t rnd(void)
{
    h.rng ^= h.rng << 13;
    h.rng ^= h.rng >> 17;
    h.rng ^= h.rng << 5;
    return h.rng;
}

/* ---- the stub server layer ---- */

static void respond(struct conn *c, int status, const void *body, size_t len)
{
    CHECK(h.pending && (c->flags & CONN_F_PENDING));
    h.pending = 0;
    http_respond(c, status, "text/plain", body, len, NULL);
}

static void on_request(struct conn *c, struct http_request *req)
{
    char accept[29];
    char act = req->path.len >= 2 ? req->path.p[1] : '/';

    CHECK(c == h.c);
    CHECK(!h.pending);                       /* one request at a time, each dispatched once */
    CHECK(c->state == CONN_HTTP);            /* never after the upgrade */
    CHECK(!(c->flags & CONN_F_CLOSE_FLUSH)); /* never after the last response */
    CHECK(!(c->flags & CONN_F_CLOSED));
    CHECK(c->flags & CONN_F_PENDING);
    h.pending = 1;
    h.dispatched++;
    if (req->upgrade) c->flags |= CONN_F_NO_KEEPALIVE; /* as app_on_request */
    if (act == 'u' || req->upgrade) {
        if (http_ws_check(req, accept) != CD_OK) {
            respond(c, 426, "upgrade refused", 15);
            return;
        }
        h.pending = 0;
        h.upgraded = 1;
        http_upgrade_ws(c, accept);
        c->app = &h; /* on_ws_close is due */
        if (rnd() % 2) {
            conn_pause(c); /* as the hub while it loads the rooms */
            conn_hold(c);
            h.paused = 1;
        }
        return;
    }
    switch (act) {
    case 'c':
        c->flags |= CONN_F_NO_KEEPALIVE;
        respond(c, 200, "bye", 3);
        break;
    case 'e':
        respond(c, 401, "{\"error\":{}}", 12);
        break;
    case 'd':
        conn_hold(c);
        h.deferred = 1;
        break;
    case 'b':
        respond(c, 200, big, sizeof(big));
        break;
    default:
        respond(c, 200, req->body.p, req->body.len > 64 ? 64 : req->body.len);
    }
}

static void on_ws_message(struct conn *c, uint8_t *data, size_t len)
{
    CHECK(c == h.c && h.upgraded && !h.ws_closed);
    CHECK(c->state == CONN_WS && !(c->flags & (CONN_F_CLOSED | CONN_F_PAUSED)));
    CHECK(len <= srv.lim.ws.max_message);
    switch (len ? data[0] : 0) {
    case 'c':
        conn_ws_close(c, 1000, "bye");
        break;
    case 'p':
        conn_ws_text(c, data, len);
        if (!h.paused) {
            conn_pause(c);
            conn_hold(c);
            h.paused = 1;
        }
        break;
    case 'b':
        conn_ws_text(c, big, sizeof(big));
        break;
    default:
        conn_ws_text(c, data, len);
    }
}

static void on_ws_close(struct conn *c)
{
    CHECK(c == h.c && h.upgraded && !h.ws_closed);
    CHECK(c->flags & CONN_F_CLOSED);
    h.ws_closed = 1;
}

/* ---- the harness's side of the socket ---- */

static void peer_read(void)
{
    uint8_t buf[65536];
    while (h.hung_up < 2) {
        ssize_t n = read(h.peer_fd, buf, sizeof(buf));
        if (n <= 0) {
            CHECK(n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNRESET);
            return;
        }
        if (h.out_len < OUT_KEEP) {
            size_t k = (size_t)n < OUT_KEEP - h.out_len ? (size_t)n : OUT_KEEP - h.out_len;
            memcpy(h.out + h.out_len, buf, k);
            h.out_len += k;
            if (k < (size_t)n) h.out_truncated = 1;
        } else {
            h.out_truncated = 1;
        }
    }
}

static int conn_exists(void)
{
    if (h.c && io->conns == NULL) h.c = NULL; /* freed by its close callback */
    return h.c != NULL;
}

static void check_conn(void)
{
    struct conn *c;
    const struct outq *q;
    uint64_t bytes = 0;

    if (!conn_exists()) return;
    c = h.c;
    q = &c->out;
    CHECK(io->nconns == 1 && io->conns == c && c->next == NULL);
    CHECK(q->n <= OUTQ_HARD_MAX && q->cap <= 2 * OUTQ_MAX_ITEMS);
    CHECK(q->n <= q->cap && q->inflight <= q->n && q->head < (q->cap ? q->cap : 1));
    CHECK((q->q == NULL) == (q->cap == 0));
    CHECK(q->inflight == 0 || (c->flags & CONN_F_WRITING));
    for (uint16_t i = 0; i < q->n; i++) {
        const struct rbuf *b = q->q[(q->head + i) % q->cap];
        CHECK(b != NULL && (i > 0 || q->off < b->len || b->len == 0));
        bytes += b->len - (i == 0 ? q->off : 0);
    }
    CHECK(bytes == q->bytes);
    CHECK(q->bytes <= srv.lim.ws_max_outq + WS_CLOSE_FRAME_MAX);
    CHECK(c->in_len <= c->in_cap && (c->in == NULL) == (c->in_cap == 0));
    CHECK(c->state == CONN_DEAD || c->state <= CONN_CLOSING);
    CHECK(!h.pending || (c->flags & (CONN_F_PENDING | CONN_F_CLOSED)));
    CHECK(c->state != CONN_WS || (!h.pending && c->http == NULL));
    if (c->flags & CONN_F_PENDING) CHECK(c->tcp.read_cb == NULL || (c->flags & CONN_F_CLOSED));
}

/* Complete the stub's deferred work when the dice say so (or always when `force`). */
static void complete_deferred(int force)
{
    if (h.deferred && (force || rnd() % 3 == 0)) {
        struct conn *c = h.c;
        h.deferred = 0;
        if (conn_alive(c))
            respond(c, 200, "later", 5); /* as api_call_finish */
        else
            h.pending = 0;
        conn_release(c);
        conn_exists();
    }
    if (h.paused && h.c && (force || rnd() % 3 == 0)) {
        struct conn *c = h.c;
        h.paused = 0;
        /* The hub resumes only a connection it still knows, i.e. before on_ws_close. */
        if (!h.ws_closed) {
            if (c->state == CONN_WS) conn_ws_text(c, "hello", 5);
            conn_resume(c);
        }
        conn_release(c);
        conn_exists();
    }
}

/* One loop iteration's worth of the server's own work between two reads. */
static void between(int force)
{
    complete_deferred(force);
    if (conn_exists()) net__conn_flush_all(io);
    if (!h.peer_slow || force || rnd() % 4 == 0) peer_read();
    uv_run(&io->loop, UV_RUN_NOWAIT); /* write completions, close callbacks */
    if (!h.hung_up && !force && rnd() % 128 == 0) {
        /* The client goes away mid-conversation: EOF (the read callback aborts), or a closed
         * socket (writes fail too), with requests or pauses of the stub possibly outstanding. */
        h.hung_up = rnd() % 2 ? 1 : 2;
        if (h.hung_up == 1)
            shutdown(h.peer_fd, SHUT_WR);
        else
            close(h.peer_fd);
        uv_run(&io->loop, UV_RUN_NOWAIT);
    }
    if (!io->draining && !force && rnd() % 64 == 0 && conn_exists()) {
        io->draining = 1; /* SIGTERM: WebSockets get 1001, the pending request is the last */
        net__conn_drain(io);
        if (conn_exists()) net__conn_flush_all(io);
    }
    if (force || rnd() % 8 == 0) {
        io->now_s += rnd() % 16 == 0 ? 40 : 1;
        net__conn_tick(io);
        if (conn_exists()) net__conn_flush_all(io);
        uv_run(&io->loop, UV_RUN_NOWAIT);
    }
    check_conn();
}

/* ---- the final check of what the peer received ---- */

static const uint8_t *find(const uint8_t *p, const uint8_t *end, const char *s)
{
    size_t n = strlen(s);
    for (; p + n <= end; p++)
        if (memcmp(p, s, n) == 0) return p;
    return NULL;
}

static void check_output(void)
{
    const uint8_t *p = h.out, *end = h.out + h.out_len;
    unsigned responses = 0;
    int ws = 0;

    while (p < end && !ws) {
        const uint8_t *eoh = find(p, end, "\r\n\r\n"), *cl;
        unsigned long len;
        int status, closing;
        if (!eoh) { /* a truncated head (the queue was dropped mid-write) */
            CHECK(memcmp(p, "HTTP/1.1 ", (size_t)(end - p) < 9 ? (size_t)(end - p) : 9) == 0);
            return;
        }
        CHECK(memcmp(p, "HTTP/1.1 ", 9) == 0);
        status = atoi((const char *)p + 9);
        responses++;
        CHECK(responses <= h.dispatched + 1);
        if (status == 101) {
            CHECK(h.upgraded);
            p = eoh + 4;
            ws = 1;
            break;
        }
        cl = find(p, eoh, "\r\nContent-Length: ");
        CHECK(cl != NULL);
        len = strtoul((const char *)cl + 18, NULL, 10);
        closing = find(p, eoh, "\r\nConnection: close\r\n") != NULL;
        p = eoh + 4;
        if ((size_t)(end - p) < len) return; /* truncated body */
        p += len;
        if (closing) CHECK(p == end && !h.out_truncated); /* nothing after the last response */
    }
    while (ws && p < end) { /* server frames: unmasked, FIN set */
        uint64_t len;
        size_t hl = 2;
        int op;
        if (end - p < 2) return;
        CHECK((p[0] & 0x80) && !(p[1] & 0x80));
        op = p[0] & 0x0F;
        CHECK(op == WS_OP_TEXT || op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG);
        len = p[1] & 0x7F;
        if (len == 126) {
            if (end - p < 4) return;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (end - p < 10) return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            hl = 10;
        }
        if ((uint64_t)(end - p) < hl + len) return;
        p += hl + len;
        if (op == WS_OP_CLOSE) CHECK(p == end && !h.out_truncated); /* nothing after our close */
    }
}

/* ---- set-up ---- */

/* As io.c's check and prepare handles: every loop iteration flushes before its close callbacks
 * run, so a connection on the dirty list is never freed (conn_free asserts it). */
static void on_check(uv_check_t *ch)
{
    (void)ch;
    net__conn_flush_all(io);
}

static void on_prepare(uv_prepare_t *p)
{
    (void)p;
    net__conn_flush_all(io);
}

static void init_once(void)
{
    static uv_check_t check;
    static uv_prepare_t prepare;
    static int done;
    if (done) return;
    done = 1;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_ERROR);
    srv.nio = 1;
    srv.io = xcalloc(1, sizeof(*srv.io));
    atomic_init(&srv.nconns, 0);
    atomic_init(&srv.draining, 0);
    io = &srv.io[0];
    io->srv = &srv;
    uv_loop_init(&io->loop);
    io->loop.data = io;
    io->rbuf = xmalloc(NET_READ_BUF);
    io->iov = xcalloc(NET_IOV_MAX, sizeof(uv_buf_t));
    io->now_s = 1000;
    uv_check_init(&io->loop, &check);
    uv_check_start(&check, on_check);
    uv_prepare_init(&io->loop, &prepare);
    uv_prepare_start(&prepare, on_prepare);
    srv.h.on_request = on_request;
    srv.h.on_ws_message = on_ws_message;
    srv.h.on_ws_close = on_ws_close;
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)('a' + i % 26);
    h.out = xmalloc(OUT_KEEP);
}

static void set_limits(uint8_t mode)
{
    srv.lim = (struct net_limits){
        .http_max_header = mode & 1 ? 200 : 8192,
        .http_max_headers = mode & 1 ? 4 : 64,
        .http_max_body = mode & 2 ? 16 : 65536,
        .http_timeout = 10,
        .http_keepalive = 60,
        .ws = {mode & 4 ? 32 : 65536, mode & 4 ? 64 : 65536},
        .ws_idle = 60,
        .ws_max_outq = mode & 8 ? 4096 : 4194304,
        .max_conns = 8,
        .drain_timeout = 10,
    };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    struct conn *c;
    size_t pos = 3;
    unsigned split, stalls = 0;
    uint8_t mode;

    if (size < 3) return 0;
    init_once();
    mode = data[0];
    split = mode >> 5;
    set_limits(mode);
    memset(&h, 0, offsetof(__typeof__(h), out)); /* hung_up included */
    h.out_len = 0;
    h.out_truncated = 0;
    h.rng = 0x9E3779B9u ^ ((uint32_t)data[1] << 8 | data[2]);
    h.peer_slow = (mode & 16) != 0;
    io->draining = 0;

    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    if (mode & 16) {
        int sz = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    h.peer_fd = sv[1];
    c = xcalloc(1, sizeof(*c));
    uv_tcp_init(&io->loop, &c->tcp);
    CHECK(uv_tcp_open(&c->tcp, sv[0]) == 0);
    CHECK(net__conn_add(io, c) == CD_OK);
    h.c = c;

    while (pos < size && conn_exists() && !(h.c->flags & CONN_F_CLOSED) && !h.hung_up) {
        size_t n = size - pos;
        uint8_t *buf;
        if (h.c->tcp.read_cb == NULL) { /* not reading: the bytes wait in the kernel */
            between(++stalls % 4 == 0);
            CHECK(stalls < 10000);
            continue;
        }
        if (split == 1)
            n = 1;
        else if (split > 1)
            n = 1 + rnd() % (2u << (2 * split));
        if (n > size - pos) n = size - pos;
        if (n > NET_READ_BUF) n = NET_READ_BUF;
        buf = xmalloc(n); /* exactly n bytes: ASan sees any overread */
        memcpy(buf, data + pos, n);
        net__conn_input(h.c, buf, n);
        free(buf);
        pos += n;
        check_conn();
        between(0);
    }
    /* Let the output drain, then end the connection as a peer would (EOF) and collect it. */
    for (int i = 0; i < 64 && conn_exists() && !(h.c->flags & CONN_F_CLOSED); i++) {
        complete_deferred(1);
        if (conn_exists()) net__conn_flush_all(io);
        peer_read();
        uv_run(&io->loop, UV_RUN_NOWAIT);
        check_conn();
        if (conn_exists() && h.c->out.n == 0 && !(h.c->flags & CONN_F_WRITING) && !h.pending &&
            !h.paused)
            break;
    }
    complete_deferred(1);
    peer_read();
    if (h.hung_up < 2) close(sv[1]);
    for (int i = 0; i < 100 && conn_exists(); i++) {
        if (i == 10 && !(h.c->flags & CONN_F_CLOSED)) conn_abort(h.c); /* not reading: paused */
        uv_run(&io->loop, UV_RUN_NOWAIT);
        complete_deferred(1);
    }
    CHECK(!conn_exists() && io->nconns == 0 && atomic_load(&srv.nconns) == 0);
    CHECK(!h.upgraded || h.ws_closed);
    CHECK(!h.deferred && !h.paused);
    if (getenv("FUZZ_CONN_VERBOSE")) { /* to read what a reproducer made the server send */
        fprintf(stderr, "dispatched %u, peer received %zu bytes:\n", h.dispatched, h.out_len);
        fwrite(h.out, 1, h.out_len, stderr);
        fputc('\n', stderr);
    }
    check_output();
    return 0;
}
