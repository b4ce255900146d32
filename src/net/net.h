/* net.h - the network core: I/O threads, connections, HTTP/1.1 and WebSocket transport.
 *
 * One libuv loop per I/O thread; each thread owns its own SO_REUSEPORT listener, so the kernel
 * spreads connections across threads and a connection never changes thread. Threads talk only by
 * message passing: net_post() pushes a task on a thread's lock-free inbox and wakes it with
 * uv_async. Output is queued as references to refcounted buffers (struct rbuf) and flushed once
 * per connection per loop iteration (uv_check), with writev, so a frame that goes to many
 * connections is encoded once and the syscall count per delivery falls as load rises.
 *
 * This layer knows nothing about chat: it calls the server layer through struct net_handlers.
 */
#ifndef CD_NET_H
#define CD_NET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/ws_codec.h"
#include "util/mpsc.h"
#include "util/rbuf.h"

struct slice {
    const char *p;
    size_t len;
};
#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})
int slice_eq(struct slice a, const char *lit);
int slice_case_eq(struct slice a, const char *lit);

#define NET_READ_BUF (64 * 1024) /* per-thread read buffer */
#define NET_IOV_MAX  256         /* buffers per writev */

struct net_io;
struct conn;
struct http_request;

enum { HTTP_STREAM_NO = 0, HTTP_STREAM_YES = 1, HTTP_STREAM_ANSWERED = -1 };

struct net_limits {
    uint32_t http_max_header;  /* request line + headers, bytes -> 431 / 414 */
    uint32_t http_max_headers; /* header count -> 431 */
    uint32_t http_max_body;    /* body bytes -> 413 */
    uint32_t http_timeout;     /* seconds for one whole request -> 408 */
    uint32_t http_keepalive;   /* idle keep-alive seconds -> close */
    struct ws_limits ws;       /* frame / message sizes -> 1009 */
    uint32_t ws_idle;          /* seconds: ping at half, close 4000 at full */
    uint32_t ws_max_outq;      /* queued output bytes -> close 4008 */
    uint32_t max_conns;        /* node-wide open connections; over it new ones are refused */
    uint32_t drain_timeout;    /* seconds SIGTERM waits before force-closing */
};

struct net_handlers {
    /* A complete HTTP request. Reading pauses until the handler calls http_respond() or
     * http_upgrade_ws(), now or later on this thread (hold the conn with conn_hold first). */
    void (*on_request)(struct conn *c, struct http_request *req);
    /* Optional: the head of a request with a body arrived. Return HTTP_STREAM_NO to collect the
     * body as usual (up to http_max_body), HTTP_STREAM_YES to have it handed to on_stream_data
     * as it arrives (no size limit here: the handler enforces its own; a stalled body times out
     * after http_timeout seconds without bytes), or HTTP_STREAM_ANSWERED after answering with
     * http_respond (the body is not read; the connection closes after the answer). req's
     * slices are valid during the call only. on_request follows the complete body as usual,
     * with an empty req->body. */
    int (*on_stream_begin)(struct conn *c, struct http_request *req);
    /* Bytes of a streamed body, valid during the call. Return 0 to go on, or nonzero after
     * answering (the rest of the input is dropped; the connection closes after the answer).
     * The handler may conn_pause(c) to stop reading until it has room. */
    int (*on_stream_data)(struct conn *c, const char *p, size_t n);
    /* The connection closed while the state set by http_stream_set was still attached. */
    void (*on_stream_abort)(struct conn *c, void *ud);
    /* A complete WebSocket text message (validated UTF-8). */
    void (*on_ws_message)(struct conn *c, uint8_t *data, size_t len);
    /* An open WebSocket reached its c->deadline (checked by the 1 s tick, so up to a second
     * late); the deadline is cleared first. Optional. */
    void (*on_ws_deadline)(struct conn *c);
    /* An upgraded connection is gone (called once, before its memory is released). */
    void (*on_ws_close)(struct conn *c);
    /* Once per I/O thread at start (on that thread) and at net_free (per-thread app state). */
    void (*on_thread_start)(struct net_io *io);
    void (*on_thread_stop)(struct net_io *io);
    /* At the end of every loop iteration, before connections are flushed (batch hand-offs). */
    void (*on_loop_end)(struct net_io *io);
    /* Every second on each I/O thread (timers of the server layer, e.g. typing expiry). */
    void (*on_tick)(struct net_io *io);
};

