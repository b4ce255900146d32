/* store_sqlite.c - the SQLite backend: WAL, numbered migrations, cached prepared statements. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_sqlite_walbuf.h"
#include "store/store_sqlite_schema.h"
#include "store/store_json.h"
#include "util/jsonw.h"
#include "util/imap.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

/* Page size of a new database. A group commit writes every page it dirtied to the WAL, and a
 * batch of messages touches one page per active room and per active sender (the idempotency
 * index): smaller pages mean less WAL per commit. 2 KiB measured best for 100-byte messages
 * (4 KiB: twice the ack p99 at 30,000 msgs/s; 512 B: rows overflow). Existing files keep theirs. */
#define STORE_PAGE_SIZE "2048"

struct store {
    char *path;
    int sync_full;
};

/* A room's last seq is its log's last entry: one index seek, never a counter to update. */
#define ROOM_LAST_SEQ_OF(room)                                                                     \
    "coalesce((SELECT e.seq FROM events e WHERE e.room_id = " room                                 \
    " ORDER BY e.seq DESC LIMIT 1), 0)"
/* Column lists shared by several statements; room_row(), member_row() and event_row() read them
 * in this order. */
#define ROOM_COLS                                                                                  \
    "r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, " ROOM_LAST_SEQ_OF(                \
        "r.id") ", r.member_count"
#define ROOM_NCOLS   8
#define MEMBER_COLS  "m.room_id, m.user_id, m.role, m.joined_seq, m.read_seq"
#define EVENT_COLS   "room_id, seq, kind, sender, ts, client_msg_id, body"
#define WEBHOOK_COLS "id, kind, url, secret, types, created_at"
#define DELIVERY_COLS                                                                              \
    "id, endpoint_id, event_id, body, state, attempts, next_at, created_at, last_error"

/* Every statement the backend runs, prepared once per connection on first use. A `LIMIT ?` bound
 * to a negative number means no limit (SQLite's rule). */
