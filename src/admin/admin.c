/* admin.c - the administration commands of admin.h. */
#include "admin/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "auth/session.h"
#include "chat/people.h"
#include "net/net.h"
#include "server/config.h"
#include "server/origin.h"
#include "store/store.h"
#include "trace/trace.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

#define ARGS_MAX 256

struct cmd {
    const char *pos[4]; /* positional arguments after the command words */
    int npos;
    const char *to, *from; /* backup --to, restore --from */
    int64_t ttl;           /* token mint --ttl, 0 = --access-ttl */
    int force, help;
    struct cfg cfg;
    FILE *in, *out, *err;
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: chatd COMMAND [ARGS] [server settings]\n\n"
            "Administration commands; each reads the server's settings (flags, CHATD_*\n"
            "environment, --config FILE) like the server, so --data-dir or --store-url name the\n"
            "same storage. They may run while chatd runs (backup is consistent then too).\n\n"
            "  user create USERNAME     create a user; its password is the first line of stdin\n"
            "  user list                every user: id, username, created, last seen, status\n"
            "  user passwd USERNAME     set a new password (first line of stdin); ends every\n"
            "                           session of the user (refresh tokens stop working)\n"
            "  user disable USERNAME    no password works any more; ends every session. Access\n"
            "                           tokens already issued live until they expire\n"
            "                           (--access-ttl); `user passwd` enables the account again\n"
            "  token mint USERNAME [--ttl SECONDS]\n"
            "                           print an access token for the user (a new session; for\n"
            "                           scripts and tests); default lifetime --access-ttl\n"
            "  config check             validate the settings (file, environment, flags, OTEL_*)\n"
            "                           and print the effective ones, secrets redacted\n"
            "  backup --to FILE         SQLite: a consistent copy of the database into FILE (a\n"
            "                           new file), while chatd runs or not; PostgreSQL: use\n"
            "                           pg_dump. The JWT keys (DATA_DIR/jwt.keys) are a\n"
            "                           separate file: back it up too\n"
            "  restore --from FILE [--force]\n"
            "                           SQLite: replace DATA_DIR's database by a backup; chatd\n"
            "                           must be stopped; --force replaces an existing database\n\n"
            "Exit status: 0 done, 1 failed, 2 usage or settings error.\n");
}

/* ---- arguments ---- */

static const char *const command_words[] = {"user", "token", "config", "backup", "restore"};

int admin_is_command(int argc, char **argv)
{
    if (argc < 2) return 0;
    for (size_t i = 0; i < sizeof(command_words) / sizeof(command_words[0]); i++)
        if (!strcmp(argv[1], command_words[i])) return 1;
    return 0;
}

/* Split argv[first..] into the command's own arguments and the server settings, which go to
 * cfg_load. Every server flag takes a value ("--name value" or "--name=value"). */
static int parse_args(struct cmd *c, int argc, char **argv, int first, char **envp)
{
    char *sargv[ARGS_MAX];
    int sargc = 0, rc;

    sargv[sargc++] = argv[0];
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            c->help = 1;
            continue;
        }
        if (!strcmp(a, "--force")) {
            c->force = 1;
            continue;
        }
        if (n == 4 && !strncmp(a, "--to", 4)) dst = &c->to;
        if (n == 6 && !strncmp(a, "--from", 6)) dst = &c->from;
        if (dst || (n == 5 && !strncmp(a, "--ttl", 5))) {
            const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!v) {
                fprintf(c->err, "chatd: option '%.*s' needs a value\n", (int)n, a);
                return 2;
            }
            if (dst) {
                *dst = v;
            } else {
                char *end;
                long long t = strtoll(v, &end, 10);
                if (*end || t < 1 || t > 31536000) {
                    fprintf(c->err, "chatd: --ttl expects 1-31536000 seconds, got '%s'\n", v);
                    return 2;
                }
                c->ttl = t;
            }
            continue;
        }
        if (strncmp(a, "--", 2)) {
            if (c->npos == (int)(sizeof(c->pos) / sizeof(c->pos[0]))) {
                fprintf(c->err, "chatd: unexpected argument '%s'\n", a);
                return 2;
            }
            c->pos[c->npos++] = a;
            continue;
        }
        if (sargc + 2 >= ARGS_MAX) {
            fprintf(c->err, "chatd: too many arguments\n");
            return 2;
        }
        sargv[sargc++] = argv[i];
        if (!eq && i + 1 < argc) sargv[sargc++] = argv[++i];
    }
    if (c->help) return 0;
    rc = cfg_load(&c->cfg, sargc, sargv, envp, c->out, c->err);
    return rc == CFG_OK ? 0 : rc == CFG_EXIT_OK ? -1 : 2;
}

