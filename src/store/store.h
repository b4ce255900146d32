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
/* Edits, deletes and reactions are entries too: they carry the seq of the message they change
 * (its `target`) in their stored details, and the message's derived state (store_msg_*) moves in
 * the same transaction as their append. */
enum store_event_kind {
    EV_MESSAGE = 0,
    EV_MEMBER = 1,
    EV_ROOM = 2,
    EV_EDIT = 3,
    EV_DELETE = 4,
    EV_REACTION = 5
};
/* A room's life: archived rooms are read-only; deleted ones keep their row (ids are never
 * reused) but have no members left. */
enum store_room_state { ROOM_ACTIVE = 0, ROOM_ARCHIVED = 1, ROOM_DELETED = 2 };

#define STORE_DISPLAY_NAME_MAX 128 /* bytes */
#define STORE_AVATAR_MAX       64  /* bytes */
#define STORE_STATUS_TEXT_MAX  280 /* bytes */

/* A user as others see it (no password hash). A deleted account keeps its row and id; its
 * username is a tombstone ('#' + id, never a valid username) and deleted_at is set. */
struct store_profile {
    int64_t id;
    char username[STORE_USERNAME_MAX + 1];
    char display_name[STORE_DISPLAY_NAME_MAX + 1];
    char avatar[STORE_AVATAR_MAX + 1];
    char status_text[STORE_STATUS_TEXT_MAX + 1];
    int64_t created_at, last_seen; /* unix ms; last_seen 0 = never */
    int64_t deleted_at;            /* unix ms, 0 = a live account */
};

/* A live login session (a refresh-token family not revoked, with a refresh token not expired). */
struct store_session {
    int64_t id, created_at;
    int64_t last_used; /* unix ms of its newest refresh token (login or refresh) */
};

/* What a send needs to know in one read: membership, the room's state and, for a direct room,
 * whether the other member blocks the sender. */
struct store_access {
    int member;     /* the user is a member */
    int state;      /* enum store_room_state */
    int kind;       /* enum store_room_kind */
    int dm_blocked; /* direct room whose other member blocks the user */
};

/* An invite link of a room; only the SHA-256 of its token is stored. */
struct store_invite {
    uint8_t hash[32];
    int64_t room_id, created_by, created_at, expires_at;
    int64_t max_uses, uses;
};

/* The two user-to-user relations, same shape: (user, other, created_at). */
enum store_pair { STORE_CONTACTS = 0, STORE_BLOCKS = 1 };

struct store_room {
    int64_t id;
    int kind; /* enum store_room_kind */
    char name[STORE_ROOM_NAME_MAX + 1];
    char topic[STORE_ROOM_TOPIC_MAX + 1];
    int64_t created_by, created_at; /* user id, unix ms */
    int64_t last_seq;               /* highest seq in the room's log, 0 when empty */
    int64_t member_count;
    int is_public; /* listed by GET /v1/rooms/public, joinable by anyone (group rooms) */
    int state;     /* enum store_room_state */
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
    /* Messages: what the entry links to (written by the append's caller through
     * msg_thread_put, read by messages_page; 0 = none). */
    int64_t reply_to, thread;
    /* Derived state of a message, read by messages_page only (zero elsewhere). */
    int64_t edited_at;      /* unix ms of the last edit, 0 = never edited */
    int64_t reply_count;    /* thread roots: replies in the thread */
    int64_t last_reply_seq; /* thread roots: seq of the newest reply, 0 = none */
    int64_t state_seq;      /* seq of the last edit/delete/reaction applied, 0 = none */
    int deleted;            /* 1: a tombstone (body erased) */
    const char *reactions;  /* "emoji\tcount\tme\n" per emoji, oldest first; NULL: none */
    size_t reactions_len;
    /* Extra members of a message's JSON (`"attachments":[...]`, without braces), kept in the
     * event_extras table beside the log; NULL/0 when none. Reads fill it; appends ignore it
     * (event_extra_put stores it). */
    const char *extra;
    size_t extra_len;
};

#define STORE_ATT_ID_LEN    32  /* attachment ids: 32 lowercase hex digits (128 random bits) */
#define STORE_ATT_NAME_MAX  255 /* sanitised file name, bytes */
#define STORE_ATT_CTYPE_MAX 127 /* content type, bytes */

