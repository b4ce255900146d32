/* store.h - durable storage behind one small vtable, plus the single-writer group-commit queue.
 *
 * Backends implement struct store_ops (SQLite: store_sqlite.c; PostgreSQL: store_pg.c). All ops are
 * synchronous and may block on disk: they run only on the writer thread (writes, inside a
 * transaction the queue opens) or on worker threads with a per-thread read connection (reads),
 * never on an I/O thread.
 *
 * Writes: store_submit() queues a job from any thread. The writer thread takes every queued job,
 * runs each inside one transaction (a savepoint per job, so one failing job does not undo the
 * others), commits once, and only then calls each job's done() with its status: many writes
 * share one commit (group commit) and nothing is reported durable before it is.
 */
#ifndef CD_STORE_H
#define CD_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_USERNAME_MAX 32
#define STORE_PWHASH_MAX   128

struct store;      /* a backend instance (database) */
struct store_conn; /* one connection, used by one thread at a time */

struct store_user {
    int64_t id;
    char username[STORE_USERNAME_MAX + 1];
    char pwhash[STORE_PWHASH_MAX]; /* libsodium crypto_pwhash_str format */
    int64_t created_at;            /* unix ms */
    int64_t last_seen;             /* unix ms, 0 = never */
};

struct store_refresh {
    int64_t id;
    int64_t session_id; /* the token family */
    int64_t user_id;
    uint8_t hash[32]; /* SHA-256 of the token; the token itself is never stored */
    int64_t created_at, expires_at, used_at; /* unix ms; used_at 0 = unused */
    int session_revoked;
};

#define STORE_ROOM_NAME_MAX  100
#define STORE_ROOM_TOPIC_MAX 500

enum store_room_kind { ROOM_GROUP = 0, ROOM_DIRECT = 1 };
enum store_role { ROLE_MEMBER = 0, ROLE_ADMIN = 1, ROLE_OWNER = 2 };
/* Kinds of entries in a room's log; all share the room's seq space. */
enum store_event_kind { EV_MESSAGE = 0, EV_MEMBER = 1, EV_ROOM = 2 };

struct store_room {
    int64_t id;
    int kind; /* enum store_room_kind */
    char name[STORE_ROOM_NAME_MAX + 1];
    char topic[STORE_ROOM_TOPIC_MAX + 1];
    int64_t created_by, created_at; /* user id, unix ms */
    int64_t last_seq;               /* highest seq in the room's log, 0 when empty */
    int64_t member_count;
};

struct store_member {
    int64_t room_id, user_id;
    int role;           /* enum store_role */
    int64_t joined_seq; /* seq of the member event that added the user */
    int64_t read_seq;   /* read marker, monotonic */
};

/* One entry of a room's log. Strings are not NUL-terminated; they point into the caller's memory
 * (writes) or the backend's row buffer, valid during the callback only (reads). */
struct store_event {
    int64_t room_id, seq;
    int kind;         /* enum store_event_kind */
    int64_t sender;   /* author of a message, actor of a member/room event */
    int64_t ts;       /* unix ms at commit */
    const char *body; /* message text, or the JSON details of a member/room event */
    size_t body_len;
    const char *client_msg_id; /* NULL for non-messages */
    size_t cmid_len;
};

typedef int (*store_event_cb)(void *ud, const struct store_event *ev); /* nonzero stops */

/* One event of the outbox: what consumers (relay, webhooks, exporters, GET /v1/server/events)
 * read. Strings are not NUL-terminated and are valid during the callback only.
 * Ids: "m_<room>_<seq>" for messages (the protocol's msg_id), "e_<room>_<seq>" for member and
 * room entries, "rc_<room>" for a room's creation, "uc_<user>" for a user's. */
struct store_outbox_event {
    int64_t pos;    /* global, commit order, > 0, no gaps */
    const char *id; /* stable event id: consumers de-duplicate on it */
    size_t id_len;
    const char *type; /* "message", "member", "room", "room.created",
                         "user.created" */
    size_t type_len;
    int64_t room_id;  /* 0 when not a room's event */
    int64_t ts;       /* unix ms at commit */
    const char *json; /* the event as JSON (docs/PROTOCOL.md, "Event stream") */
    size_t json_len;
};
typedef int (*store_outbox_cb)(void *ud, const struct store_outbox_event *ev); /* nonzero stops */

