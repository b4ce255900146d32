/* cb.h - chatbench internals shared by its files.
 *
 * Layout: main.c (options, processes, shared statistics, results), client.c (the epoll WebSocket
 * client engine: connect, upgrade, frames, open-loop sender), proto.c (one adapter per target:
 * ceiling/ws, socket.io, NATS, MQTT, chatd), hist.c (log-bucketed latency histogram), rest.c
 * (small blocking HTTP/1.1 client for chatd's REST API), chatd.c (chatd-only setup and scenarios).
 *
 * Processes: the parent forks --procs workers after any REST setup. Workers share one anonymous
 * MAP_SHARED region: per-worker statistics (written only by their owner) and a few control words
 * written only by the parent. CLOCK_MONOTONIC is system-wide, so send timestamps taken by one
 * process are valid in every other.
 */
#ifndef CHATBENCH_CB_H
#define CHATBENCH_CB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- histogram (hist.c) ---- */

/* Log-linear buckets, as HdrHistogram: values below 128 are exact; above, each power of two is
 * split into 64 sub-buckets, so a recorded value is off by at most 1/64 (1.6 %). Covers 0..2^63. */
#define CB_HIST_SUB 64
#define CB_HIST_BUCKETS (CB_HIST_SUB * 60)

struct cb_hist {
    uint64_t count[CB_HIST_BUCKETS];
    uint64_t total;
    uint64_t sum; /* for the mean; wraps only after ~584 years of summed nanoseconds */
    uint64_t max;
};

void cb_hist_add(struct cb_hist *h, uint64_t v);
void cb_hist_merge(struct cb_hist *dst, const struct cb_hist *src);
/* Value at percentile p (0..100): the upper edge of the bucket holding it; 0 when empty. */
uint64_t cb_hist_pct(const struct cb_hist *h, double p);

/* ---- options ---- */

enum cb_target { T_CEILING, T_WS, T_SOCKETIO, T_NATS, T_MQTT, T_CHATD };
enum cb_scenario { SC_FANOUT, SC_CONNECTIONS, SC_DURABLE, SC_HISTORY, SC_STORM, SC_MIX };

/* One server URL. --url takes a comma-separated list: connection i goes to url i % n (several
 * nodes of a cluster); REST setup, history and storm posts go to the first. */
#define CB_MAX_URLS 16
struct cb_url {
    char host[64];
    int port;
    char path[128];
};

struct cb_opts {
    enum cb_scenario scenario;
    enum cb_target target;
    char host[64]; /* the first url */
    int port;
    char path[128];
    struct cb_url urls[CB_MAX_URLS];
    int nurls;
    int receivers;        /* fanout: receiving connections */
    int senders;          /* fanout/durable: sending connections */
    double rate;          /* messages/s per sender */
    int size;             /* message body bytes (>= CB_BODY_MIN) */
    double duration;      /* measured seconds */
    double warmup;        /* seconds of load before the measurement window */
    double drain;         /* seconds to wait for in-flight deliveries after the window */
    int procs;            /* worker processes */
    int conns;            /* connections scenario: idle connections */
    int src_addrs;        /* source addresses 127.0.0.1..N */
    int concurrency;      /* connects in flight per worker */
    double connect_timeout;
    pid_t server_pid;     /* 0 = unknown: no RSS / server CPU figures */
    int users;            /* chatd: users the connections are spread over */
    int rooms;            /* chatd durable/storm: rooms */
    int missed;           /* storm: messages each connection misses */
    long history_msgs;    /* history: messages in the room */
    int queries;          /* history: queries per kind */
    char label[64];       /* free text copied into the result */
    int quiet;            /* no progress line */
    double tick_us;       /* send quantum: messages due within one tick go out together (0 = none) */
    /* mix: users in small rooms and DMs, a share of them sending, steady reconnect churn */
    int room_size;        /* members per group room (about) */
    int rooms_per_user;   /* group rooms each user is in */
    int dms;              /* direct rooms each user is in (about; even) */
    double senders_share; /* share of users who send (their first connection sends) */
    double churn;         /* connections/s closed and reconnected with sync */
    int setup_procs;      /* parallel REST clients during setup */
    double every;         /* > 0: append one CSV line of interval figures every this many seconds */
    char every_file[256]; /* where those lines go (bench/soak.sh reads them) */
};