/* An upload. The blob is stored under `id` in the blob store (src/blob). */
struct store_attachment {
    char id[STORE_ATT_ID_LEN + 1];
    int64_t owner; /* uploader */
    int64_t size;  /* bytes */
    char content_type[STORE_ATT_CTYPE_MAX + 1];
    char name[STORE_ATT_NAME_MAX + 1];
    char sha256[65];    /* lowercase hex */
    int64_t created_at; /* unix ms */
};

/* A search: messages matching `match` (a backend query built by chat/search.c) in the rooms
 * user is a member of (not deleted ones: ROOM_DELETED), only with seq > the member's joined_seq,
 * newest first (by position), position < before (0 = no bound), at most limit rows. room 0 = every
 * room of the user. */
struct store_search_q {
    int64_t user, room, before;
    const char *match; /* terms separated by single spaces, each only letters and digits
                          (chat/search.c builds it); all must match. The backend builds its own
                          query from them (FTS5 quoted terms; plainto_tsquery('simple')) */
    int limit;
};
/* One hit: snippet is the matching text with \x01 before and \x02 after each match (chat/search.c
 * escapes it for clients); pos orders hits (higher = newer) and is the next page's `before`. */
struct store_search_hit {
    int64_t room_id, seq, sender, ts, pos;
    const char *snippet;
    size_t snippet_len;
};
typedef int (*store_search_cb)(void *ud, const struct store_search_hit *h); /* nonzero stops */

/* A message as the rules of edits, deletes, reactions and threads need it. */
struct store_msg {
    int64_t room_id, seq, sender;
    int kind; /* enum store_event_kind of the entry at that seq */
    int deleted;
    int64_t thread; /* 0: not in a thread */
};

/* One member of a room with their receipts (receipts_list). */
struct store_receipt {
    int64_t user_id;
    int64_t read_seq;
    int64_t delivered_seq; /* lowest watermark over the user's live sessions; -1: none recorded */
    int share_read;        /* the user's share_read_receipts setting */
};
typedef int (*store_receipt_cb)(void *ud, const struct store_receipt *r); /* nonzero stops */

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
/* A user (a member's user for members_page, with m; NULL m otherwise); at: the pair's
 * created_at for pair_list, else 0. */
