/* store_sqlite.c - the SQLite backend: WAL, numbered migrations, cached prepared statements. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store.h"
#include "store/store_sqlite_schema.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

struct store {
    char *path;
    int sync_full;
};

/* Every statement the backend runs, prepared once per connection on first use. */
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
    X(REFRESH_INSERT, "INSERT INTO refresh_tokens(session_id, user_id, hash, created_at, "         \
                      "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")                                   \
    X(REFRESH_BY_HASH, "SELECT r.id, r.session_id, r.user_id, r.created_at, r.expires_at, "        \
                       "coalesce(r.used_at, 0), s.revoked_at IS NOT NULL FROM refresh_tokens r "   \
                       "JOIN sessions s ON s.id = r.session_id WHERE r.hash = ?1")                 \
    X(REFRESH_USED, "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1")

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

struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[SQL__COUNT];
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

static int exec_id(struct store_conn *c, enum sql_id id)
{
    sqlite3_stmt *s = stmt(c, id);
    return s ? step_done(c, s, sql_text[id]) : CD_E_IO;
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
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA foreign_keys=ON; PRAGMA synchronous=%s; PRAGMA temp_store=MEMORY;"
             "PRAGMA cache_size=-16000;%s",
             sync_full ? "FULL" : "NORMAL", writer ? "PRAGMA wal_autocheckpoint=4000;" : "");
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

static int sq_open(const struct store_config *cfg, struct store **out)
{
    struct store *st;
    sqlite3 *db = NULL;
    size_t n;
    int rc;

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
    if (sqlite3_open_v2(st->path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        log_error("cannot open database", "\"path\":\"%s\"", st->path);
        rc = CD_E_IO;
        goto fail;
    }
    if ((rc = sq_exec(db, "PRAGMA journal_mode=WAL;")) || (rc = conn_setup(db, 1, st->sync_full)) ||
        (rc = migrate(db)))
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
    int flags = SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);

    if (sqlite3_open_v2(st->path, &c->db, flags, NULL) != SQLITE_OK ||
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
    return sqlite3_get_autocommit(c->db) ? CD_OK : exec_id(c, SQL_ROLLBACK);
}
static int sq_savepoint(struct store_conn *c)
{
    return exec_id(c, SQL_SAVEPOINT);
}
static int sq_savepoint_release(struct store_conn *c, int undo)
{
    if (undo && exec_id(c, SQL_ROLLBACK_TO) != CD_OK) return CD_E_IO;
    return exec_id(c, SQL_RELEASE);
}

static void text_col(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
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
    rc = step_done(c, s, "user_insert");
    if (rc == CD_E_CONFLICT) return CD_E_USERNAME_TAKEN;
    if (rc == CD_OK) *id_out = sqlite3_last_insert_rowid(c->db);
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
    sqlite3_stmt *s = stmt(c, SQL_USER_LAST_SEEN);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, ms);
    return step_done(c, s, "user_last_seen");
}

static int sq_session_insert(struct store_conn *c, int64_t user_id, int64_t now_ms, int64_t *sid)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSION_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, now_ms);
    rc = step_done(c, s, "session_insert");
    if (rc == CD_OK) *sid = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int sq_session_revoke(struct store_conn *c, int64_t sid, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSION_REVOKE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, sid);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_done(c, s, "session_revoke");
}

static int sq_refresh_insert(struct store_conn *c, struct store_refresh *r)
{
    sqlite3_stmt *s = stmt(c, SQL_REFRESH_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, r->session_id);
    sqlite3_bind_int64(s, 2, r->user_id);
    sqlite3_bind_blob(s, 3, r->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->created_at);
    sqlite3_bind_int64(s, 5, r->expires_at);
    rc = step_done(c, s, "refresh_insert");
    if (rc == CD_OK) r->id = sqlite3_last_insert_rowid(c->db);
    return rc;
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
    sqlite3_stmt *s = stmt(c, SQL_REFRESH_USED);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_done(c, s, "refresh_used");
}

const struct store_ops store_sqlite_ops = {
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
    .refresh_insert = sq_refresh_insert,
    .refresh_by_hash = sq_refresh_by_hash,
    .refresh_mark_used = sq_refresh_mark_used,
};