/* ---- storage ---- */

struct db {
    const struct store_ops *ops;
    struct store *st;
    struct store_conn *conn;
};

static int is_pg(const struct cfg *cfg)
{
    return !strncmp(cfg->store_url, "postgres://", 11) ||
           !strncmp(cfg->store_url, "postgresql://", 13);
}

static int db_open(struct cmd *c, struct db *d)
{
    struct store_config sc = {
        .url = c->cfg.store_url, .dir = c->cfg.data_dir, .sync_mode = c->cfg.sqlite_sync};
    memset(d, 0, sizeof(*d));
    if (c->cfg.store_url[0] && !is_pg(&c->cfg)) {
        fprintf(c->err, "chatd: invalid --store-url (empty for SQLite, or postgres://...)\n");
        return 2;
    }
    d->ops = is_pg(&c->cfg) ? &store_pg_ops : &store_sqlite_ops;
    if (!is_pg(&c->cfg) && mkdir(c->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(c->err, "chatd: cannot create data directory %s: %s\n", c->cfg.data_dir,
                strerror(errno));
        return 1;
    }
    if (d->ops->open(&sc, &d->st) != CD_OK) {
        fprintf(c->err, "chatd: cannot open the %s store (see the log line above)\n", d->ops->name);
        return 1;
    }
    if (d->ops->conn_open(d->st, 1, &d->conn) != CD_OK) {
        d->ops->close(d->st);
        fprintf(c->err, "chatd: cannot connect to the %s store\n", d->ops->name);
        return 1;
    }
    return 0;
}

static void db_close(struct db *d)
{
    if (d->conn) d->ops->conn_close(d->conn);
    if (d->st) d->ops->close(d->st);
}

/* ---- user ---- */

/* The first line of in, without its newline, checked as a password. */
static int read_password(struct cmd *c, char *pw, size_t cap)
{
    size_t n;
    if (!fgets(pw, (int)cap, c->in)) {
        fprintf(c->err, "chatd: expected the password on the first line of stdin\n");
        return 2;
    }
    n = strlen(pw);
    while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
        pw[--n] = '\0';
    if (!auth_password_valid(n)) {
        fprintf(c->err, "chatd: a password is %d to %d bytes\n", AUTH_PASSWORD_MIN,
                AUTH_PASSWORD_MAX);
        return 2;
    }
    return 0;
}

static int find_user(struct cmd *c, struct db *d, const char *name, struct store_user *u)
{
    int rc = d->ops->user_by_name(d->conn, name, u);
    if (rc == CD_E_NOT_FOUND) {
        fprintf(c->err, "chatd: no user '%s'\n", name);
        return 1;
    }
    if (rc != CD_OK) {
        fprintf(c->err, "chatd: cannot read user '%s': %s\n", name, cd_status_message(rc));
        return 1;
    }
    return 0;
}

/* Run fn inside one write transaction. */
static int in_tx(struct cmd *c, struct db *d, int (*fn)(struct cmd *, struct db *, void *),
                 void *arg)
{
    int rc = d->ops->begin(d->conn);
    if (rc != CD_OK) {
        fprintf(c->err, "chatd: cannot begin a transaction: %s\n", cd_status_message(rc));
        return 1;
    }
    if ((rc = fn(c, d, arg)) != 0) {
        d->ops->rollback(d->conn);
        return rc;
    }
    if ((rc = d->ops->commit(d->conn)) != CD_OK) {
        fprintf(c->err, "chatd: commit failed: %s\n", cd_status_message(rc));
        return 1;
    }
    return 0;
}

struct user_op {
    const char *name;
    const char *pwhash;
    int64_t id, sessions;
};

static int tx_create(struct cmd *c, struct db *d, void *arg)
{
    struct user_op *o = arg;
    /* the same opaque ids as registration */
    int rc = people_user_create(d->ops, d->conn, o->name, o->pwhash, clock_unix_ms(), &o->id);
    if (rc == CD_E_USERNAME_TAKEN) {
        fprintf(c->err, "chatd: user '%s' exists\n", o->name);
        return 1;
    }
    if (rc != CD_OK) {
        fprintf(c->err, "chatd: cannot create user: %s\n", cd_status_message(rc));
        return 1;
    }
    return 0;
}

static int tx_set_hash(struct cmd *c, struct db *d, void *arg)
{
    struct user_op *o = arg;
    struct store_user u;
    int rc;
    if ((rc = find_user(c, d, o->name, &u)) != 0) return rc;
    o->id = u.id;
    if ((rc = d->ops->user_set_pwhash(d->conn, u.id, o->pwhash)) != CD_OK ||
        (rc = d->ops->sessions_revoke_user(d->conn, u.id, clock_unix_ms(), &o->sessions)) !=
            CD_OK) {
        fprintf(c->err, "chatd: cannot update user '%s': %s\n", o->name, cd_status_message(rc));
        return 1;
    }
    return 0;
}

/* `user disable`: the same path as the server API's (people_user_set_enabled); the sessions
 * end in storage (their refresh tokens stop working; a running server refuses them too). */
static int tx_disable(struct cmd *c, struct db *d, void *arg)
{
    struct user_op *o = arg;
    struct store_user u;
    int64_t *sids = NULL;
    size_t n = 0;
    int rc;
    if ((rc = find_user(c, d, o->name, &u)) != 0) return rc;
    o->id = u.id;
    if ((rc = people_user_set_enabled(d->ops, d->conn, u.id, 0, clock_unix_ms(), &sids, &n)) !=
        CD_OK) {
        fprintf(c->err, "chatd: cannot disable user '%s': %s\n", o->name, cd_status_message(rc));
        return 1;
    }
    free(sids);
    o->sessions = (int64_t)n;
    return 0;
}

static int hash_password(struct cmd *c, char *hash)
{
    char pw[AUTH_PASSWORD_MAX + 2];
    int rc = read_password(c, pw, sizeof(pw));
    if (rc) return rc;
    rc = auth_hash_password(pw, strlen(pw), (uint64_t)c->cfg.pwhash_ops,
                            (uint64_t)c->cfg.pwhash_mem_kib, hash);
    memset(pw, 0, sizeof(pw));
    if (rc != CD_OK) {
        fprintf(c->err, "chatd: cannot hash the password (--pwhash-mem-kib too large?)\n");
        return 1;
    }
    return 0;
}

static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms) {
        snprintf(out, cap, "-");
        return;
    }
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int list_row(void *ud, const struct store_user *u)
{
    struct cmd *c = ud;
    char created[32], seen[32];
    iso_time(u->created_at, created, sizeof(created));
    iso_time(u->last_seen, seen, sizeof(seen));
    fprintf(c->out, "u_%" PRId64 "\t%s\t%s\t%s\t%s\n", u->id, u->username, created, seen,
            people_user_disabled(u) ? "disabled" : "active");
    return 0;
}