typedef int (*store_profile_cb)(void *ud, const struct store_profile *p,
                                const struct store_member *m, int64_t at);

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
    /* Optional: room's log is committed up to seq by another writer (a cluster node, heard on
     * the bus). Between transactions on the writer; a backend that numbers optimistic appends
     * from counters it remembers starts from there. */
    void (*note_head)(struct store_conn *c, int64_t room, int64_t seq);

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
    /* Of the n rooms ids[i], those whose log goes past seen[i]: cb(ud, room, last_seq) (a
     * nonzero return stops). Unknown rooms are left out. PostgreSQL: one round trip for the
     * lot (cluster reconciliation asks for every room a node follows, every pass). */
    int (*rooms_ahead)(struct store_conn *c, const int64_t *ids, const int64_t *seen, size_t n,
                       int (*cb)(void *ud, int64_t room, int64_t last_seq), void *ud);

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
     * sets ev->seq; a duplicate (room_id, sender, client_msg_id) gives CD_E_CONFLICT and changes
     * nothing (callers keep their savepoint when they answer a resend). Only the backend assigns
     * seqs: nothing above it predicts one and nothing stored embeds one. PostgreSQL: gap-free with
     * writers on several nodes (a per-room counter row, locked until commit); an expected
     * outcome (conflict, unknown room) never aborts the transaction. */
    int (*event_append)(struct store_conn *c, struct store_event *ev);
    /* The message a sender already stored under client_msg_id (for idempotent resends). The
     * callback sees it; CD_E_NOT_FOUND when none. */
    int (*event_by_client_id)(struct store_conn *c, int64_t room_id, int64_t sender,
                              const char *cmid, size_t cmid_len, store_event_cb cb, void *ud);
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

    /* ---- message operations (edits, deletes, reactions, threads) and receipts ---- */

    /* The entry at (room_id, seq) with the state the rules need: CD_E_NOT_FOUND when none. */
    int (*msg_get)(struct store_conn *c, int64_t room_id, int64_t seq, struct store_msg *out);
    /* The links of a just appended message (reply_to, thread; 0 = none); with a thread, the
     * root's reply_count and last_reply_seq move too. */
    int (*msg_thread_put)(struct store_conn *c, int64_t room_id, int64_t seq, int64_t reply_to,
                          int64_t thread);
    /* The message target now reads body (edited_at set); edit_seq is the edit entry's seq
     * (remembered so a later delete erases its text too; becomes the state_seq). */
    int (*msg_edit)(struct store_conn *c, int64_t room_id, int64_t target, const char *body,
                    size_t body_len, int64_t edited_at, int64_t edit_seq);
    /* Tombstone target: its body and the bodies of its edit entries are replaced by erased
     * (its own body: ""), its reactions dropped, deleted set, state_seq = op_seq. */
    int (*msg_delete)(struct store_conn *c, int64_t room_id, int64_t target, int64_t op_seq,
                      const char *erased_edit_body, size_t erased_len);
    /* Turn user's reaction emoji on target on or off: *changed = 0 when it already was so. */
    int (*reaction_set)(struct store_conn *c, int64_t room_id, int64_t target, int64_t user_id,
                        const char *emoji, size_t emoji_len, int on, int64_t now_ms, int *changed);
    /* The message target's state_seq = op_seq (after a reaction entry). */
    int (*msg_touch)(struct store_conn *c, int64_t room_id, int64_t target, int64_t op_seq);
    /* events_page with each message's derived state (reactions with `me` for viewer). thread >
     * 0: only the messages of that thread (not its root). One query per page. */
    int (*messages_page)(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                         int limit, int desc, int64_t viewer, int64_t thread, store_event_cb cb,
                         void *ud);
    /* Delivered watermark of one device (login session) of user in room: max(old, min(seq,
     * last seq)); *out_seq gets the result. */
    int (*delivered_mark)(struct store_conn *c, int64_t room_id, int64_t user_id,
                          int64_t session_id, int64_t seq, int64_t *out_seq);
    /* Members of room (user id order, at most limit) with read marker and delivered watermark. */
    int (*receipts_list)(struct store_conn *c, int64_t room_id, int limit, store_receipt_cb cb,
                         void *ud);
    /* Per-user settings: share_read_receipts (1 when never set). */
    int (*settings_get)(struct store_conn *c, int64_t user_id, int *share_read_receipts);
    int (*settings_put)(struct store_conn *c, int64_t user_id, int share_read_receipts);
    /* ---- people and room features (issue 14, part 5) ---- */
    /* Insert a user with a chosen id (opaque ids): CD_E_USERNAME_TAKEN, or CD_E_CONFLICT when
     * the id is taken (the caller draws another). */
    int (*user_insert_id)(struct store_conn *c, int64_t id, const char *username,
                          const char *pwhash, int64_t now_ms);
    int (*profile_get)(struct store_conn *c, int64_t id, struct store_profile *out);
    /* NULL leaves a field unchanged, "" clears it. CD_E_NOT_FOUND: no such (live) user. */
    int (*profile_set)(struct store_conn *c, int64_t id, const char *display_name,
                       const char *avatar, const char *status_text);
    /* Live users with lo <= username < hi and username > after (byte order), ascending, at
     * most limit. */
    int (*users_by_prefix)(struct store_conn *c, const char *lo, const char *hi, const char *after,
                           int limit, store_profile_cb cb, void *ud);
    int (*user_set_pwhash)(struct store_conn *c, int64_t id, const char *pwhash);
    /* Account deletion: the username becomes a tombstone (freed for registration), the password
     * hash and profile are cleared, deleted_at set; the user's contacts and blocks (both
     * directions) are deleted. Memberships and sessions are the caller's. */
    int (*user_erase)(struct store_conn *c, int64_t id, int64_t now_ms);
    /* The user's live sessions (see struct store_session) in login order (created_at, id). */
    int (*sessions_of_user)(struct store_conn *c, int64_t user_id, int64_t now_ms,
                            int (*cb)(void *ud, const struct store_session *s), void *ud);
    /* Contacts and blocks: put is idempotent (keeps the first created_at); delete gives
     * CD_E_NOT_FOUND when absent; list: the others of user (other > after, id order, at most
     * limit) with their profiles and the pair's created_at; exists: 1 in *out when (a, b) is
     * stored. */
    int (*pair_put)(struct store_conn *c, int table, int64_t user, int64_t other, int64_t now_ms);
    int (*pair_delete)(struct store_conn *c, int table, int64_t user, int64_t other);
    int (*pair_list)(struct store_conn *c, int table, int64_t user, int64_t after, int limit,
                     store_profile_cb cb, void *ud);
    int (*pair_exists)(struct store_conn *c, int table, int64_t user, int64_t other, int *out);
    /* Every block (blocker, blocked), for the in-memory presence filter at start. */
    int (*blocks_all)(struct store_conn *c, int (*cb)(void *ud, int64_t user, int64_t other),
                      void *ud);
    /* One read for a send: CD_E_NOT_FOUND when the room does not exist. */
    int (*member_access)(struct store_conn *c, int64_t room_id, int64_t user_id,
                         struct store_access *out);
    /* Set is_public and/or state (negative: unchanged). CD_E_NOT_FOUND: no such room. */
    int (*room_set_flags)(struct store_conn *c, int64_t room_id, int is_public, int state);
    /* Public active group rooms with id > after, id order, at most limit; cb gets a NULL member. */
    int (*rooms_public)(struct store_conn *c, int64_t after, int limit, store_room_cb cb, void *ud);
    /* Members with user id > after, in user id order, at most limit, with their profiles. */
    int (*members_page)(struct store_conn *c, int64_t room_id, int64_t after, int limit,
                        store_profile_cb cb, void *ud);
    /* Hide a direct room from the user's listing until a message with seq > seq arrives. */
    int (*member_hide)(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq);
    /* rooms_of_user without the hidden direct rooms (the room listing). */
    int (*rooms_visible)(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                         store_room_cb cb, void *ud);
    int (*invite_insert)(struct store_conn *c, const struct store_invite *inv);
    int (*invite_get)(struct store_conn *c, const uint8_t hash[32], struct store_invite *out);
    /* uses = uses + 1 (the caller checked the limits in the same transaction). */
    int (*invite_use)(struct store_conn *c, const uint8_t hash[32]);
    /* administration (chatd user ...: admin/admin.c) */
    /* Users with id > after in id order, at most limit (negative: all); a nonzero cb stops. */
    int (*users_list)(struct store_conn *c, int64_t after, int limit,
                      int (*cb)(void *ud, const struct store_user *u), void *ud);
    /* End every session of a user that is not ended (revoked_at = now_ms): their refresh tokens
     * stop working. *n (unless NULL) gets how many. */
    int (*sessions_revoke_user)(struct store_conn *c, int64_t user_id, int64_t now_ms, int64_t *n);
    /* attachments (uploads: chat/attach.c; the bytes live in src/blob) */
    int (*attachment_insert)(struct store_conn *c, const struct store_attachment *a);
    int (*attachment_get)(struct store_conn *c, const char *id, struct store_attachment *out);
    /* 1 in *out when user may read attachment id: its uploader, or a current member of a room
     * where a message referencing it was posted, with the member's joined_seq below that
     * message's seq (the same window as history and search), unless the room is deleted; or
     * anyone when it is some user's current avatar (users.avatar = "att_" + id). */
    int (*attachment_readable)(struct store_conn *c, const char *id, int64_t user, int *out);
    /* Record that message (room, seq) references attachment id (idempotent). */
    int (*attachment_ref)(struct store_conn *c, const char *id, int64_t room, int64_t seq);
    /* Store the extra JSON members of message (room, seq) (see store_event.extra). */
    int (*event_extra_put)(struct store_conn *c, int64_t room, int64_t seq, const char *extra,
                           size_t len);
    /* The message (room, seq) no longer references anything: its attachment references and
     * its extra members are deleted. For message deletion (an attachment nothing references
     * any more is then removed by the next expiry sweep). */
    int (*attachments_unref_message)(struct store_conn *c, int64_t room, int64_t seq);
    /* Delete at most limit attachments created before before_ms that no message references
     * and that are no user's current avatar;
     * cb gets each deleted id (the caller then deletes the blob). */
    int (*attachments_expire)(struct store_conn *c, int64_t before_ms, int limit,
                              int (*cb)(void *ud, const char *id), void *ud);

    /* search. The index is keyed by (room, seq): put inserts or replaces a message's text (an
     * edit), delete removes it (a delete: the text is never found again, also when the message
     * was not indexed yet). Writer thread, in the job's transaction. */
    int (*search_index_put)(struct store_conn *c, int64_t room, int64_t seq, const char *text,
                            size_t len);
    int (*search_index_delete)(struct store_conn *c, int64_t room, int64_t seq);
    /* The asynchronous indexer (a send never indexes its message): index the messages appended
     * since the saved position, at most limit log entries, and move the position past them;
     * *n gets the entries looked at (limit: call again). A message already in the index (an
     * edit or a delete came first) is left as it is. SQLite: writer thread, in the job's
     * transaction. With search_index_own_conn (PostgreSQL): the indexer's own connection, one
     * transaction of its own beside the writer's; *n is 0 while another node's indexer runs. */
    int (*search_index_log)(struct store_conn *c, int limit, int *n);
    /* Reader: hits of q, newest first. CD_E_INVALID_FIELD when the backend refuses the query. */
    int (*search)(struct store_conn *c, const struct store_search_q *q, store_search_cb cb,
                  void *ud);
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

    /* Delivery retention (roles_webhook.c): delete at most `limit` delivered (DONE) rows whose
     * delivery time (next_at) is before before_ms, oldest first; *n = rows deleted. Pending and
     * dead rows are never touched. Writer connection; one bounded statement. */
    int (*deliveries_prune)(struct store_conn *c, int64_t before_ms, int limit, int64_t *n);
    /* Delete a dead delivery (DELETE /v1/server/webhooks/dead/{id}): CD_E_NOT_FOUND unless the
     * row exists and is dead. */
    int (*delivery_delete)(struct store_conn *c, int64_t id);
    /* Rows in `state` (enum store_delivery_state), for the gauges of /metrics. O(rows) over the
     * deliveries_due index. Any connection. */
    int (*deliveries_count)(struct store_conn *c, int state, int64_t *n);
    /* The notifier's coalescing window, kept per (user, room) across restarts and processes:
     * *taken = 1 (and the pair's time set to ts) when the pair has no time yet or its time is at
     * least window_ms before ts; else *taken = 0 and nothing changes. Writer connection. */
    int (*notify_take)(struct store_conn *c, int64_t user_id, int64_t room_id, int64_t ts,
                       int64_t window_ms, int *taken);
    /* Delete at most `limit` pairs whose time is before before_ms (windows that have passed);
     * *n = rows deleted. Writer connection. */
    int (*notify_prune)(struct store_conn *c, int64_t before_ms, int limit, int64_t *n);

    /* Insert a session with a chosen id (opaque session ids, auth/session.c): CD_E_CONFLICT
     * when the id is taken (the caller draws another). */
    int (*session_insert_id)(struct store_conn *c, int64_t id, int64_t user_id, int64_t now_ms);

    /* The outbox's last visible position (0 when empty): what a consumer at pos is behind by is
     * head - pos events (the outbox has no holes that a reader can see). Any connection, one
     * index lookup. */
    int (*outbox_head)(struct store_conn *c, int64_t *pos);

    /* 1: search_index_log runs on a connection of its own (conn_open, not the writer), off the
     * writer's group commits; 0: as a writer job. */
    int search_index_own_conn;
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
    /* Tracing: the span of the request this job serves (valid until done() returns), or NULL.
     * The group commit's span is a child of the first sampled one and links to every one. */
    const struct trace_ctx *trace;
};
struct trace_ctx;

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
/* 0 while the backend is unreachable: a batch failed with CD_E_UNAVAILABLE and no commit has
 * succeeded since (the writer probes once a second while idle; see store_health). Always 1 for
 * SQLite. Any thread; a snapshot. */