#define SQL_MAP(X)                                                                                 \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                    \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(SAVEPOINT, "SAVEPOINT job")                                                                  \
    X(RELEASE, "RELEASE job")                                                                      \
    X(ROLLBACK_TO, "ROLLBACK TO job")                                                              \
    X(USER_INSERT, "INSERT INTO users(username, pwhash, created_at) VALUES (?1, ?2, ?3)")          \
    X(USER_GET, "SELECT id, username, pwhash, created_at, last_seen FROM users WHERE id = ?1")     \
    X(USER_BY_NAME,                                                                                \
      "SELECT id, username, pwhash, created_at, last_seen FROM users WHERE username = ?1")         \
    X(USER_LAST_SEEN, "UPDATE users SET last_seen = ?2 WHERE id = ?1")                             \
    X(SESSION_INSERT, "INSERT INTO sessions(user_id, created_at) VALUES (?1, ?2)")                 \
    X(SESSION_REVOKE, "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")  \
    X(SESSIONS_REVOKED_SINCE, "SELECT id, revoked_at FROM sessions WHERE revoked_at >= ?1")        \
    X(REFRESH_INSERT, "INSERT INTO refresh_tokens(session_id, user_id, hash, created_at, "         \
                      "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")                                   \
    X(REFRESH_BY_HASH, "SELECT r.id, r.session_id, r.user_id, r.created_at, r.expires_at, "        \
                       "coalesce(r.used_at, 0), s.revoked_at IS NOT NULL FROM refresh_tokens r "   \
                       "JOIN sessions s ON s.id = r.session_id WHERE r.hash = ?1")                 \
    X(REFRESH_USED, "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1")                        \
    X(ROOM_INSERT, "INSERT INTO rooms(kind, name, topic, created_by, created_at, dm_key) "         \
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                                              \
    X(ROOM_GET, "SELECT " ROOM_COLS " FROM rooms r WHERE r.id = ?1")                               \
    X(ROOM_BY_DM_KEY, "SELECT id FROM rooms WHERE dm_key = ?1")                                    \
    X(ROOM_UPDATE, "UPDATE rooms SET name = coalesce(?2, name), topic = coalesce(?3, topic) "      \
                   "WHERE id = ?1")                                                                \
    X(ROOM_COUNT_ADD, "UPDATE rooms SET member_count = member_count + ?2 WHERE id = ?1")           \
    X(MEMBER_GET, "SELECT " MEMBER_COLS " FROM members m WHERE m.room_id = ?1 AND m.user_id = ?2") \
    X(MEMBER_INSERT, "INSERT INTO members(room_id, user_id, role, joined_seq, read_seq) "          \
                     "VALUES (?1, ?2, ?3, ?4, ?5)")                                                \
    X(MEMBER_SET_ROLE, "UPDATE members SET role = ?3 WHERE room_id = ?1 AND user_id = ?2")         \
    X(MEMBER_DELETE, "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2")                    \
    X(MEMBERS_LIST, "SELECT " MEMBER_COLS " FROM members m WHERE m.room_id = ?1 "                  \
                    "ORDER BY m.user_id LIMIT ?2")                                                 \
    X(ROOMS_OF_USER, "SELECT " ROOM_COLS ", " MEMBER_COLS " FROM members m "                       \
                     "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ?1 AND m.room_id > ?2 "   \
                     "ORDER BY m.room_id LIMIT ?3")                                                \
    X(USER_ROOM_COUNTS, "SELECT count(*), coalesce(sum(m.role = 2), 0) FROM members m "            \
                        "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ?1 AND r.kind = 0")    \
    X(USERS_SHARE, "SELECT EXISTS (SELECT 1 FROM members a JOIN members b "                        \
                   "ON b.room_id = a.room_id AND b.user_id = ?2 WHERE a.user_id = ?1)")            \
    X(EVENT_INSERT,                                                                                \
      "INSERT OR IGNORE INTO events(room_id, seq, kind, sender, ts, client_msg_id, body) "         \
      "VALUES (?1, ?7, ?2, ?3, ?4, ?5, ?6)")                                                       \
    X(ROOM_LAST_SEQ, "SELECT " ROOM_LAST_SEQ_OF("r.id") " FROM rooms r WHERE r.id = ?1")           \
    X(EVENT_BY_CLIENT_ID, "SELECT " EVENT_COLS " FROM events "                                     \
                          "WHERE sender = ?1 AND client_msg_id = ?2")                              \
    X(EVENTS_ASC, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "             \
                  "ORDER BY seq LIMIT ?3")                                                         \
    X(EVENTS_DESC, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "            \
                   "ORDER BY seq DESC LIMIT ?3")                                                   \
    X(EVENTS_ASC_BEFORE, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "      \
                         "AND seq < ?4 ORDER BY seq LIMIT ?3")                                     \
    X(EVENTS_DESC_BEFORE, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "     \
                          "AND seq < ?4 ORDER BY seq DESC LIMIT ?3")                               \
    X(READ_MARK, "UPDATE members SET read_seq = max(read_seq, min(?3, " ROOM_LAST_SEQ_OF(          \
                     "?1") ")) WHERE room_id = ?1 AND user_id = ?2 RETURNING read_seq")            \
    X(UNREAD_COUNT, "SELECT (SELECT count(*) FROM events WHERE room_id = ?1 AND seq > ?3 "         \
                    "AND seq <= ?3 + ?5 AND kind = ?4 AND sender != ?2), EXISTS (SELECT 1 FROM "   \
                    "events WHERE room_id = ?1 AND seq > ?3 + ?5)")                                \
    X(OUTBOX_OTHER, "INSERT INTO outbox(room_id, seq, type, eid, ts, body) "                       \
                    "VALUES (?1, 0, ?2, ?3, ?4, ?5)")                                              \
    X(OUTBOX_PAGE, "SELECT o.pos, o.room_id, o.seq, o.type, o.eid, o.ts, o.body, e.kind, "         \
                   "e.sender, e.ts, e.client_msg_id, e.body FROM outbox o LEFT JOIN events e "     \
                   "ON o.seq > 0 AND e.room_id = o.room_id AND e.seq = o.seq WHERE o.pos > ?1 "    \
                   "ORDER BY o.pos LIMIT ?2")                                                      \
    X(CONSUMER_GET, "SELECT pos FROM outbox_consumers WHERE name = ?1")                            \
    X(CONSUMER_PUT, "INSERT INTO outbox_consumers(name, pos) VALUES (?1, ?2) ON CONFLICT(name) "   \
                    "DO UPDATE SET pos = max(pos, excluded.pos)")                                  \
    X(APIKEY_INSERT, "INSERT INTO api_keys(name, hash, created_at) VALUES (?1, ?2, ?3)")           \
    X(APIKEY_BY_HASH, "SELECT id, name, created_at, coalesce(revoked_at, 0) FROM api_keys "        \
                      "WHERE hash = ?1")                                                           \
    X(APIKEY_LIST, "SELECT id, name, created_at, coalesce(revoked_at, 0) FROM api_keys "           \
                   "ORDER BY id")                                                                  \
    X(APIKEY_REVOKE, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")   \
    X(WEBHOOK_INSERT, "INSERT INTO webhooks(kind, url, secret, types, created_at) "                \
                      "VALUES (?1, ?2, ?3, ?4, ?5)")                                               \
    X(WEBHOOK_DELETE, "DELETE FROM webhooks WHERE id = ?1")                                        \
    X(WEBHOOK_GET, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1")                          \
    X(WEBHOOKS_LIST, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id")                          \
    X(DELIVERY_INSERT, "INSERT OR IGNORE INTO deliveries(endpoint_id, event_id, body, next_at, "   \
                       "created_at) VALUES (?1, ?2, ?3, ?4, ?5)")                                  \
    X(DELIVERIES_DUE, "SELECT " DELIVERY_COLS " FROM deliveries WHERE state = 0 AND "              \
                      "next_at <= ?1 AND id > ?2 ORDER BY next_at, id LIMIT ?3")                   \
    X(DELIVERIES_STATE, "SELECT " DELIVERY_COLS " FROM deliveries WHERE state = ?1 AND id > ?2 "   \
                        "ORDER BY id LIMIT ?3")                                                    \
    X(DELIVERY_UPDATE, "UPDATE deliveries SET state = ?2, attempts = ?3, next_at = ?4, "           \
                       "last_error = ?5 WHERE id = ?1")                                            \
    X(DELIVERY_CLAIM, "UPDATE deliveries SET next_at = ?3 WHERE id = ?1 AND state = 0 AND "        \
                      "next_at <= ?2")                                                             \
    X(DELIVERY_REPLAY, "UPDATE deliveries SET state = 0, attempts = 0, next_at = ?2 "              \
                       "WHERE id = ?1 AND state = 2")                                              \
    X(MUTE_PUT, "INSERT INTO room_settings(room_id, user_id, muted) VALUES (?1, ?2, ?3) "          \
                "ON CONFLICT (room_id, user_id) DO UPDATE SET muted = excluded.muted")             \
    X(MUTE_GET, "SELECT muted FROM room_settings WHERE room_id = ?1 AND user_id = ?2")

enum sql_id {
#define SQL_ENUM(name, sql) SQL_##name,
    SQL_MAP(SQL_ENUM)
#undef SQL_ENUM
        SQL__COUNT
};

static const char *const sql_text[] = {
#define SQL_TEXT(name, sql) sql,
    SQL_MAP(SQL_TEXT)
#undef SQL_TEXT
};

/* The writer's copy of each room's last seq (read once from the log, then moved by its own
 * appends), so an append needs no lookup. Dropped whenever SQLite rolls anything back: the log
 * itself is the truth and is read again. */
struct seq_ent {
    int64_t last_seq;
};
#define SEQ_CACHE_MAX 65536

struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[SQL__COUNT];
    struct imap seqs; /* room id -> struct seq_ent (writer connection only) */
};

static int sq_err(struct store_conn *c, const char *what)
{
    log_error("sqlite error", "\"op\":\"%s\",\"error\":\"%s\"", what, sqlite3_errmsg(c->db));
    return CD_E_IO;
}

/* The cached statement, reset and unbound. NULL on prepare failure (logged). */
static sqlite3_stmt *stmt(struct store_conn *c, enum sql_id id)
{
    sqlite3_stmt *s = c->stmt[id];
    if (!s) {
        if (sqlite3_prepare_v3(c->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
                               NULL) != SQLITE_OK) {
            sq_err(c, sql_text[id]);
            return NULL;
        }
        return c->stmt[id];
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no rows. */
static int step_done(struct store_conn *c, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return CD_OK;
    if (rc == SQLITE_CONSTRAINT) return CD_E_CONFLICT;
    return sq_err(c, what);
}

/* A statement of two integer parameters and no rows (the many "set X of row Y" updates). */
static int exec_ii(struct store_conn *c, enum sql_id id, int64_t a, int64_t b)
{
    sqlite3_stmt *s = stmt(c, id);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    return step_done(c, s, sql_text[id]);
}

/* Run a bound INSERT; on success *id_out gets the new row's id. */
static int step_insert(struct store_conn *c, sqlite3_stmt *s, const char *what, int64_t *id_out)
{
    int rc = step_done(c, s, what);
    if (rc == CD_OK) *id_out = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int exec_id(struct store_conn *c, enum sql_id id)
{
    sqlite3_stmt *s = stmt(c, id);
    return s ? step_done(c, s, sql_text[id]) : CD_E_IO;
}

static void seq_drop(struct store_conn *c)
{
    uint32_t i;
    for (struct imap_ent *e = imap_first(&c->seqs, &i); e; e = imap_next(&c->seqs, e, &i))
        free(e->val);
    imap_free(&c->seqs);
    imap_init(&c->seqs);
}

static int sq_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        log_error("sqlite exec failed", "\"error\":\"%s\"", err ? err : "?");
        sqlite3_free(err);
        return CD_E_IO;
    }
    return CD_OK;
}

static int conn_setup(sqlite3 *db, int writer, int sync_full)
{
    char pragmas[256];
    sqlite3_busy_timeout(db, 5000);
    /* mmap_size: reads of the main file (history pages, catch-up) come straight from the OS page
     * cache, shared by every reader thread, instead of being copied into each connection's page
     * cache. 256 MiB of address space per connection; pages still in the WAL are read as usual. */
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA foreign_keys=ON; PRAGMA synchronous=%s; PRAGMA temp_store=MEMORY;"
             "PRAGMA cache_size=-16000; PRAGMA mmap_size=268435456;%s",
             sync_full ? "FULL" : "NORMAL",
             writer ? "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=104857600;" : "");
    return sq_exec(db, pragmas);
}

static int migrate(sqlite3 *db)
{
    sqlite3_stmt *s;
    int version = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) return CD_E_IO;
    if (sqlite3_step(s) == SQLITE_ROW) version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version > store_sqlite_nmigrations) {
        log_error("database schema is newer than this chatd", "\"schema\":%d,\"known\":%d", version,
                  store_sqlite_nmigrations);
        return CD_E_IO;
    }
    for (int v = version; v < store_sqlite_nmigrations; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version=%d;", v + 1);
        if (sq_exec(db, "BEGIN IMMEDIATE") || sq_exec(db, store_sqlite_migrations[v]) ||
            sq_exec(db, bump) || sq_exec(db, "COMMIT")) {
            sq_exec(db, "ROLLBACK");
            log_error("migration failed", "\"to\":%d", v + 1);
            return CD_E_IO;
        }
        log_info("migration applied", "\"version\":%d", v + 1);
    }
    return CD_OK;
}