static int cmd_user(struct cmd *c)
{
    const char *sub = c->npos > 0 ? c->pos[0] : "";
    struct user_op o = {0};
    char hash[AUTH_PWHASH_MAX];
    struct db d;
    int rc;

    if (!strcmp(sub, "list")) {
        if (c->npos != 1) goto usage;
        if ((rc = db_open(c, &d)) != 0) return rc;
        fprintf(c->out, "id\tusername\tcreated\tlast_seen\tstatus\n");
        rc = d.ops->users_list(d.conn, 0, -1, list_row, c);
        db_close(&d);
        if (rc != CD_OK) fprintf(c->err, "chatd: cannot list users: %s\n", cd_status_message(rc));
        return rc == CD_OK ? 0 : 1;
    }
    if (c->npos != 2 || (strcmp(sub, "create") && strcmp(sub, "passwd") && strcmp(sub, "disable")))
        goto usage;
    o.name = c->pos[1];
    if (!auth_username_valid(o.name, strlen(o.name))) {
        fprintf(c->err,
                "chatd: invalid username '%s' (3-32 of a-z 0-9 _ . -, starting with a letter "
                "or digit)\n",
                o.name);
        return 2;
    }
    if (strcmp(sub, "disable")) {
        if ((rc = hash_password(c, hash)) != 0) return rc;
        o.pwhash = hash;
    }
    if ((rc = db_open(c, &d)) != 0) return rc;
    rc = in_tx(c, &d,
               !strcmp(sub, "create")    ? tx_create
               : !strcmp(sub, "disable") ? tx_disable
                                         : tx_set_hash,
               &o);
    db_close(&d);
    if (rc) return rc;
    if (!strcmp(sub, "create"))
        fprintf(c->out, "created user %s (u_%" PRId64 ")\n", o.name, o.id);
    else
        fprintf(c->out, "%s %s (u_%" PRId64 "): %" PRId64 " session(s) ended\n",
                strcmp(sub, "disable") ? "new password for" : "disabled", o.name, o.id, o.sessions);
    return 0;
usage:
    fprintf(c->err, "chatd: expected user create|passwd|disable USERNAME, or user list (see "
                    "chatd user --help)\n");
    return 2;
}