/* Per-thread counters. Written only by the owning thread (relaxed atomics: no lock prefix is
 * needed for a single writer); read by /metrics from any thread. */
struct net_stats {
    _Atomic uint64_t conns_open, conns_total, ws_open, frames_in, frames_out, bytes_in, bytes_out,
        slow_closed, refused;
};
#define STAT_ADD(io, field, n)                                                                     \
    atomic_store_explicit(&(io)->stats.field,                                                      \
                          atomic_load_explicit(&(io)->stats.field, memory_order_relaxed) + (n),    \
                          memory_order_relaxed)

struct net_task {
    struct mpsc_node node;
    void (*run)(struct net_io *io, struct net_task *t); /* runs on the target thread; owns t */
};

struct net_server;

struct net_io {
    uv_loop_t loop;
    struct net_server *srv;
    int index; /* 0..n-1 */
    uv_thread_t thread;
    uv_tcp_t listener;
    uv_async_t wake; /* inbox and drain signal */
    struct mpsc inbox;
    uv_check_t flush;      /* end-of-iteration flush of dirty connections */
    uv_prepare_t preflush; /* the same before polling, for output queued by timers */
    uv_timer_t tick;       /* 1 s: timeouts, idle pings, buffer trimming */
    struct conn *conns;    /* all connections of this thread (doubly linked) */
    struct conn *dirty;    /* connections with output to flush this iteration */
    uint32_t nconns;
    uint32_t now_s; /* seconds since start, updated each tick */
    int draining;
    uint64_t drain_deadline_ms;
    uint8_t *rbuf; /* shared read buffer: connections hold no input buffer while idle */
    uv_buf_t *iov; /* scratch for writev */
    struct net_stats stats;
    void *app; /* the server layer's per-thread state */
};

struct net_server {
    struct net_io *io;
    int nio;
    struct net_limits lim;
    struct net_handlers h;
    void *app;                        /* the server layer's global state */
    const struct proxy_list *trusted; /* --trusted-proxies (net/proxy.h), NULL = none */
    _Atomic uint32_t nconns;          /* node-wide */
    _Atomic int draining;
    uint64_t start_ms;
};

struct proxy_list;
/* Parse "host:port", "[v6]:port" or ":port" (any IPv4 address) into ss. 0, or -1 when malformed. */
struct sockaddr_storage;
int net_parse_addr(const char *addr, struct sockaddr_storage *ss);
/* Bind one SO_REUSEPORT listener per thread on addr ("host:port", IPv4 or [IPv6]:port) and start
 * the threads. Returns CD_OK, or CD_E_IO after logging why (bad address, bind failure). */
int net_start(struct net_server *s, const char *addr, int nthreads);
/* Ask every thread to drain: stop accepting, close WebSockets with 1001, finish responses in
 * flight, then exit when its connections are gone or drain_timeout passed. Any thread. */
void net_drain(struct net_server *s);
/* Wait for all threads to exit their loops. Blocks. net_post stays safe afterwards. */
void net_join(struct net_server *s);
/* After net_join: run tasks still queued, call on_thread_stop, release everything. */
void net_free(struct net_server *s);

/* Run t on thread io (from any thread). Lock-free; wakes the thread. */
void net_post(struct net_io *io, struct net_task *t);

/* Milliseconds since the server started (monotonic, any thread). */
uint64_t net_now_ms(void);

#endif