/* Connections use the WAL write-gathering VFS (one write per group commit instead of two per
 * dirtied page), or the default VFS if it cannot be registered. */
static const char *vfs_name(void)
{
    return store__walbuf_register() == 0 ? STORE_WALBUF_VFS : NULL;
}

static int sq_open(const struct store_config *cfg, struct store **out)
{
    struct store *st;
    sqlite3 *db = NULL;
    size_t n;
    int rc, fd;

    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create data directory", "\"dir\":\"%s\",\"error\":\"%s\"", cfg->dir,
                  strerror(errno));
        return CD_E_IO;
    }
    st = xcalloc(1, sizeof(*st));
    n = strlen(cfg->dir) + 16;
    st->path = xmalloc(n);
    snprintf(st->path, n, "%s/chatd.db", cfg->dir);
    st->sync_full = !cfg->sync_mode || strcmp(cfg->sync_mode, "normal") != 0;
    /* Created here 0600 whatever the umask (SQLite would use 0644 & ~umask); SQLite gives the
     * WAL and shared-memory files the database file's mode. */
    if ((fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        log_error("cannot create database", "\"path\":\"%s\",\"error\":\"%s\"", st->path,
                  strerror(errno));
        rc = CD_E_IO;
        goto fail;
    }
    close(fd);
    if (sqlite3_open_v2(st->path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        vfs_name()) != SQLITE_OK) {
        log_error("cannot open database", "\"path\":\"%s\"", st->path);
        rc = CD_E_IO;
        goto fail;
    }
    if ((rc = sq_exec(db, "PRAGMA page_size=" STORE_PAGE_SIZE ";PRAGMA journal_mode=WAL;")) ||
        (rc = conn_setup(db, 1, st->sync_full)) || (rc = migrate(db)))
        goto fail;
    sqlite3_close(db);
    *out = st;
    return CD_OK;
fail:
    sqlite3_close(db);
    free(st->path);
    free(st);
    return rc;
}

static void sq_close(struct store *st)
{
    free(st->path);
    free(st);
}

static int sq_conn_open(struct store *st, int writer, struct store_conn **out)
{
    struct store_conn *c = xcalloc(1, sizeof(*c));
    imap_init(&c->seqs);
    int flags = SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);

    if (sqlite3_open_v2(st->path, &c->db, flags, vfs_name()) != SQLITE_OK ||
        conn_setup(c->db, writer, st->sync_full) != CD_OK) {
        log_error("cannot open database connection", "\"path\":\"%s\"", st->path);
        sqlite3_close(c->db);
        free(c);
        return CD_E_IO;
    }
    *out = c;
    return CD_OK;
}