/* ---- message body ----
 * Every message body starts with "#T<16 hex ns send time>S<8 hex sender>Q<8 hex seq>" and is
 * padded with '.' to --size bytes. Fixed width: the receiver finds it with one memchr and parses
 * it without a JSON parser, whatever envelope the target wraps around it. */
#define CB_BODY_MIN 36

/* ---- shared statistics ---- */

struct cb_stats {
    volatile uint64_t ready;    /* 1 once this worker finished connecting */
    volatile uint64_t done;     /* 1 once this worker left its loop */
    volatile uint64_t dropped;  /* storm: 1 once this worker closed all its connections */
    uint64_t conns_ok, conns_failed, recv_ready, send_ready;
    uint64_t closed;            /* connections lost after being ready */
    uint64_t errors;            /* protocol errors, error replies, refused sends */
    uint64_t sent;              /* messages sent with a timestamp inside the window */
    uint64_t sent_total;
    uint64_t received;          /* unique window deliveries to receivers */
    uint64_t received_total;    /* every delivery carrying a timestamp */
    uint64_t dups;              /* deliveries with a seq at or below the last seen */
    uint64_t acks, ack_window;  /* chatd acks (all / of window messages) */
    uint64_t ack_in_time;       /* acks of window messages received before the window ended */
    uint64_t frames_in, bytes_in, reads;
    uint64_t send_lag_max;      /* worst lateness of the open-loop schedule, ns */
    uint64_t cpu_window_ns;     /* worker CPU time spent inside the measurement window */
    uint64_t t_first_connect, t_last_ready;
    uint64_t synced;            /* storm: connections that got `synced` */
    uint64_t storm_ok;          /* storm: connections that got exactly the missed messages */
    uint64_t expected;          /* mix: deliveries owed for window messages (member conns - 1) */
    uint64_t gaps;              /* mix: seqs skipped in a connection's view of a room */
    uint64_t replayed;          /* mix: window messages that came by sync after a reconnect */
    uint64_t reconnects, reconnect_failed, churn_deferred;
    uint64_t skipped_offline;   /* mix: sends due while the sender was reconnecting (not sent) */
    struct cb_hist lat;         /* delivery latency of window messages */
    struct cb_hist hs;          /* connect -> ready */
    struct cb_hist ack;         /* send -> ack (chatd) */
    struct cb_hist sync;        /* storm: reconnect -> synced */
    struct cb_hist reconn;      /* mix: drop -> synced (reconnect, sync replay, live again) */
    struct cb_hist lat_cross;   /* several --url: latency of window deliveries whose sender's
                                 * connection went to another url than the receiver's */
};

struct cb_shared {
    volatile uint64_t start_ns; /* 0 until every worker is ready; then the load start time */
    volatile uint64_t stop;     /* the parent asks workers to finish */
    volatile uint64_t phase;    /* storm: 1 = drop all connections, 2 = reconnect */
    int nworkers;
    int total_receivers, total_senders;
    struct cb_stats st[];
};

/* ---- chatd setup data (filled by the parent before fork) ---- */

struct cb_user {
    char id[48];
    char token[512];
};

struct cb_room {
    char id[48];
    uint64_t last_seq; /* storm: last seq every connection saw before the drop */
};