#define STORE_APIKEY_NAME_MAX 64
struct store_apikey {
    int64_t id;
    char name[STORE_APIKEY_NAME_MAX + 1];
    int64_t created_at, revoked_at; /* unix ms; revoked_at 0 = active */
};
typedef int (*store_apikey_cb)(void *ud, const struct store_apikey *k); /* nonzero stops */
#define STORE_WEBHOOK_URL_MAX    1024
#define STORE_WEBHOOK_SECRET_MAX 128
#define STORE_WEBHOOK_TYPES_MAX  256
#define STORE_EVENT_ID_MAX       64
#define STORE_DELIVERY_ERROR_MAX 200

/* A webhook endpoint. types: comma-separated event types it receives ("message,member"), "*" for
 * all. kind: WEBHOOK_EVENTS (outbox events) or WEBHOOK_NOTIFY (offline notifications). */
enum store_webhook_kind { WEBHOOK_EVENTS = 0, WEBHOOK_NOTIFY = 1 };
struct store_webhook {
    int64_t id;
    int kind;
    char url[STORE_WEBHOOK_URL_MAX + 1];
    char secret[STORE_WEBHOOK_SECRET_MAX + 1];
    char types[STORE_WEBHOOK_TYPES_MAX + 1];
    int64_t created_at; /* unix ms */
};
typedef int (*store_webhook_cb)(void *ud, const struct store_webhook *w); /* nonzero stops */

/* A delivery of one event (or notification) to one endpoint. Endpoint ids below 0 are the ones
 * given by flags (roles_webhook.h), not rows. body: the JSON POSTed, valid during the callback
 * only (reads) or the caller's (writes). */
enum store_delivery_state { DELIVERY_PENDING = 0, DELIVERY_DONE = 1, DELIVERY_DEAD = 2 };
struct store_delivery {
    int64_t id;
    int64_t endpoint_id;
    char event_id[STORE_EVENT_ID_MAX + 1];
    const char *body;
    size_t body_len;
    int state; /* enum store_delivery_state */
    int attempts;
    int64_t next_at, created_at; /* unix ms */
    char last_error[STORE_DELIVERY_ERROR_MAX + 1];
};
typedef int (*store_delivery_cb)(void *ud, const struct store_delivery *d); /* nonzero stops */
/* A room of a user, with the user's membership, for room listings. */
typedef int (*store_room_cb)(void *ud, const struct store_room *room, const struct store_member *m);

struct store_config {
    const char *url;       /* PostgreSQL: libpq connection URL (postgres://...); SQLite: unused */
    const char *dir;       /* data directory (created if missing) */
    const char *sync_mode; /* "full" or "normal" (SQLite synchronous in WAL mode) */
    /* Least time between the starts of two group commits. A job that arrives sooner waits for
     * the rest of the interval with whatever else arrives: under load commits grow instead of
     * multiplying (every commit writes each page it touched), and an idle store commits at
     * once. Adds at most this much to a write's latency. 0 = commit as soon as possible. */
    int64_t commit_interval_us;
    /* Under continuous writes the WAL restarts from its beginning once it holds this many frames
     * (0 = 32768, 64 MiB of 2 KiB pages): the writer then stops for one checkpoint of the last
     * frames (two fsyncs, a few ms). Larger: rarer stops, a longer WAL file. */
    int64_t wal_restart_frames;
    /* store_health reports a batch that has run for longer than this (0 = 10000 ms). */
    int64_t stall_ms;
};

/* Multi-row callbacks run while their statement is open: they may call other ops on the same
 * connection but must not re-enter the op that called them. limit 0 returns nothing.
 * Errors: every op returns CD_OK or a status from util/status.h: CD_E_NOT_FOUND (no row),
 * CD_E_USERNAME_TAKEN / CD_E_CONFLICT (uniqueness), CD_E_IO (backend failure, logged),
 * CD_E_UNAVAILABLE (PostgreSQL: the server is unreachable; the connection is reopened on its next
 * use). commit and rollback return CD_AGAIN when the transaction was aborted by a deadlock or a
 * serialization failure (PostgreSQL with several writers): the batch may simply run again. */
struct store_ops {
    const char *name;
    int (*open)(const struct store_config *cfg, struct store **out); /* runs migrations */
    void (*close)(struct store *st);
    int (*conn_open)(struct store *st, int writer, struct store_conn **out);
    void (*conn_close)(struct store_conn *c);

    /* WAL checkpoint without blocking the writer or readers. Runs on the maintenance thread's
     * connection (the bulk) and, between transactions, on the writer's (the tail, so the log
     * can restart from its beginning). *wal_frames (unless NULL) gets the frames in the WAL. */
    int (*checkpoint)(struct store_conn *c, int *wal_frames);
    /* Inside the writer's transaction: a write that changes no data but makes the commit write
     * to the database files, so a commit proves that storage takes writes (readiness). */
    int (*probe)(struct store_conn *c);