static void sq_conn_close(struct store_conn *c)
{
    seq_drop(c);
    imap_free(&c->seqs);
    for (int i = 0; i < SQL__COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

static int sq_begin(struct store_conn *c)
{
    return exec_id(c, SQL_BEGIN);
}
static int sq_commit(struct store_conn *c)
{
    return exec_id(c, SQL_COMMIT);
}
static int sq_rollback(struct store_conn *c)
{
    seq_drop(c);
    return sqlite3_get_autocommit(c->db) ? CD_OK : exec_id(c, SQL_ROLLBACK);
}
static int sq_savepoint(struct store_conn *c)
{
    return exec_id(c, SQL_SAVEPOINT);
}
static int sq_savepoint_release(struct store_conn *c, int undo)
{
    if (undo) {
        seq_drop(c);
        if (exec_id(c, SQL_ROLLBACK_TO) != CD_OK) return CD_E_IO;
    }
    return exec_id(c, SQL_RELEASE);
}

static void text_col(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* An outbox row for an event that is not a log entry (its JSON stored with it). */
static int outbox_other(struct store_conn *c, int64_t room, const char *type, const char *id,
                        int64_t ts, const struct jsonw *w)
{
    sqlite3_stmt *s = stmt(c, SQL_OUTBOX_OTHER);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, ts);
    sqlite3_bind_text(s, 5, jsonw_text(w), (int)jsonw_text_len(w), SQLITE_STATIC);
    return step_done(c, s, "outbox_insert");
}

static int sq_user_insert(struct store_conn *c, const char *username, const char *pwhash,
                          int64_t now_ms, int64_t *id_out)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, username, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    rc = step_insert(c, s, "user_insert", id_out);
    if (rc == CD_E_CONFLICT) return CD_E_USERNAME_TAKEN;
    if (rc == CD_OK) {
        struct jsonw w;
        char id[32];
        jsonw_init(&w, 128);
        store__user_created_json(&w, id, *id_out, username, now_ms);
        rc = outbox_other(c, 0, "user.created", id, now_ms, &w);
        jsonw_free(&w);
    }
    return rc;
}

static int user_row(struct store_conn *c, sqlite3_stmt *s, struct store_user *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        text_col(s, 1, out->username, sizeof(out->username));
        text_col(s, 2, out->pwhash, sizeof(out->pwhash));
        out->created_at = sqlite3_column_int64(s, 3);
        out->last_seen = sqlite3_column_int64(s, 4);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "user_get");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_user_get(struct store_conn *c, int64_t id, struct store_user *out)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_GET);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    return user_row(c, s, out);
}

static int sq_user_by_name(struct store_conn *c, const char *username, struct store_user *out)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_BY_NAME);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, username, -1, SQLITE_STATIC);
    return user_row(c, s, out);
}

static int sq_user_set_last_seen(struct store_conn *c, int64_t id, int64_t ms)
{
    return exec_ii(c, SQL_USER_LAST_SEEN, id, ms);
}

static int sq_session_insert(struct store_conn *c, int64_t user_id, int64_t now_ms, int64_t *sid)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSION_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_insert(c, s, "session_insert", sid);
}

static int sq_session_revoke(struct store_conn *c, int64_t sid, int64_t now_ms)
{
    return exec_ii(c, SQL_SESSION_REVOKE, sid, now_ms);
}

static int sq_sessions_revoked_since(struct store_conn *c, int64_t since_ms,
                                     int (*cb)(void *ud, int64_t sid, int64_t revoked_at_ms),
                                     void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSIONS_REVOKED_SINCE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, since_ms);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (cb(ud, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1))) break;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "sessions_revoked_since");
}

static int sq_refresh_insert(struct store_conn *c, struct store_refresh *r)
{
    sqlite3_stmt *s = stmt(c, SQL_REFRESH_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, r->session_id);
    sqlite3_bind_int64(s, 2, r->user_id);
    sqlite3_bind_blob(s, 3, r->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->created_at);
    sqlite3_bind_int64(s, 5, r->expires_at);
    return step_insert(c, s, "refresh_insert", &r->id);
}

static int sq_refresh_by_hash(struct store_conn *c, const uint8_t hash[32],
                              struct store_refresh *out)
{
    sqlite3_stmt *s = stmt(c, SQL_REFRESH_BY_HASH);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        out->session_id = sqlite3_column_int64(s, 1);
        out->user_id = sqlite3_column_int64(s, 2);
        out->created_at = sqlite3_column_int64(s, 3);
        out->expires_at = sqlite3_column_int64(s, 4);
        out->used_at = sqlite3_column_int64(s, 5);
        out->session_revoked = sqlite3_column_int(s, 6);
        memcpy(out->hash, hash, 32);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "refresh_by_hash");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_refresh_mark_used(struct store_conn *c, int64_t id, int64_t now_ms)
{
    return exec_ii(c, SQL_REFRESH_USED, id, now_ms);
}

/* Rows of a multi-row statement: stepped until done or until cb returns nonzero. The statement
 * stays active while cb runs, so cb may use this connection for other statements but must not
 * re-enter the op that called it (that would reset the statement under it). */

static void room_row(sqlite3_stmt *s, int col, struct store_room *out)
{
    out->id = sqlite3_column_int64(s, col);
    out->kind = sqlite3_column_int(s, col + 1);
    text_col(s, col + 2, out->name, sizeof(out->name));
    text_col(s, col + 3, out->topic, sizeof(out->topic));
    out->created_by = sqlite3_column_int64(s, col + 4);
    out->created_at = sqlite3_column_int64(s, col + 5);
    out->last_seq = sqlite3_column_int64(s, col + 6);
    out->member_count = sqlite3_column_int64(s, col + 7);
}

static void member_row(sqlite3_stmt *s, int col, struct store_member *out)
{
    out->room_id = sqlite3_column_int64(s, col);
    out->user_id = sqlite3_column_int64(s, col + 1);
    out->role = sqlite3_column_int(s, col + 2);
    out->joined_seq = sqlite3_column_int64(s, col + 3);
    out->read_seq = sqlite3_column_int64(s, col + 4);
}