struct cb_world {
    struct cb_user *users;
    int nusers;
    struct cb_room *rooms;
    int nrooms;
    /* mix */
    int ngroups, ndms;        /* rooms[0..ngroups) are groups, then the DMs */
    int *user_room_off;       /* user u's rooms: user_rooms[user_room_off[u]..user_room_off[u+1]) */
    int *user_rooms;
    uint32_t *room_conns;     /* connections of the room's members */
    int *room_hash;           /* open addressing on the room id: room index + 1, 0 = empty */
    uint32_t room_hash_mask;
};

/* ---- client engine (client.c) ---- */

enum cb_role { ROLE_IDLE, ROLE_RECV, ROLE_SEND };
enum cb_cstate { CS_PENDING, CS_CONNECTING, CS_UPGRADING, CS_OPENING, CS_READY, CS_CLOSED };

struct cb_conn {
    int fd;
    uint8_t state;    /* enum cb_cstate */
    uint8_t role;     /* enum cb_role */
    uint8_t want_out; /* EPOLLOUT registered */
    uint8_t pstate;   /* adapter's handshake step */
    uint32_t gid;     /* global connection number */
    uint32_t sender;  /* global sender number (senders) */
    uint32_t user;    /* chatd user index */
    uint32_t room;    /* chatd room index */
    uint32_t seq;     /* senders: last seq sent */
    uint32_t got;     /* storm: messages received since reconnecting */
    uint64_t t0;      /* connect start, ns */
    uint8_t *in;      /* WebSocket bytes carried to the next read */
    uint32_t in_len, in_cap;
    uint8_t *app;     /* stream protocols (NATS, MQTT): bytes of an op split across frames */
    uint32_t app_len, app_cap;
    uint8_t *out;     /* bytes the socket did not take yet */
    uint32_t out_off, out_len, out_cap;
    uint32_t *last_seq; /* receivers: last seq seen per global sender (duplicate detection) */
    /* mix (kept across reconnects) */
    uint64_t *rseq;     /* last seq seen per room of the user (world->user_rooms order) */
    uint64_t t_drop;    /* when churn closed it */
    uint16_t pending;   /* sends not acked yet */
    uint8_t reconnecting; /* closed by churn, not synced again yet */
    uint8_t syncing;      /* between hello and synced */
};

struct cb_proto;

struct cb_worker {
    int id;
    const struct cb_opts *o;
    const struct cb_proto *proto;
    const struct cb_world *world;
    struct cb_shared *sh;
    struct cb_stats *st;
    int ep, tfd;
    struct cb_conn *conns;
    int nconns;
    int next_connect; /* next CS_PENDING connection to start */
    int inflight;
    int opened;       /* connections that reached ready or failed */
    int *senders;     /* indexes into conns */
    int nsenders;
    uint64_t win_start, win_end;
    uint64_t k;       /* next message number of this worker's schedule */
    double period;    /* ns between this worker's messages */
    uint64_t phase_ns;
    uint64_t now;     /* time of the last read, ns */
    int storm;        /* storm: 1 while reconnecting (hello -> sync) */
    uint64_t churn_k; /* mix: churn events done */
    int churn_next;   /* mix: next connection to churn */
};

/* Adapter for one target. Every callback runs on the worker's loop and must not block. */
struct cb_proto {
    const char *name;
    int opcode;              /* opcode of our data frames: 1 text, 2 binary */
    const char *subprotocol; /* Sec-WebSocket-Protocol to offer, or NULL */
    int stream;              /* 1: payloads are a byte stream (ops may span frames) */
    /* Request target (path + query) for connection c. */
    void (*path)(struct cb_worker *w, struct cb_conn *c, char *out, size_t cap);
    /* After the 101: send the opening messages, or call cb_conn_ready at once. */
    void (*on_open)(struct cb_worker *w, struct cb_conn *c);
    /* One data message (or, when stream is set, a run of stream bytes). Returns the bytes
     * consumed: less than n only for stream adapters, which then get the rest again with more. */
    size_t (*on_data)(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n);
    /* Wrap body[0..blen) into this target's publish payload in out; returns its length. */
    size_t (*encode)(struct cb_worker *w, struct cb_conn *c, uint8_t *out, const char *body,
                     size_t blen);
};