/* ---- token ---- */

/* The keyring the server signs with: --jwt-keys, else DATA_DIR/jwt.keys. */
static int load_keyring(struct cmd *c, struct jwt_keyring *ring)
{
    char path[4096], spec[512];
    size_t n;
    FILE *f;

    if (c->cfg.jwt_keys[0]) {
        if (jwt_keyring_parse(ring, c->cfg.jwt_keys) == CD_OK) return 0;
        fprintf(c->err, "chatd: invalid --jwt-keys (expected kid:64hex[,kid:64hex])\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/jwt.keys", c->cfg.data_dir);
    if (!(f = fopen(path, "r"))) {
        fprintf(c->err, "chatd: cannot read %s: %s (start chatd once, or pass --jwt-keys)\n", path,
                strerror(errno));
        return 1;
    }
    n = fread(spec, 1, sizeof(spec) - 1, f);
    fclose(f);
    spec[n] = '\0';
    while (n && (spec[n - 1] == '\n' || spec[n - 1] == ' '))
        spec[--n] = '\0';
    if (jwt_keyring_parse(ring, spec) != CD_OK) {
        fprintf(c->err, "chatd: invalid key file %s\n", path);
        return 1;
    }
    return 0;
}

static int tx_session(struct cmd *c, struct db *d, void *arg)
{
    struct user_op *o = arg;
    struct store_user u;
    int rc;
    if ((rc = find_user(c, d, o->name, &u)) != 0) return rc;
    if (people_user_disabled(&u)) {
        fprintf(c->err, "chatd: user '%s' is disabled\n", o->name);
        return 1;
    }
    o->id = u.id;
    if ((rc = session_create(d->ops, d->conn, u.id, clock_unix_ms(), &o->sessions)) != CD_OK) {
        fprintf(c->err, "chatd: cannot create a session: %s\n", cd_status_message(rc));
        return 1;
    }
    return 0;
}

static int cmd_token(struct cmd *c)
{
    struct jwt_keyring ring;
    struct jwt_claims cl;
    struct user_op o = {0};
    struct db d;
    char tok[JWT_MAX_TOKEN + 1];
    int rc;

    if (c->npos != 2 || strcmp(c->pos[0], "mint")) {
        fprintf(c->err, "chatd: expected token mint USERNAME [--ttl SECONDS]\n");
        return 2;
    }
    o.name = c->pos[1];
    if ((rc = load_keyring(c, &ring)) != 0) return rc;
    if ((rc = db_open(c, &d)) != 0) return rc;
    rc = in_tx(c, &d, tx_session, &o);
    db_close(&d);
    if (rc) return rc;
    cl.sub = o.id;
    cl.sid = o.sessions;
    cl.iat = clock_unix_ms() / 1000;
    cl.exp = cl.iat + (c->ttl ? c->ttl : (c->cfg.access_ttl > 0 ? c->cfg.access_ttl : 900));
    if (jwt_sign(&ring, &cl, tok, sizeof(tok)) != CD_OK) {
        fprintf(c->err, "chatd: cannot sign the token\n");
        return 1;
    }
    fprintf(c->out, "%s\n", tok);
    return 0;
}

/* ---- config check ---- */

static int cmd_config(struct cmd *c, char **envp)
{
    struct sockaddr_storage ss;
    struct origin_policy op;
    struct jwt_keyring ring;
    struct trace_config tc;
    const char *why = NULL;
    int bad = 0;

    if (c->npos != 1 || strcmp(c->pos[0], "check")) {
        fprintf(c->err, "chatd: expected config check\n");
        return 2;
    }
#define BAD(...) (fprintf(c->err, "chatd: " __VA_ARGS__), bad = 1)
    if (log_level_parse(c->cfg.log_level) < 0)
        BAD("--log-level: expected debug, info, warn or error, got '%s'\n", c->cfg.log_level);
    if (c->cfg.store_url[0] && !is_pg(&c->cfg))
        BAD("--store-url: expected empty (SQLite) or postgres://...\n");
    if (strcmp(c->cfg.sqlite_sync, "full") && strcmp(c->cfg.sqlite_sync, "normal"))
        BAD("--sqlite-sync: expected full or normal, got '%s'\n", c->cfg.sqlite_sync);
    if (net_parse_addr(c->cfg.listen, &ss))
        BAD("--listen: expected host:port, got '%s'\n", c->cfg.listen);
    if (c->cfg.metrics_listen[0] && net_parse_addr(c->cfg.metrics_listen, &ss))
        BAD("--metrics-listen: expected host:port, got '%s'\n", c->cfg.metrics_listen);
    if (origin_policy_parse(&op, c->cfg.allowed_origins) != CD_OK)
        BAD("--allowed-origins: expected scheme://host[:port],... or *\n");
    else
        origin_policy_free(&op);
    if (c->cfg.jwt_keys[0] && jwt_keyring_parse(&ring, c->cfg.jwt_keys) != CD_OK)
        BAD("--jwt-keys: expected kid:64hex[,kid:64hex]\n");
    if (c->cfg.nats_url[0] && strncmp(c->cfg.nats_url, "nats://", 7))
        BAD("--nats-url: expected nats://host:port[,...]\n");
    if (c->cfg.redis_url[0] && strncmp(c->cfg.redis_url, "redis://", 8))
        BAD("--redis-url: expected redis://host:port[/db]\n");
    if (c->cfg.nats_url[0] && !is_pg(&c->cfg))
        BAD("--nats-url needs --store-url postgres://... (the nodes of a cluster share storage)\n");
    if (trace_config_env(&tc, envp, NULL, &why) != 0) BAD("%s\n", why);
#undef BAD
    fprintf(c->out, "# chatd %s: effective settings (flag > environment > %s > default)\n",
            CHATD_VERSION, c->cfg.config_file ? c->cfg.config_file : "config file");
    cfg_print(&c->cfg, c->out);
    if (!why && tc.url)
        fprintf(c->out, "# tracing: on, %s, sampler %s (ratio %g), service %s\n", tc.url,
                tc.sampler && *tc.sampler ? tc.sampler : "parentbased_always_on", tc.ratio,
                tc.service_name);
    else if (!why)
        fprintf(c->out, "# tracing: off (no OTEL_EXPORTER_OTLP_ENDPOINT)\n");
    if (bad) fprintf(c->err, "chatd: config check failed\n");
    return bad ? 2 : 0;
}

/* ---- backup and restore (SQLite) ---- */

static int sqlite_copy(sqlite3 *from, sqlite3 *to)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    int rc;
    if (!b) return sqlite3_errcode(to);
    /* One step over every page: a single read transaction on the source, so the copy is one
     * consistent snapshot even while chatd commits (WAL: the writer is not blocked). */
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)
        sqlite3_sleep(50);
    sqlite3_backup_finish(b);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_check(sqlite3 *db, char *why, size_t cap)
{
    sqlite3_stmt *s;
    int ok = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK) {
        snprintf(why, cap, "%s", sqlite3_errmsg(db));
        return 0;
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        ok = t && !strcmp(t, "ok");
        snprintf(why, cap, "%s", t ? t : "no result");
    } else {
        snprintf(why, cap, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    if (!ok) return 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM users", -1, &s, NULL) != SQLITE_OK) {
        snprintf(why, cap, "not a chatd database (%s)", sqlite3_errmsg(db));
        return 0;
    }
    sqlite3_finalize(s);
    return 1;
}