/* Points ev's strings into the current row: valid until the next step or reset of s. */
static void event_row(sqlite3_stmt *s, struct store_event *ev)
{
    ev->room_id = sqlite3_column_int64(s, 0);
    ev->seq = sqlite3_column_int64(s, 1);
    ev->kind = sqlite3_column_int(s, 2);
    ev->sender = sqlite3_column_int64(s, 3);
    ev->ts = sqlite3_column_int64(s, 4);
    if (sqlite3_column_type(s, 5) == SQLITE_NULL) {
        ev->client_msg_id = NULL;
        ev->cmid_len = 0;
    } else {
        ev->client_msg_id = (const char *)sqlite3_column_text(s, 5);
        ev->cmid_len = (size_t)sqlite3_column_bytes(s, 5);
    }
    ev->body = (const char *)sqlite3_column_text(s, 6);
    ev->body_len = (size_t)sqlite3_column_bytes(s, 6);
    if (!ev->body) ev->body = "";
}

/* Calls cb for each row of s; *n (optional) gets the number of rows seen. */
static int each_event(struct store_conn *c, sqlite3_stmt *s, const char *what, store_event_cb cb,
                      void *ud, int *n)
{
    int rc, rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_event ev;
        event_row(s, &ev);
        rows++;
        if (cb(ud, &ev)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, what);
    sqlite3_reset(s);
    if (n) *n = rows;
    return rc;
}

static int each_member(struct store_conn *c, sqlite3_stmt *s, const char *what, int with_room,
                       store_room_cb cb, void *ud)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_room room;
        struct store_member m;
        if (with_room) room_row(s, 0, &room);
        member_row(s, with_room ? ROOM_NCOLS : 0, &m);
        if (cb(ud, with_room ? &room : NULL, &m)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, what);
    sqlite3_reset(s);
    return rc;
}

/* Runs a single-row, single-integer statement (SELECT or ... RETURNING): CD_E_NOT_FOUND when it
 * yields no row. */
static int step_int64(struct store_conn *c, sqlite3_stmt *s, const char *what, int64_t *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, what);
    }
    sqlite3_reset(s);
    return rc;
}

/* A write that must touch exactly one row: CD_E_NOT_FOUND when it touched none. */
static int step_one(struct store_conn *c, sqlite3_stmt *s, const char *what)
{
    int rc = step_done(c, s, what);
    if (rc == CD_OK && sqlite3_changes(c->db) == 0) rc = CD_E_NOT_FOUND;
    return rc;
}

static int sq_room_insert(struct store_conn *c, struct store_room *r, const char *dm_key)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int(s, 1, r->kind);
    sqlite3_bind_text(s, 2, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->created_by);
    sqlite3_bind_int64(s, 5, r->created_at);
    if (dm_key) sqlite3_bind_text(s, 6, dm_key, -1, SQLITE_STATIC);
    rc = step_insert(c, s, "room_insert", &r->id); /* a taken dm_key is the only constraint */
    if (rc == CD_OK) {
        struct jsonw w;
        char id[32];
        r->last_seq = 0; /* *r now mirrors the new row */
        r->member_count = 0;
        jsonw_init(&w, 256);
        store__room_created_json(&w, id, r);
        rc = outbox_other(c, r->id, "room.created", id, r->created_at, &w);
        jsonw_free(&w);
    }
    return rc;
}

static int sq_room_get(struct store_conn *c, int64_t room_id, struct store_room *out)
{
    sqlite3_stmt *s;
    int rc;
    if (!(s = stmt(c, SQL_ROOM_GET))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        room_row(s, 0, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "room_get");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_room_by_dm_key(struct store_conn *c, const char *dm_key, int64_t *room_id)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_BY_DM_KEY);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, dm_key, -1, SQLITE_STATIC);
    return step_int64(c, s, "room_by_dm_key", room_id);
}

/* NULL name or topic binds NULL, which coalesce() turns into "keep the column". */
static int sq_room_update(struct store_conn *c, int64_t room_id, const char *name,
                          const char *topic)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_UPDATE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    if (name) sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    if (topic) sqlite3_bind_text(s, 3, topic, -1, SQLITE_STATIC);
    return step_one(c, s, "room_update");
}

static int room_count_add(struct store_conn *c, int64_t room_id, int delta)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_COUNT_ADD);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int(s, 2, delta);
    return step_one(c, s, "room_count_add");
}

static int sq_member_get(struct store_conn *c, int64_t room_id, int64_t user_id,
                         struct store_member *out)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        member_row(s, 0, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "member_get");
    }
    sqlite3_reset(s);
    return rc;
}

/* An existing membership only gets its role updated (joined_seq and read_seq stay). A new one
 * bumps rooms.member_count first, so an unknown room is CD_E_NOT_FOUND before anything is
 * written. The two writes of an insert rely on the single writer: nothing can add the same
 * membership between them. */
static int sq_member_put(struct store_conn *c, const struct store_member *m)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_SET_ROLE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, m->room_id);
    sqlite3_bind_int64(s, 2, m->user_id);
    sqlite3_bind_int(s, 3, m->role);
    if ((rc = step_one(c, s, "member_set_role")) != CD_E_NOT_FOUND) return rc;

    if ((rc = room_count_add(c, m->room_id, 1)) != CD_OK) return rc;
    if (!(s = stmt(c, SQL_MEMBER_INSERT))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, m->room_id);
    sqlite3_bind_int64(s, 2, m->user_id);
    sqlite3_bind_int(s, 3, m->role);
    sqlite3_bind_int64(s, 4, m->joined_seq);
    sqlite3_bind_int64(s, 5, m->read_seq);
    return step_done(c, s, "member_insert");
}

static int sq_member_delete(struct store_conn *c, int64_t room_id, int64_t user_id)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_DELETE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    if ((rc = step_one(c, s, "member_delete")) != CD_OK) return rc;
    return room_count_add(c, room_id, -1);
}

static int sq_members_list(struct store_conn *c, int64_t room_id, int limit, store_room_cb cb,
                           void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBERS_LIST);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int(s, 2, limit);
    return each_member(c, s, "members_list", 0, cb, ud);
}