const struct cb_proto *cb_proto_for(enum cb_target t);
const char *cb_target_name(enum cb_target t);

uint64_t cb_now(void);
/* Send one masked frame with payload p[0..n). Queues what the socket does not take. */
void cb_send_frame(struct cb_worker *w, struct cb_conn *c, int opcode, const void *p, size_t n);
/* The adapter finished its opening exchange. */
void cb_conn_ready(struct cb_worker *w, struct cb_conn *c);
/* A protocol-level failure on c: counted, and the connection is closed. */
void cb_conn_fail(struct cb_worker *w, struct cb_conn *c, const char *why);
/* p points at a body ("#T..."): record one delivery to c. */
void cb_record(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n);
/* Find the body marker in p[0..n) and record it; returns 0 when there is none. */
int cb_record_scan(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n);
/* Record a live window delivery's latency (and, with several urls, whether it crossed nodes:
 * snd is the body's sender number). */
void cb_record_latency(struct cb_worker *w, struct cb_conn *c, uint64_t ts, uint64_t snd);
/* Parse 16 hex digits; returns UINT64_MAX on a non-hex digit. */
uint64_t cb_hex(const uint8_t *p, int digits);

/* Run one worker: connect its share of connections, take part in the run, return. */
void cb_worker_run(struct cb_worker *w);

/* ---- REST client (rest.c) ---- */

/* Blocking HTTP/1.1 request on a kept-alive connection (*fd, -1 = connect first). Returns the
 * status code and the malloc'ed body in *body (NUL-terminated), or -1 on a transport error. */
int cb_http(int *fd, const char *host, int port, const char *method, const char *path,
            const char *token, const char *json, char **body);
/* Copy the string value of "key" (first occurrence) from a JSON text; returns 0 or -1. */
int cb_json_str(const char *json, const char *key, char *out, size_t cap);
/* Number value of "key", or -1. */
long long cb_json_num(const char *json, const char *key);

/* ---- chatd scenarios (chatd.c) ---- */

/* Register user PREFIX_i (password chatbench-pass) into u. Returns 0 or -1 (printed). */
int cb_chatd_register(const struct cb_opts *o, int *fd, const char *prefix, int i,
                      struct cb_user *u);
/* Register users and create rooms for the scenario; fills world. Returns 0 or -1. */
int cb_chatd_setup(const struct cb_opts *o, struct cb_world *world);
/* Storm, parent side: post o->missed messages to every room (REST) while all connections are
 * down; updates nothing the workers read. Returns the number of failed posts. */
int cb_chatd_post_missed(const struct cb_opts *o, const struct cb_world *world);
/* Storm, worker side: the connection said hello after the drop; ask for what it missed. */
void cb_chatd_send_sync(struct cb_worker *w, struct cb_conn *c);
/* History scenario (REST only, no workers). Prints the JSON result; returns the exit code. */
int cb_chatd_history(const struct cb_opts *o);

/* ---- mix (mix.c) ---- */

/* Users, group rooms and DMs through REST (parallel clients), then the room index. */
int cb_mix_setup(const struct cb_opts *o, struct cb_world *world);
/* Worker side: per-connection room state, before connecting. */
void cb_mix_init_conn(struct cb_worker *w, struct cb_conn *c);
/* The room this send goes to (a random room of the sender's user); sets c->room. */
void cb_mix_pick_room(struct cb_worker *w, struct cb_conn *c);
/* A `message` (or `member`/`room` entry) / `ack` / `synced` event on c. */
void cb_mix_on_message(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n);
void cb_mix_on_ack(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n);
void cb_mix_on_synced(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n);
/* After hello: sync every room of the user from the last seq this connection saw. */
void cb_mix_send_sync(struct cb_worker *w, struct cb_conn *c);

#endif