    int (*begin)(struct store_conn *c);
    int (*commit)(struct store_conn *c);
    int (*rollback)(struct store_conn *c);
    int (*savepoint)(struct store_conn *c);
    int (*savepoint_release)(struct store_conn *c, int undo); /* undo: roll the savepoint back */
    /* Optional (NULL: single writer, nothing to order). Called by the writer right after begin
     * with the batch's rooms, sorted ascending and distinct: locks their rows in that order, so
     * two nodes' batches never take the same rooms' locks in opposite orders (no deadlock).
     * optimistic: every job of the batch can run again (store_job.reset), so the backend may
     * answer appends to these rooms before it knows they succeeded; a late duplicate then
     * makes commit return CD_AGAIN and the batch runs again with optimistic 0. */
    int (*lock_rooms)(struct store_conn *c, const int64_t *room_ids, size_t n, int optimistic);

    /* accounts */
    int (*user_insert)(struct store_conn *c, const char *username, const char *pwhash,
                       int64_t now_ms, int64_t *id_out);
    int (*user_get)(struct store_conn *c, int64_t id, struct store_user *out);
    int (*user_by_name)(struct store_conn *c, const char *username, struct store_user *out);
    int (*user_set_last_seen)(struct store_conn *c, int64_t id, int64_t ms);

    /* sessions and refresh tokens (rotation, reuse detection) */
    int (*session_insert)(struct store_conn *c, int64_t user_id, int64_t now_ms, int64_t *sid);
    int (*session_revoke)(struct store_conn *c, int64_t sid, int64_t now_ms);
    /* Every session revoked at or after since_ms: cb(ud, sid, revoked_at_ms); a nonzero return
     * stops. */
    int (*sessions_revoked_since)(struct store_conn *c, int64_t since_ms,
                                  int (*cb)(void *ud, int64_t sid, int64_t revoked_at_ms),
                                  void *ud);
    int (*refresh_insert)(struct store_conn *c, struct store_refresh *r); /* sets r->id */
    int (*refresh_by_hash)(struct store_conn *c, const uint8_t hash[32], struct store_refresh *out);
    int (*refresh_mark_used)(struct store_conn *c, int64_t id, int64_t now_ms);

    /* rooms. dm_key ("<lower uid>:<higher uid>") is unique for direct rooms, NULL for groups. */
    int (*room_insert)(struct store_conn *c, struct store_room *r,
                       const char *dm_key); /* sets id */
    int (*room_get)(struct store_conn *c, int64_t room_id, struct store_room *out);
    int (*room_by_dm_key)(struct store_conn *c, const char *dm_key, int64_t *room_id);
    int (*room_update)(struct store_conn *c, int64_t room_id, const char *name, const char *topic);

    /* membership */
    int (*member_get)(struct store_conn *c, int64_t room_id, int64_t user_id,
                      struct store_member *out);
    /* Insert, or update the role of, a membership (joined_seq kept on update). */
    int (*member_put)(struct store_conn *c, const struct store_member *m);
    int (*member_delete)(struct store_conn *c, int64_t room_id, int64_t user_id);
    /* Members of a room in user id order, at most `limit`. cb gets (ud, NULL room, member). */
    int (*members_list)(struct store_conn *c, int64_t room_id, int limit, store_room_cb cb,
                        void *ud);
    /* Rooms of a user with id > after, in room id order, at most limit (negative: all). */
    int (*rooms_of_user)(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                         store_room_cb cb, void *ud);
    /* The group rooms a user is a member of, and of those the ones it owns (for quotas). */
    int (*user_room_counts)(struct store_conn *c, int64_t user_id, int64_t *group_rooms,
                            int64_t *owned);
    /* 1 in *out when users a and b share at least one room. */
    int (*users_share_room)(struct store_conn *c, int64_t a, int64_t b, int *out);