/* Walks members_user in (user_id, room_id) order from `after`: no sort, one rooms lookup per
 * room, O(limit). */
static int sq_rooms_of_user(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                            store_room_cb cb, void *ud)
{
    sqlite3_stmt *s;
    if (!(s = stmt(c, SQL_ROOMS_OF_USER))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    return each_member(c, s, "rooms_of_user", 1, cb, ud);
}

/* O(rooms of the user, direct ones included): members_user plus a rooms lookup each. */
static int sq_user_room_counts(struct store_conn *c, int64_t user_id, int64_t *group_rooms,
                               int64_t *owned)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_ROOM_COUNTS);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *group_rooms = sqlite3_column_int64(s, 0);
        *owned = sqlite3_column_int64(s, 1);
        rc = CD_OK;
    } else {
        rc = sq_err(c, "user_room_counts");
    }
    sqlite3_reset(s);
    return rc;
}

/* O(rooms of a): each room of a (members_user) is probed for b (primary key). */
static int sq_users_share_room(struct store_conn *c, int64_t a, int64_t b, int *out)
{
    sqlite3_stmt *s = stmt(c, SQL_USERS_SHARE);
    int64_t v = 0;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    rc = step_int64(c, s, "users_share_room", &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

/* The event is inserted with seq = the room's last seq + 1, and only then is the writer's copy
 * of it moved. A refused insert (duplicate client_msg_id) therefore changes nothing,
 * even if the caller keeps its savepoint (an idempotent resend that answers with the original
 * is a successful job); an unknown room inserts no row and is CD_E_NOT_FOUND. */
static int sq_event_append(struct store_conn *c, struct store_event *ev)
{
    struct seq_ent *se = imap_get(&c->seqs, ev->room_id);
    sqlite3_stmt *s;
    int rc;

    if (ev->body_len > INT32_MAX || ev->cmid_len > INT32_MAX) return CD_E_TOO_LARGE;
    if (!se) {
        if (c->seqs.n >= SEQ_CACHE_MAX) seq_drop(c);
        if (!(s = stmt(c, SQL_ROOM_LAST_SEQ))) return CD_E_IO;
        sqlite3_bind_int64(s, 1, ev->room_id);
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(s);
            return rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "room_last_seq");
        }
        se = xcalloc(1, sizeof(*se));
        se->last_seq = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        imap_put(&c->seqs, ev->room_id, se);
    }
    if (!(s = stmt(c, SQL_EVENT_INSERT))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, ev->room_id);
    sqlite3_bind_int(s, 2, ev->kind);
    sqlite3_bind_int64(s, 3, ev->sender);
    sqlite3_bind_int64(s, 4, ev->ts);
    if (ev->client_msg_id)
        sqlite3_bind_text(s, 5, ev->client_msg_id, (int)ev->cmid_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, ev->body ? ev->body : "", (int)ev->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, se->last_seq + 1);
    /* OR IGNORE: no statement journal per insert. Nothing inserted means the (sender,
     * client_msg_id) pair exists (the seq is ours alone: single writer). */
    if ((rc = step_done(c, s, "event_insert")) != CD_OK) return rc;
    if (sqlite3_changes(c->db) == 0) return CD_E_CONFLICT;
    /* Its outbox row was added by the insert itself (trigger events_outbox, migration 6). */
    ev->seq = ++se->last_seq;
    return CD_OK;
}

static int sq_event_by_client_id(struct store_conn *c, int64_t sender, const char *cmid,
                                 size_t cmid_len, store_event_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int n = 0, rc;
    if (cmid_len > INT32_MAX) return CD_E_NOT_FOUND;
    if (!(s = stmt(c, SQL_EVENT_BY_CLIENT_ID))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, sender);
    sqlite3_bind_text(s, 2, cmid, (int)cmid_len, SQLITE_STATIC);
    rc = each_event(c, s, "event_by_client_id", cb, ud, &n);
    return rc == CD_OK && n == 0 ? CD_E_NOT_FOUND : rc;
}

/* One statement per (bounded, direction) pair, so each is a plain range scan of the
 * (room_id, seq) index. */
static int sq_events_page(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                          int limit, int desc, store_event_cb cb, void *ud)
{
    static const enum sql_id ids[2][2] = {{SQL_EVENTS_ASC, SQL_EVENTS_DESC},
                                          {SQL_EVENTS_ASC_BEFORE, SQL_EVENTS_DESC_BEFORE}};
    sqlite3_stmt *s = stmt(c, ids[before > 0][desc != 0]);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    if (before > 0) sqlite3_bind_int64(s, 4, before);
    return each_event(c, s, "events_page", cb, ud, NULL);
}

/* Clamped to the room's last_seq: a client cannot mark entries that do not exist yet. */
static int sq_read_mark(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq,
                        int64_t *out_seq)
{
    sqlite3_stmt *s;
    if (!(s = stmt(c, SQL_READ_MARK))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, seq);
    return step_int64(c, s, "read_mark", out_seq);
}

/* O(max): a range scan of at most `max` entries of the (room_id, seq) index with a rowid lookup
 * each for kind and sender, plus one index seek for whether anything lies beyond. */
static int sq_unread_count(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t after,
                           int64_t max, int64_t *out, int *capped)
{
    sqlite3_stmt *s = stmt(c, SQL_UNREAD_COUNT);
    int rc;
    if (!s) return CD_E_IO;
    if (max < 0) max = 0;
    if (after > INT64_MAX - max) after = INT64_MAX - max;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, after);
    sqlite3_bind_int(s, 4, EV_MESSAGE);
    sqlite3_bind_int64(s, 5, max);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        *capped = sqlite3_column_int(s, 1) != 0;
        rc = CD_OK;
    } else {
        rc = sq_err(c, "unread_count");
    }
    sqlite3_reset(s);
    return rc;
}

static const char *col_text_len(sqlite3_stmt *s, int col, size_t *len)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    *len = t ? (size_t)sqlite3_column_bytes(s, col) : 0;
    return t;
}