static int cmd_backup(struct cmd *c)
{
    char src_path[4096], why[256];
    sqlite3 *src = NULL, *dst = NULL;
    struct stat st;
    int rc = 1, fd;

    if (c->npos || !c->to || !*c->to) {
        fprintf(c->err, "chatd: expected backup --to FILE\n");
        return 2;
    }
    if (is_pg(&c->cfg)) {
        fprintf(c->err, "chatd: backup copies SQLite only; for PostgreSQL use pg_dump, e.g.\n"
                        "  pg_dump --format=custom --file=chatd.dump '<your --store-url>'\n"
                        "and pg_restore to restore it (see docs/OPERATIONS.md)\n");
        return 1;
    }
    snprintf(src_path, sizeof(src_path), "%s/chatd.db", c->cfg.data_dir);
    if (stat(src_path, &st) != 0) {
        fprintf(c->err, "chatd: no database at %s: %s\n", src_path, strerror(errno));
        return 1;
    }
    /* A new file only (0600: it holds password hashes), never over something. */
    if ((fd = open(c->to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        fprintf(c->err, "chatd: cannot create %s: %s\n", c->to, strerror(errno));
        return 1;
    }
    close(fd);
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(c->err, "chatd: cannot open %s: %s\n", src_path, sqlite3_errmsg(src));
        goto done;
    }
    if (sqlite3_open_v2(c->to, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(c->err, "chatd: cannot open %s: %s\n", c->to, sqlite3_errmsg(dst));
        goto done;
    }
    sqlite3_busy_timeout(src, 10000);
    if (sqlite_copy(src, dst) != SQLITE_OK) {
        fprintf(c->err, "chatd: backup failed: %s\n", sqlite3_errmsg(dst));
        goto done;
    }
    /* The copy is a plain rollback-journal database: one file, nothing else to carry. */
    sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (!sqlite_check(dst, why, sizeof(why))) {
        fprintf(c->err, "chatd: the backup does not check: %s\n", why);
        goto done;
    }
    rc = 0;
done:
    sqlite3_close(src);
    sqlite3_close(dst);
    if (rc) {
        unlink(c->to);
        return rc;
    }
    if ((fd = open(c->to, O_RDONLY | O_CLOEXEC)) >= 0) {
        fsync(fd);
        fstat(fd, &st);
        close(fd);
    }
    fprintf(c->out,
            "backup of %s written to %s (%lld bytes, integrity ok)\n"
            "the JWT signing keys are not in it: keep a copy of %s/jwt.keys (or your "
            "--jwt-keys)\n",
            src_path, c->to, (long long)st.st_size, c->cfg.data_dir);
    return 0;
}

static int cmd_restore(struct cmd *c)
{
    char path[4096], why[256];
    sqlite3 *src = NULL, *dst = NULL;
    struct stat st;
    int rc = 1, lock;

    if (c->npos || !c->from || !*c->from) {
        fprintf(c->err, "chatd: expected restore --from FILE [--force]\n");
        return 2;
    }
    if (is_pg(&c->cfg)) {
        fprintf(c->err, "chatd: restore writes SQLite only; for PostgreSQL use pg_restore (or "
                        "psql for a plain dump) into an empty database\n");
        return 1;
    }
    if (sqlite3_open_v2(c->from, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        !sqlite_check(src, why, sizeof(why))) {
        fprintf(c->err, "chatd: %s is not a usable backup: %s\n", c->from,
                src ? why : "cannot open");
        sqlite3_close(src);
        return 1;
    }
    if (mkdir(c->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(c->err, "chatd: cannot create %s: %s\n", c->cfg.data_dir, strerror(errno));
        sqlite3_close(src);
        return 1;
    }
    /* The server's lock: refused while a chatd runs on this directory. */
    snprintf(path, sizeof(path), "%s/chatd.lock", c->cfg.data_dir);
    if ((lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
        flock(lock, LOCK_EX | LOCK_NB) != 0) {
        fprintf(c->err, "chatd: %s is in use by a running chatd: stop it first\n", c->cfg.data_dir);
        if (lock >= 0) close(lock);
        sqlite3_close(src);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/chatd.db", c->cfg.data_dir);
    if (stat(path, &st) == 0 && !c->force) {
        fprintf(c->err, "chatd: %s exists: pass --force to replace it\n", path);
        goto done;
    }
    {
        char side[4200];
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
    }
    umask(077);
    if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fprintf(c->err, "chatd: cannot open %s: %s\n", path, sqlite3_errmsg(dst));
        goto done;
    }
    sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (sqlite_copy(src, dst) != SQLITE_OK || !sqlite_check(dst, why, sizeof(why))) {
        fprintf(c->err, "chatd: restore failed: %s\n", sqlite3_errmsg(dst));
        goto done;
    }
    chmod(path, 0600);
    fprintf(c->out, "restored %s from %s; start chatd on %s\n", path, c->from, c->cfg.data_dir);
    rc = 0;
done:
    sqlite3_close(dst);
    sqlite3_close(src);
    close(lock);
    return rc;
}

int admin_main(int argc, char **argv, char **envp, FILE *in, FILE *out, FILE *err)
{
    struct cmd c;
    const char *what = argv[1];
    int rc;

    memset(&c, 0, sizeof(c));
    c.in = in;
    c.out = out;
    c.err = err;
    log_set_level(LOG_WARN); /* the store's info lines (migrations) would mix with the output */
    rc = parse_args(&c, argc, argv, 2, envp);
    if (c.help) {
        usage(out);
        cfg_free(&c.cfg);
        return 0;
    }
    if (rc) {
        cfg_free(&c.cfg);
        return rc < 0 ? 0 : rc;
    }
    if (auth_init() != CD_OK) {
        cfg_free(&c.cfg);
        return 1;
    }
    umask(077);
    if (!strcmp(what, "user"))
        rc = cmd_user(&c);
    else if (!strcmp(what, "token"))
        rc = cmd_token(&c);
    else if (!strcmp(what, "config"))
        rc = cmd_config(&c, envp);
    else if (!strcmp(what, "backup"))
        rc = cmd_backup(&c);
    else
        rc = cmd_restore(&c);
    cfg_free(&c.cfg);
    return rc;
}
