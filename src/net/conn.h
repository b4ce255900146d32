/* conn.h - one client connection: input reassembly, output queue, WebSocket state.
 *
 * Memory is the budget here (target: under 1 KB per idle authenticated WebSocket): the input
 * buffer exists only while a partial frame is pending, the output ring only while frames are
 * queued (trimmed by the tick), the HTTP state only until the upgrade.
 * All functions run on the connection's own I/O thread.
 */
#ifndef CD_CONN_H
#define CD_CONN_H

#include "net/net.h"

enum conn_state { CONN_HTTP = 0, CONN_WS, CONN_CLOSING, CONN_DEAD /* close_cb ran */ };

enum conn_flags {
    CONN_F_DIRTY = 1 << 0,        /* on the thread's dirty list */
    CONN_F_WRITING = 1 << 1,      /* a uv_write is in flight */
    CONN_F_PENDING = 1 << 2,      /* an HTTP request is being handled; reading paused */
    CONN_F_CLOSE_FLUSH = 1 << 3,  /* close once the output queue is empty; input is discarded */
    CONN_F_PING_SENT = 1 << 4,    /* idle ping outstanding */
    CONN_F_CLOSED = 1 << 5,       /* uv_close called */
    CONN_F_NO_KEEPALIVE = 1 << 6, /* close after the current HTTP response */
    CONN_F_PAUSED = 1 << 7        /* input held by the server layer (conn_pause) */
};

/* Items a connection may queue: conn_send refuses (and closes the connection) at OUTQ_MAX_ITEMS;
 * only a close frame may go past it, and nothing past OUTQ_HARD_MAX. The ring's capacity is a
 * power of two up to 2 * OUTQ_MAX_ITEMS, so the 16-bit counters can never wrap. */
#define OUTQ_MAX_ITEMS 16384
#define OUTQ_HARD_MAX  (OUTQ_MAX_ITEMS + 16)

struct outq {
    struct rbuf **q;       /* ring of references, NULL while empty and trimmed */
    uint32_t off;          /* bytes of q[head] already written */
    uint32_t bytes;        /* unwritten bytes queued (<= ws_max_outq + a close frame) */
    uint16_t head, n, cap; /* n <= OUTQ_HARD_MAX, cap <= 2 * OUTQ_MAX_ITEMS */
    uint16_t inflight;     /* items at head owned by the in-flight uv_write (<= n) */
};

struct http_state;

struct conn {
    uv_tcp_t tcp; /* first member: a handle pointer is a conn pointer */
    struct net_io *io;
    struct conn *prev, *next; /* io->conns */
    struct conn *dirty_next;  /* io->dirty */
    uint8_t state;            /* enum conn_state */
    uint8_t flags;            /* enum conn_flags */
    uint16_t close_code;      /* code sent in our close frame */
    uint32_t refs;            /* async work holding this conn (conn_hold) */
    uint32_t last_rx;         /* io->now_s of the last received bytes */
    uint32_t since;           /* request start, ping sent or close sent (io->now_s) */
    uint32_t deadline; /* WebSocket: at io->now_s >= deadline the tick calls on_ws_deadline once
                          (set by the server layer; 0 = none) */
    uint8_t *in;       /* unconsumed input (partial frame, paused request) or NULL */
    uint32_t in_len, in_cap;
    struct http_state *http; /* HTTP parser state until upgraded, lazily allocated */
    struct ws_reader ws;     /* WebSocket reassembly (no heap while idle) */
    struct outq out;
    uv_write_t *wreq; /* allocated on the first partial write only */
    int64_t user_id;  /* authenticated user, 0 if none (set by the server layer) */
    void *app;        /* server layer's per-connection state */
};

/* Queue a reference to b (takes a new reference; the caller keeps its own) and schedule a
 * flush at the end of this loop iteration. If the queue would exceed ws_max_outq bytes or
 * OUTQ_MAX_ITEMS items the connection is closed with 4008 (an HTTP connection is dropped) and
 * CD_E_UNAVAILABLE is returned; so it is on a closing connection. */
int conn_send(struct conn *c, struct rbuf *b);
/* Send a WebSocket text message: encodes header + payload into one new buffer. */
int conn_ws_text(struct conn *c, const void *data, size_t len);
/* Start the close handshake with code/reason; the socket closes when the peer answers, or after
 * the tick's grace period. Idempotent. */
void conn_ws_close(struct conn *c, uint16_t code, const char *reason);
/* Close the socket after queued output is written (HTTP: after the response). From here on
 * nothing more is read from the connection: bytes still buffered or arriving are discarded, so
 * no request after the last response is ever dispatched. Closed anyway if the peer does not
 * take the output within http_timeout seconds. */
void conn_close_after_flush(struct conn *c);
/* Close now, dropping queued output. Safe inside callbacks: memory is freed later. */
void conn_abort(struct conn *c);
/* Keep c's memory alive across async work; check conn_alive() when the work returns. */
static inline void conn_hold(struct conn *c)
{
    c->refs++;
}
void conn_release(struct conn *c);
static inline int conn_alive(const struct conn *c)
{
    return !(c->flags & CONN_F_CLOSED) && c->state != CONN_CLOSING;
}
/* Stop reading and processing input (bytes already received are kept) until conn_resume, which
 * processes them first. For work that must finish before the connection's next request. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* Peer address as text ("1.2.3.4" / "::1"); returns "unknown" on failure. */
void conn_peer_ip(struct conn *c, char *out, size_t cap);

/* Internal to src/net. */
void net__conn_accept(struct net_io *io, uv_stream_t *listener);
/* Register c, whose handle is initialised and connected (c zeroed otherwise), on io and start
 * reading. Over max_conns or while draining the handle is closed and c freed: CD_E_UNAVAILABLE.
 */
int net__conn_add(struct net_io *io, struct conn *c);
/* The read callback's work for n > 0 received bytes: buf is the caller's (it may be modified in
 * place, e.g. unmasked, and is not kept; a tail not consumed yet is copied into c->in). */
void net__conn_input(struct conn *c, uint8_t *buf, size_t n);
void net__conn_flush_all(struct net_io *io);
void net__conn_tick(struct net_io *io);
void net__conn_drain(struct net_io *io);
void net__conn_process_input(struct conn *c);
void net__conn_mark_dirty(struct conn *c);
void net__conn_read_start(struct conn *c);

#endif