/* One range scan of the outbox's rowids, plus one (room_id, seq) index lookup and one events
 * row per log entry. The JSON is built per row into one reused buffer. */
static int sq_outbox_page(struct store_conn *c, int64_t after, int limit, store_outbox_cb cb,
                          void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_OUTBOX_PAGE);
    struct jsonw w;
    int rc;

    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    jsonw_init(&w, 512);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_outbox_event ob = {.pos = sqlite3_column_int64(s, 0),
                                        .room_id = sqlite3_column_int64(s, 1)};
        char id[48];
        if (sqlite3_column_int64(s, 2) > 0) {
            struct store_event ev = {.room_id = ob.room_id, .seq = sqlite3_column_int64(s, 2)};
            if (sqlite3_column_type(s, 7) == SQLITE_NULL) continue; /* no such entry */
            ev.kind = sqlite3_column_int(s, 7);
            ev.sender = sqlite3_column_int64(s, 8);
            ev.ts = sqlite3_column_int64(s, 9);
            ev.client_msg_id = col_text_len(s, 10, &ev.cmid_len);
            ev.body = col_text_len(s, 11, &ev.body_len);
            if (!ev.body) ev.body = "";
            w.len = JSONW_HEADROOM;
            store_event_json(&w, &ev);
            ob.id = id;
            ob.id_len = store__log_event_id(id, ev.kind, ev.room_id, ev.seq);
            ob.type = store__log_event_type(ev.kind);
            ob.type_len = strlen(ob.type);
            ob.ts = ev.ts;
            ob.json = jsonw_text(&w);
            ob.json_len = jsonw_text_len(&w);
        } else {
            ob.type = col_text_len(s, 3, &ob.type_len);
            ob.id = col_text_len(s, 4, &ob.id_len);
            ob.ts = sqlite3_column_int64(s, 5);
            ob.json = col_text_len(s, 6, &ob.json_len);
            if (!ob.type || !ob.id || !ob.json) continue;
        }
        if (cb(ud, &ob)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "outbox_page");
    sqlite3_reset(s);
    jsonw_free(&w);
    return rc;
}

static int sq_consumer_get(struct store_conn *c, const char *name, int64_t *pos)
{
    sqlite3_stmt *s = stmt(c, SQL_CONSUMER_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    rc = step_int64(c, s, "consumer_get", pos);
    if (rc == CD_E_NOT_FOUND) {
        *pos = 0;
        rc = CD_OK;
    }
    return rc;
}

static int sq_consumer_put(struct store_conn *c, const char *name, int64_t pos)
{
    sqlite3_stmt *s = stmt(c, SQL_CONSUMER_PUT);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, pos);
    return step_done(c, s, "consumer_put");
}

static int sq_apikey_insert(struct store_conn *c, const char *name, const uint8_t hash[32],
                            int64_t now_ms, int64_t *id_out)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    return step_insert(c, s, "apikey_insert", id_out);
}

static void apikey_row(sqlite3_stmt *s, struct store_apikey *k)
{
    k->id = sqlite3_column_int64(s, 0);
    text_col(s, 1, k->name, sizeof(k->name));
    k->created_at = sqlite3_column_int64(s, 2);
    k->revoked_at = sqlite3_column_int64(s, 3);
}

static int sq_apikey_by_hash(struct store_conn *c, const uint8_t hash[32], struct store_apikey *out)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_BY_HASH);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        apikey_row(s, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "apikey_by_hash");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_apikey_list(struct store_conn *c, store_apikey_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_LIST);
    int rc;
    if (!s) return CD_E_IO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_apikey k;
        apikey_row(s, &k);
        if (cb(ud, &k)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "apikey_list");
    sqlite3_reset(s);
    return rc;
}

static int sq_apikey_revoke(struct store_conn *c, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_REVOKE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_one(c, s, "apikey_revoke");
}

static int sq_webhook_insert(struct store_conn *c, struct store_webhook *w)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOK_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int(s, 1, w->kind);
    sqlite3_bind_text(s, 2, w->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, w->secret, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, w->types, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, w->created_at);
    return step_insert(c, s, "webhook_insert", &w->id);
}

static int sq_webhook_delete(struct store_conn *c, int64_t id)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOK_DELETE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    return step_one(c, s, "webhook_delete");
}

static void webhook_row(sqlite3_stmt *s, struct store_webhook *w)
{
    w->id = sqlite3_column_int64(s, 0);
    w->kind = sqlite3_column_int(s, 1);
    text_col(s, 2, w->url, sizeof(w->url));
    text_col(s, 3, w->secret, sizeof(w->secret));
    text_col(s, 4, w->types, sizeof(w->types));
    w->created_at = sqlite3_column_int64(s, 5);
}

/* Every row of a bound webhook statement to cb; *n (unless NULL) gets the rows seen. */
static int each_webhook(struct store_conn *c, sqlite3_stmt *s, store_webhook_cb cb, void *ud,
                        int *n)
{
    int rc, rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_webhook w;
        webhook_row(s, &w);
        rows++;
        if (cb(ud, &w)) break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "webhooks");
    sqlite3_reset(s);
    if (n) *n = rows;
    return rc;
}

static int copy_webhook(void *ud, const struct store_webhook *w)
{
    *(struct store_webhook *)ud = *w;
    return 1;
}

static int sq_webhook_get(struct store_conn *c, int64_t id, struct store_webhook *out)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOK_GET);
    int n = 0, rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    rc = each_webhook(c, s, copy_webhook, out, &n);
    return rc == CD_OK && n == 0 ? CD_E_NOT_FOUND : rc;
}

static int sq_webhooks_list(struct store_conn *c, store_webhook_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOKS_LIST);
    return s ? each_webhook(c, s, cb, ud, NULL) : CD_E_IO;
}

static int sq_delivery_insert(struct store_conn *c, const struct store_delivery *d, int *inserted)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, d->endpoint_id);
    sqlite3_bind_text(s, 2, d->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, d->body, (int)d->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, d->next_at);
    sqlite3_bind_int64(s, 5, d->created_at);
    rc = step_done(c, s, "delivery_insert");
    if (rc == CD_OK) *inserted = sqlite3_changes(c->db) > 0;
    return rc;
}