    /* the log: append assigns seq = last seq + 1 atomically within the writer's transaction and
     * sets ev->seq; a duplicate (sender, client_msg_id) gives CD_E_CONFLICT and changes nothing
     * (callers keep their savepoint when they answer a resend). Only the backend assigns seqs:
     * nothing above it predicts one and nothing stored embeds one. PostgreSQL: gap-free with
     * writers on several nodes (a per-room counter row, locked until commit); an expected
     * outcome (conflict, unknown room) never aborts the transaction. */
    int (*event_append)(struct store_conn *c, struct store_event *ev);
    /* The message a sender already stored under client_msg_id (for idempotent resends). The
     * callback sees it; CD_E_NOT_FOUND when none. */
    int (*event_by_client_id)(struct store_conn *c, int64_t sender, const char *cmid,
                              size_t cmid_len, store_event_cb cb, void *ud);
    /* Entries with after < seq < before (before <= 0: no upper bound), at most limit. desc = 0:
     * ascending from `after`; desc = 1: descending from `before` (the newest first). */
    int (*events_page)(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                       int limit, int desc, store_event_cb cb, void *ud);

    /* read markers: read_seq = max(read_seq, seq); *out_seq gets the resulting marker */
    int (*read_mark)(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq,
                     int64_t *out_seq);
    /* Messages (EV_MESSAGE, not sent by user_id) with after < seq <= after + max: only the first
     * `max` entries after the marker are looked at, so the cost is bounded whatever the backlog.
     * *capped = 1 when the log goes on past them (the count is then a lower bound). */
    int (*unread_count)(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t after,
                        int64_t max, int64_t *out, int *capped);

    /* The outbox (issue 13): every committed log entry, user and room creation, in commit order.
     * Written by the ops above in the writer's transaction (event_append, user_insert,
     * room_insert): nothing to call. Events with pos > after, ascending, at most limit; cb's
     * strings are valid during the call only. Readable on any connection. */
    int (*outbox_page)(struct store_conn *c, int64_t after, int limit, store_outbox_cb cb,
                       void *ud);
    /* A consumer's saved position: 0 (CD_OK) when the name is unknown. */
    int (*consumer_get)(struct store_conn *c, const char *name, int64_t *pos);
    /* pos = max(saved, pos): a late or repeated save never moves a consumer back. Writer
     * connection (SQLite readers are read-only). */
    int (*consumer_put)(struct store_conn *c, const char *name, int64_t pos);

    /* API keys of the server API (/v1/server/...): only the SHA-256 of a key is stored. */
    int (*apikey_insert)(struct store_conn *c, const char *name, const uint8_t hash[32],
                         int64_t now_ms, int64_t *id_out);
    /* The key whose hash this is, revoked or not (revoked_at tells): CD_E_NOT_FOUND when none. */
    int (*apikey_by_hash)(struct store_conn *c, const uint8_t hash[32], struct store_apikey *out);
    /* Every key in id order. */
    int (*apikey_list)(struct store_conn *c, store_apikey_cb cb, void *ud);
    /* Sets revoked_at: CD_E_NOT_FOUND when the key is unknown or already revoked. */
    int (*apikey_revoke)(struct store_conn *c, int64_t id, int64_t now_ms);
    /* webhooks (roles_webhook.c): endpoints, and one delivery row per (endpoint, event id), so
     * an event enqueued twice (a consumer that resumes after a crash) is delivered once. */
    int (*webhook_insert)(struct store_conn *c, struct store_webhook *w); /* sets w->id */
    int (*webhook_delete)(struct store_conn *c, int64_t id);              /* CD_E_NOT_FOUND */
    int (*webhook_get)(struct store_conn *c, int64_t id, struct store_webhook *out);
    /* Every endpoint in id order; cb returns nonzero to stop. */
    int (*webhooks_list)(struct store_conn *c, store_webhook_cb cb, void *ud);
    /* A pending delivery due now. *inserted = 0 when the (endpoint, event id) row already
     * exists (nothing changed). */
    int (*delivery_insert)(struct store_conn *c, const struct store_delivery *d, int *inserted);
    /* Deliveries in `state` (enum store_delivery_state) with id > after, at most limit: pending
     * ones only when next_at <= due_before (ordered by next_at), others in id order. */
    int (*deliveries_list)(struct store_conn *c, int state, int64_t due_before, int64_t after,
                           int limit, store_delivery_cb cb, void *ud);
    /* Take a due pending delivery for an attempt: next_at = until (a lease: another worker,
     * on this node or another, skips it until then; a worker that dies leaves it due again at
     * `until`). CD_E_NOT_FOUND when it is no longer pending with next_at <= due_before. */
    int (*delivery_claim)(struct store_conn *c, int64_t id, int64_t due_before, int64_t until);
    /* Record an attempt's outcome: state, attempts, next_at, last_error (NULL: none). */
    int (*delivery_update)(struct store_conn *c, int64_t id, int state, int attempts,
                           int64_t next_at, const char *last_error);
    /* A dead delivery back to pending, attempts 0, due at now_ms. CD_E_NOT_FOUND unless dead. */
    int (*delivery_replay)(struct store_conn *c, int64_t id, int64_t now_ms);