int store_available(struct store_db *db);
/* Another node committed room's log up to seq (the cluster bus): passed to the backend's
 * note_head before the writer's next batch (dropped when thousands are already waiting). Any
 * thread. */
void store_note_head(struct store_db *db, int64_t room, int64_t seq);
/* Jobs submitted and not yet done (any thread; a snapshot). */
uint64_t store_queued(struct store_db *db);
/* The calling thread's read-only connection, opened on first use (worker threads only). NULL on
 * failure (logged). Released by store_db_close. */
struct store_conn *store_reader(struct store_db *db);
/* Run every queued job, stop the writer, close all connections. Blocks. */
void store_db_close(struct store_db *db);

/* Whether the store takes writes (for /readyz; any thread, never blocks): CD_OK, or
 * CD_E_UNAVAILABLE with *why set to a static reason when the last write batch failed (the
 * backend does not answer, or the commit failed) and no commit has proven storage writable
 * since, or when the current batch has been running for longer than stall_ms (a hung disk).
 * One state, kept by the writer: while not healthy it adds ops->probe (a write) to every batch
 * and commits a probe alone once a second while idle, so it recovers with or without traffic. */
int store_health(struct store_db *db, const char **why);

/* Counters for /metrics. */
struct store_stats {
    uint64_t commits, jobs, failed_commits;
    uint64_t queued;                   /* submitted, not yet done */
    uint64_t failing;                  /* 1 while the last write batch failed (store_health) */
    const struct hist *commit_latency; /* each group commit's transaction, retries included */
};
struct hist;
void store_db_stats(struct store_db *db, struct store_stats *out);

#endif