static int sq_deliveries_list(struct store_conn *c, int state, int64_t due_before, int64_t after,
                              int limit, store_delivery_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc;
    if (state == DELIVERY_PENDING) {
        if (!(s = stmt(c, SQL_DELIVERIES_DUE))) return CD_E_IO;
        sqlite3_bind_int64(s, 1, due_before);
    } else {
        if (!(s = stmt(c, SQL_DELIVERIES_STATE))) return CD_E_IO;
        sqlite3_bind_int(s, 1, state);
    }
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_delivery d;
        d.id = sqlite3_column_int64(s, 0);
        d.endpoint_id = sqlite3_column_int64(s, 1);
        text_col(s, 2, d.event_id, sizeof(d.event_id));
        d.body = (const char *)sqlite3_column_text(s, 3);
        d.body_len = (size_t)sqlite3_column_bytes(s, 3);
        d.state = sqlite3_column_int(s, 4);
        d.attempts = sqlite3_column_int(s, 5);
        d.next_at = sqlite3_column_int64(s, 6);
        d.created_at = sqlite3_column_int64(s, 7);
        text_col(s, 8, d.last_error, sizeof(d.last_error));
        if (!d.body) d.body = "";
        if (cb(ud, &d)) break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "deliveries_list");
    sqlite3_reset(s);
    return rc;
}

static int sq_delivery_update(struct store_conn *c, int64_t id, int state, int attempts,
                              int64_t next_at, const char *last_error)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_UPDATE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int(s, 3, attempts);
    sqlite3_bind_int64(s, 4, next_at);
    if (last_error) sqlite3_bind_text(s, 5, last_error, -1, SQLITE_STATIC);
    return step_one(c, s, "delivery_update");
}

static int sq_delivery_claim(struct store_conn *c, int64_t id, int64_t due_before, int64_t until)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_CLAIM);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, due_before);
    sqlite3_bind_int64(s, 3, until);
    return step_one(c, s, "delivery_claim");
}

static int sq_delivery_replay(struct store_conn *c, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_REPLAY);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_one(c, s, "delivery_replay");
}

static int sq_room_mute_put(struct store_conn *c, int64_t room_id, int64_t user_id, int muted)
{
    sqlite3_stmt *s = stmt(c, SQL_MUTE_PUT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int(s, 3, muted ? 1 : 0);
    return step_done(c, s, "room_mute_put");
}

static int sq_room_mute_get(struct store_conn *c, int64_t room_id, int64_t user_id, int *muted)
{
    sqlite3_stmt *s = stmt(c, SQL_MUTE_GET);
    int64_t v = 0;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    rc = step_int64(c, s, "room_mute_get", &v);
    if (rc == CD_E_NOT_FOUND) rc = CD_OK;
    *muted = v != 0;
    return rc;
}

/* Copy the WAL back into the database without blocking the writer or readers (PASSIVE). Once
 * every frame is copied, the writer's next transaction restarts the WAL from its beginning (the
 * file's pages are reused, not regrown); journal_size_limit trims it after a burst. */
static int sq_checkpoint(struct store_conn *c, int *wal_frames)
{
    int done = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, wal_frames, &done);
    if (rc == SQLITE_BUSY) return CD_OK; /* another checkpoint is running: retried later */
    if (rc != SQLITE_OK) return sq_err(c, "checkpoint");
    return CD_OK;
}

/* Rewrite the schema's user_version with its own value: page 1 is dirtied, so the commit must
 * write a WAL frame (and fails when the disk is full), while nothing changes. */
static int sq_probe(struct store_conn *c)
{
    sqlite3_stmt *s;
    char sql[64];
    int v;

    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return sq_err(c, "probe");
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return sq_err(c, "probe");
    }
    v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v);
    return sq_exec(c->db, sql);
}

const struct store_ops store_sqlite_ops = {
    .checkpoint = sq_checkpoint,
    .probe = sq_probe,
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .conn_open = sq_conn_open,
    .conn_close = sq_conn_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .savepoint_release = sq_savepoint_release,
    .user_insert = sq_user_insert,
    .user_get = sq_user_get,
    .user_by_name = sq_user_by_name,
    .user_set_last_seen = sq_user_set_last_seen,
    .session_insert = sq_session_insert,
    .session_revoke = sq_session_revoke,
    .sessions_revoked_since = sq_sessions_revoked_since,
    .refresh_insert = sq_refresh_insert,
    .refresh_by_hash = sq_refresh_by_hash,
    .refresh_mark_used = sq_refresh_mark_used,
    .room_insert = sq_room_insert,
    .room_get = sq_room_get,
    .room_by_dm_key = sq_room_by_dm_key,
    .room_update = sq_room_update,
    .member_get = sq_member_get,
    .member_put = sq_member_put,
    .member_delete = sq_member_delete,
    .members_list = sq_members_list,
    .rooms_of_user = sq_rooms_of_user,
    .user_room_counts = sq_user_room_counts,
    .users_share_room = sq_users_share_room,
    .event_append = sq_event_append,
    .event_by_client_id = sq_event_by_client_id,
    .events_page = sq_events_page,
    .read_mark = sq_read_mark,
    .unread_count = sq_unread_count,
    .outbox_page = sq_outbox_page,
    .consumer_get = sq_consumer_get,
    .consumer_put = sq_consumer_put,
    .apikey_insert = sq_apikey_insert,
    .apikey_by_hash = sq_apikey_by_hash,
    .apikey_list = sq_apikey_list,
    .apikey_revoke = sq_apikey_revoke,
    .webhook_insert = sq_webhook_insert,
    .webhook_delete = sq_webhook_delete,
    .webhook_get = sq_webhook_get,
    .webhooks_list = sq_webhooks_list,
    .delivery_insert = sq_delivery_insert,
    .deliveries_list = sq_deliveries_list,
    .delivery_claim = sq_delivery_claim,
    .delivery_update = sq_delivery_update,
    .delivery_replay = sq_delivery_replay,
    .room_mute_put = sq_room_mute_put,
    .room_mute_get = sq_room_mute_get,
};