    /* per-user room settings (PATCH /v1/rooms/{id}/settings): muted 0/1. Reading a pair with no
     * row gives 0. */
    int (*room_mute_put)(struct store_conn *c, int64_t room_id, int64_t user_id, int muted);
    int (*room_mute_get)(struct store_conn *c, int64_t room_id, int64_t user_id, int *muted);
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* A unit of write work. Embed it in your own struct. */
struct store_job {
    struct store_job *next;
    /* Runs on the writer thread inside the batch transaction. Return CD_OK or an error (the
     * job's savepoint is then rolled back; other jobs are unaffected). */
    int (*exec)(const struct store_ops *ops, struct store_conn *c, struct store_job *j);
    /* Runs on the writer thread after the commit (status CD_OK) or after a failed exec or commit
     * (status set). Must not block; typically posts the result to an I/O thread. */
    void (*done)(struct store_job *j);
    /* Optional: called on the writer thread before exec runs again because the batch's
     * transaction was rolled back by a deadlock or serialization failure (PostgreSQL, several
     * writers); it must undo what exec produced in memory. A job without it is not run again:
     * it completes with CD_E_UNAVAILABLE (nothing of it was committed). */
    void (*reset)(struct store_job *j);
    /* The room this job writes, 0 = none. The writer locks the rooms of a batch in id order
     * before running it (store_ops.lock_rooms). A job writing a room it does not name here
     * still works; it only loses the deadlock-free ordering. */
    int64_t room_id;
    int status;
    /* Set by the submitter when exec changes nothing whenever it fails with anything but
     * CD_E_IO or CD_E_UNAVAILABLE: the writer then skips the job's savepoint (two statements
     * fewer per message). */
    uint8_t clean_fail;
};

struct store_db {
    const struct store_ops *ops;
    struct store *st;
    void *priv; /* writer thread and queue (store.c) */
    /* Optional: called on the writer thread after the done() calls of each batch, so results
     * can be published once per group commit (the fanout does this). */
    void (*batch_done)(void *ud);
    void *batch_ud;
    /* Optional: called on the writer thread when a whole batch was rolled back (caches that
     * read inside it must forget). */
    void (*batch_failed)(void);
};

/* Open the backend and start the writer thread. Returns CD_OK or CD_E_IO (logged). Blocks. */
int store_db_open(struct store_db *db, const struct store_ops *ops, const struct store_config *cfg);
/* Queue a write job (any thread, never blocks on disk). After store_db_close began, the job is
 * completed at once with CD_E_UNAVAILABLE. */
void store_submit(struct store_db *db, struct store_job *j);
/* Queue a chain of jobs linked by ->next (head..tail) with one lock and one wake-up: I/O threads
 * collect the jobs of one loop iteration and submit them together, so the writer sees batches
 * as large as the load instead of waking per job. */
void store_submit_list(struct store_db *db, struct store_job *head, struct store_job *tail,
                       size_t n);
/* 0 while the backend is unreachable: a batch failed with CD_E_UNAVAILABLE and neither a later
 * batch nor the writer's probe (an empty transaction once a second while idle) has succeeded
 * since. Always 1 for SQLite. Any thread; a snapshot. */
int store_available(struct store_db *db);
/* Jobs submitted and not yet done (any thread; a snapshot). */
uint64_t store_queued(struct store_db *db);
/* The calling thread's read-only connection, opened on first use (worker threads only). NULL on
 * failure (logged). Released by store_db_close. */
struct store_conn *store_reader(struct store_db *db);
/* Run every queued job, stop the writer, close all connections. Blocks. */
void store_db_close(struct store_db *db);

/* Whether the store takes writes (for /readyz; any thread, never blocks): CD_OK, or
 * CD_E_UNAVAILABLE with *why set to a static reason when the last write batch failed and no
 * commit has proven storage writable since (a probe write is retried every second while so),
 * or when the current batch has been running for longer than stall_ms (a hung disk). */
int store_health(struct store_db *db, const char **why);

/* Counters for /metrics. */
struct store_stats {
    uint64_t commits, jobs, failed_commits;
    uint64_t queued;  /* submitted, not yet done */
    uint64_t failing; /* 1 while the last write batch failed (store_health) */
};
void store_db_stats(struct store_db *db, struct store_stats *out);

#endif
