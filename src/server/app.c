/* app.c - chatd's lifecycle: configuration to running node, and SIGTERM drain to exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"
#include "auth/auth.h"
#include "chat/hub.h"
#include "chat/rooms.h"
#include "server/app.h"
#include "chat/people.h"
#include "server/metrics_listen.h"
#include "outbox/outbox.h"
#include "util/log.h"
#include "util/status.h"

extern char **environ;

/* The files chatd keeps in its data directory: all created 0600. */
static const char *const data_files[] = {"chatd.db", "chatd.db-wal", "chatd.db-shm", "jwt.keys",
                                         "chatd.lock"};

/* The data directory holds password hashes, messages and the signing keys: nobody but chatd's
 * user may read it. A directory chatd created is 0700; an existing one that others can enter
 * is set to 0700 when chatd's user owns it (logged), else a warning says so. Files from an
 * older chatd (or copied in) that others could read are set to 0600 (logged). */
static void protect_data_dir(const char *dir)
{
    char path[4096];
    struct stat st;

    if (stat(dir, &st) == 0 && (st.st_mode & 077)) {
        if (st.st_uid == geteuid() && chmod(dir, 0700) == 0)
            log_warn("data directory was open to other users: mode set to 0700",
                     "\"dir\":\"%s\",\"was\":\"%04o\"", dir, (unsigned)(st.st_mode & 07777));
        else
            log_warn("data directory is open to other users and its mode cannot be changed",
                     "\"dir\":\"%s\",\"mode\":\"%04o\"", dir, (unsigned)(st.st_mode & 07777));
    }
    for (size_t i = 0; i < sizeof(data_files) / sizeof(data_files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, data_files[i]);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 077)) continue;
        if (chmod(path, 0600) == 0)
            log_warn("data file was readable by other users: mode set to 0600",
                     "\"path\":\"%s\",\"was\":\"%04o\"", path, (unsigned)(st.st_mode & 07777));
        else
            log_warn("data file is readable by other users and its mode cannot be changed",
                     "\"path\":\"%s\",\"error\":\"%s\"", path, strerror(errno));
    }
}

/* One chatd per data directory: two would both append to the room logs, each with its own copy
 * of every room's last seq. The lock is held until the process exits (the kernel drops it even
 * after a crash). Returns the lock file's descriptor, or -1 (logged). */
static int lock_data_dir(const char *dir)
{
    char path[4096];
    int fd;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create data directory", "\"dir\":\"%s\",\"error\":\"%s\"", dir,
                  strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/chatd.lock", dir);
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        log_error("cannot open the data directory's lock file", "\"path\":\"%s\",\"error\":\"%s\"",
                  path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            log_error("data directory in use by another chatd", "\"dir\":\"%s\"", dir);
        else
            log_error("cannot lock the data directory", "\"dir\":\"%s\",\"error\":\"%s\"", dir,
                      strerror(errno));
        close(fd);
        return -1;
    }
    protect_data_dir(dir);
    return fd;
}

/* How long a token of a session ended at `at_s` can still verify. */
static int64_t token_end(const struct app *app, int64_t at_s)
{
    return at_s + app->cfg.access_ttl + app->cfg.token_leeway;
}

void app_session_end(struct app *app, int64_t user, int64_t sid)
{
    int64_t now = clock_unix_ms() / 1000;
    struct fan_ev ev = {.kind = FAN_SESSION_END, .user = user, .seq = sid};
    revoked_add(app->revoked, sid, now, token_end(app, now));
    fanout_add(&app->fanout, &ev);
}

/* Another node ended session sid (cluster): refuse its tokens here too. */
static void remote_session_end(void *ud, int64_t sid, int64_t at_ms)
{
    struct app *app = ud;
    revoked_add(app->revoked, sid, clock_unix_ms() / 1000, token_end(app, at_ms / 1000));
}

static void gpresence_offline(void *ud, int64_t user, int64_t last_seen, const int64_t *rooms,
                              uint32_t nrooms);

static void gpresence_collect(void *ud, void (*emit)(void *arg, int64_t user, uint32_t n),
                              void *arg)
{
    struct app *app = ud;
    presence_collect_sent(app->presence, emit, arg);
}

static void gpresence_online(void *ud, int64_t user, const int64_t *rooms, uint32_t nrooms)
{
    (void)ud;
    hub_publish_presence(user, "online", 0, rooms, nrooms);
}

static int gpresence_online_here(void *ud, int64_t user)
{
    struct app *app = ud;
    int64_t seen;
    return presence_get(app->presence, user, &seen);
}

static void gpresence_block(void *ud, int64_t user, int64_t until_ms)
{
    struct app *app = ud;
    presence_block_msg(app->presence, user, until_ms);
}

static void hub_interest(void *ud, int64_t room, int on)
{
    cluster_interest(ud, room, on);
}

/* With --nats-url: join the cluster (before the I/O threads start, so no interest is missed).
 * Returns CD_OK (also on a single node) or CD_E_IO. */
static int cluster_join(struct app *app, struct hub_env *env)
{
    struct cluster_cfg cc = {.fanout = &app->fanout,
                             .db = &app->db,
                             .reconcile_ms = (uint32_t)app->cfg.reconcile_ms,
                             .on_session_end = remote_session_end,
                             .ud = app};
    struct bus *bus;
    const char *node = app->node_id;

    if (!app->cfg.nats_url[0]) return CD_OK;
    if (app->db.ops == &store_sqlite_ops) { /* each node would have its own rooms and seqs */
        log_error("--nats-url needs a shared store", "\"expected\":\"--store-url postgres://...\"");
        return CD_E_INVALID_FIELD;
    }
    app->cluster = cluster_new(&cc);
    if (bus_nats_open(&bus, app->cfg.nats_url, node, cluster_bus_recv, app->cluster) != CD_OK ||
        cluster_start(app->cluster, bus) != CD_OK) {
        cluster_free(app->cluster);
        app->cluster = NULL;
        return CD_E_IO;
    }
    chat_member_cache_ttl(app->cfg.reconcile_ms); /* other nodes change memberships too */
    env->interest = hub_interest;
    env->interest_ud = app->cluster;
    log_info("cluster bus started", "\"bus\":\"nats\",\"node\":\"%s\"", node);
    if (app->cfg.redis_url[0]) {
        struct presence_redis_cfg pc = {.url = app->cfg.redis_url,
                                        .node = node,
                                        .ttl_ms = (uint32_t)app->cfg.presence_ttl_ms,
                                        .offline = gpresence_offline,
                                        .online = gpresence_online,
                                        .online_here = gpresence_online_here,
                                        .ud = app,
                                        .msg_rate =
                                            app->cfg.rate_limits ? (double)app->cfg.msg_rate : 0,
                                        .msg_burst = (double)app->cfg.msg_burst,
                                        .collect = gpresence_collect,
                                        .block = gpresence_block};
        if (presence_redis_open(&pc, &app->gpresence) != CD_OK) {
            log_error("invalid --redis-url", "\"expected\":\"redis://host:port[/db]\"");
            cluster_free(app->cluster);
            app->cluster = NULL;
            return CD_E_INVALID_FIELD;
        }
        env->gpresence = app->gpresence;
    }
    return CD_OK;
}

struct offline_rooms {
    int64_t *rooms;
    uint32_t n, cap, max_members;
};

static int offline_room(void *ud, const struct store_room *r, const struct store_member *m)
{
    struct offline_rooms *o = ud;
    (void)m;
    if (r->member_count > o->max_members) return 0;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->rooms = xrealloc(o->rooms, o->cap * sizeof(*o->rooms));
    }
    o->rooms[o->n++] = r->id;
    return 0;
}

/* A user is offline on every node (presence_redis thread). rooms NULL: the user's node died,
 * look its rooms up. */
static void gpresence_offline(void *ud, int64_t user, int64_t last_seen, const int64_t *rooms,
                              uint32_t nrooms)
{
    struct app *app = ud;
    struct offline_rooms o = {.max_members = (uint32_t)app->cfg.presence_max_room};
    struct store_conn *sc;

    if (rooms) {
        hub_publish_presence(user, "offline", last_seen, rooms, nrooms);
        return;
    }
    sc = store_reader(&app->db);
    if (sc && app->db.ops->rooms_of_user(sc, user, 0, -1, offline_room, &o) == CD_OK)
        hub_publish_presence(user, "offline", last_seen, o.rooms, o.n);
    free(o.rooms);
}

struct revoked_load {
    struct app *app;
    int64_t now;
};

static int revoked_row(void *ud, int64_t sid, int64_t revoked_at_ms)
{
    struct revoked_load *l = ud;
    revoked_add(l->app->revoked, sid, l->now, token_end(l->app, revoked_at_ms / 1000));
    return 0;
}

/* The sessions ended within the token lifetime before this start: their tokens stay refused. */
static int load_revoked(struct app *app)
{
    struct revoked_load l = {app, clock_unix_ms() / 1000};
    struct store_conn *rd = store_reader(&app->db);
    int64_t since_ms = (l.now - app->cfg.access_ttl - app->cfg.token_leeway) * 1000;
    if (!rd) return CD_E_IO;
    return app->db.ops->sessions_revoked_since(rd, since_ms, revoked_row, &l);
}

/* The presence filter's block set (chat/people.h), from storage. */
static int load_blocks(struct app *app)
{
    struct store_conn *rd = store_reader(&app->db);
    return rd ? people_blocks_load(app->db.ops, rd) : CD_E_IO;
}

/* Load the JWT keyring from --jwt-keys, else from DATA_DIR/jwt.keys, generating it (0600) on
 * first start so tokens survive restarts. */
static int load_keys(struct app *app)
{
    char path[4096], spec[512];
    FILE *f;

    if (app->cfg.jwt_keys[0]) {
        if (jwt_keyring_parse(&app->keys, app->cfg.jwt_keys) != CD_OK) {
            log_error("invalid --jwt-keys", "\"expected\":\"kid:64hex[,kid:64hex]\"");
            return CD_E_INVALID_FIELD;
        }
        return CD_OK;
    }
    snprintf(path, sizeof(path), "%s/jwt.keys", app->cfg.data_dir);
    f = fopen(path, "r");
    if (f) {
        size_t n = fread(spec, 1, sizeof(spec) - 1, f);
        fclose(f);
        spec[n] = '\0';
        while (n && (spec[n - 1] == '\n' || spec[n - 1] == ' '))
            spec[--n] = '\0';
    } else {
        uint8_t secret[JWT_SECRET_LEN];
        uint32_t kid = randombytes_random();
        char hex[2 * JWT_SECRET_LEN + 1];
        int fd;
        randombytes_buf(secret, sizeof(secret));
        sodium_bin2hex(hex, sizeof(hex), secret, sizeof(secret));
        snprintf(spec, sizeof(spec), "k%08x:%s", kid, hex);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, spec, strlen(spec)) < 0 || fsync(fd) < 0) {
            log_error("cannot write key file", "\"path\":\"%s\",\"error\":\"%s\"", path,
                      strerror(errno));
            if (fd >= 0) close(fd);
            return CD_E_IO;
        }
        close(fd);
        log_info("generated JWT signing key", "\"path\":\"%s\"", path);
    }
    if (jwt_keyring_parse(&app->keys, spec) != CD_OK) {
        log_error("invalid key file", "\"path\":\"%s\"", path);
        return CD_E_INVALID_FIELD;
    }
    return CD_OK;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    log_info("draining", "\"signal\":%d", signum);
    atomic_store(&app->ready, 0);
    net_drain(&app->net);
    uv_stop(s->loop); /* the other signal handle is still active: leave the main loop now */
}

/* Writer thread: the new-direct-chat quota of chat_dm_open (--max-new-dms per hour). */
/* Whether user has a connection on this node or, with --redis-url, on any node. */
static int user_online(void *ud, int64_t user, int *online)
{
    struct app *app = ud;
    int64_t last_seen;
    if (app->presence && presence_get(app->presence, user, &last_seen)) {
        *online = 1;
        return CD_OK;
    }
    if (app->gpresence) return presence_redis_online(app->gpresence, user, online);
    *online = 0;
    return CD_OK;
}

static int64_t dm_admit(void *ud, int64_t user)
{
    return presence_take_dm(ud, user, clock_unix_ms());
}

static int nthreads(const struct cfg *cfg)
{
    long n = cfg->threads > 0 ? (long)cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (!(cfg->roles_mask & ROLES_GATEWAY)) return 1; /* operational endpoints only */
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    return (int)n;
}

/* The store named by --store-url: empty = SQLite in --data-dir, postgres:// = PostgreSQL. NULL
 * (after a log line) for any other scheme. */
static const struct store_ops *store_pick(const char *url)
{
    if (!url || !*url) return &store_sqlite_ops;
    if (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13))
        return &store_pg_ops;
    log_error("invalid --store-url", "%s",
              "\"expected\":\"empty (SQLite) or postgres://user@host:port/db\"");
    return NULL;
}

static void node_id_init(struct app *app)
{
    char host[64] = "";
    if (app->cfg.node_id && app->cfg.node_id[0]) {
        snprintf(app->node_id, sizeof(app->node_id), "%s", app->cfg.node_id);
        return;
    }
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
        snprintf(host, sizeof(host), "node%08x", randombytes_random());
    snprintf(app->node_id, sizeof(app->node_id), "%s-%ld", host, (long)getpid());
}

/* Writer thread, after each group commit: publish the batch's events to the connections, and
 * wake the outbox consumers of this process (their events are committed). */
static void batch_done(void *ud)
{
    struct app *app = ud;
    fanout_flush(&app->fanout);
    outbox_notify(&app->db);
}

int app_run(struct cfg *cfg)
{
    const struct store_ops *store_ops;
    struct app *app = xcalloc(1, sizeof(*app));
    struct store_config sc;
    uv_loop_t *main_loop = uv_default_loop();
    uv_signal_t sig_term, sig_int;
    double auth_rate;
    int rc, lvl, lock_fd;

    app->cfg = *cfg;
    app->start_unix_s = (double)clock_unix_ms() / 1000.0;
    if (app->cfg.access_ttl < 1) app->cfg.access_ttl = 1; /* a token must live at least 1 s */
    if (app->cfg.token_leeway < 0) app->cfg.token_leeway = 0;
    if (app->cfg.token_leeway > 300) app->cfg.token_leeway = 300;
    lvl = log_level_parse(cfg->log_level);
    if (lvl < 0) {
        log_error("invalid --log-level", "\"value\":\"%s\"", cfg->log_level);
        free(app);
        return 2;
    }
    log_set_level((enum log_level)lvl);
    signal(SIGPIPE, SIG_IGN);
    /* Every file chatd creates is its data (database, WAL, keys, lock): private whatever the
     * umask it was started with (each is also created with an explicit 0600). */
    umask(077);
    /* Over a file size limit (ulimit -f) a write fails with EFBIG: a failed commit, reported and
     * survived like a full disk, instead of the default SIGXFSZ killing chatd mid-commit. */
    signal(SIGXFSZ, SIG_IGN);
    /* Buffers are allocated on one thread and freed on another all the time (frames, jobs):
     * keep freed memory in the heaps instead of trimming and regrowing them (mprotect storms). */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    raise_fd_limit();
    if (auth_init() != CD_OK) {
        free(app);
        return 1;
    }
    if (origin_policy_parse(&app->origins, cfg->allowed_origins) != CD_OK) {
        log_error("invalid --allowed-origins",
                  "\"expected\":\"scheme://host[:port][,scheme://host[:port]...] or *\"");
        free(app);
        return 2;
    }
    if (proxy_list_parse(&app->trusted, cfg->trusted_proxies) != CD_OK) {
        log_error("invalid --trusted-proxies",
                  "\"expected\":\"CIDRs (a.b.c.d/n, v6/n or an address), comma-separated, at most "
                  "64\"");
        origin_policy_free(&app->origins);
        free(app);
        return 2;
    }
    if (cfg->web && web_init(&app->web, cfg->web_dir) != CD_OK) {
        origin_policy_free(&app->origins);
        free(app);
        return 2;
    }
    node_id_init(app);
    {
        struct trace_config tc;
        const char *why = NULL;
        if (trace_config_env(&tc, environ, app->node_id, &why) != 0) {
            log_error("invalid tracing settings", "\"error\":\"%s\"", why);
            web_free(&app->web);
            origin_policy_free(&app->origins);
            free(app);
            return 2;
        }
        trace_init(&tc); /* off without an endpoint; a failure to start is logged, chatd runs */
    }
    if (!(store_ops = store_pick(cfg->store_url))) {
        web_free(&app->web);
        origin_policy_free(&app->origins);
        free(app);
        return 2;
    }
    if ((lock_fd = lock_data_dir(cfg->data_dir)) < 0) {
        web_free(&app->web);
        origin_policy_free(&app->origins);
        free(app);
        return 1;
    }
    memset(&sc, 0, sizeof(sc));
    sc.url = cfg->store_url;
    sc.dir = cfg->data_dir;
    sc.sync_mode = cfg->sqlite_sync;
    sc.commit_interval_us = cfg->commit_interval_us;
    sc.wal_restart_frames = cfg->wal_restart_frames;
    if (store_db_open(&app->db, store_ops, &sc) != CD_OK) {
        close(lock_fd);
        web_free(&app->web);
        origin_policy_free(&app->origins);
        free(app);
        return 1;
    }
    app->revoked = revoked_new();
    {
        struct blob_s3_creds creds = {cfg->blob_access_key, cfg->blob_secret_key};
        if (blob_open(cfg->blob_url, cfg->data_dir, &creds, &app->blobs) != CD_OK)
            app->blobs = NULL;
    }
    if (!app->blobs || load_keys(app) != CD_OK || load_revoked(app) != CD_OK ||
        load_blocks(app) != CD_OK) {
        if (app->blobs) app->blobs->ops->close(app->blobs);
        store_db_close(&app->db);
        revoked_free(app->revoked);
        close(lock_fd);
        web_free(&app->web);
        origin_policy_free(&app->origins);
        free(app);
        return 1;
    }
    auth_rate = (double)cfg->auth_rate;
    limiter_init(&app->auth_ip, auth_rate, auth_rate * 4, cfg->rate_limits);
    /* Logins (api_auth.c): strict per (username, IP), loose per username and only against
     * clients that have failed for it, so attackers cannot lock an account out. */
    limiter_init(&app->auth_pair, auth_rate / 10, auth_rate, cfg->rate_limits);
    limiter_init(&app->auth_user, auth_rate / 5, auth_rate * 4, cfg->rate_limits);
    limiter_init(&app->typing, (double)cfg->typing_rate, (double)cfg->typing_rate * 2,
                 cfg->rate_limits);
    limiter_init(&app->reads, (double)cfg->read_rate, (double)cfg->read_rate * 5, cfg->rate_limits);
    limiter_init(&app->room_ops, (double)cfg->room_rate, (double)cfg->room_rate * 10,
                 cfg->rate_limits);
    limiter_init(&app->server_keys, (double)cfg->server_rate, (double)cfg->server_rate * 2,
                 cfg->rate_limits);
    limiter_init(&app->user_search, (double)cfg->user_search_rate,
                 (double)cfg->user_search_rate * 4, cfg->rate_limits);
    limiter_init(&app->uploads, (double)cfg->upload_rate, (double)cfg->upload_rate * 10,
                 cfg->rate_limits);
    limiter_init(&app->searches, (double)cfg->search_rate, (double)cfg->search_rate * 4,
                 cfg->rate_limits);
    {
        struct tbucket_rule msg = {(double)cfg->msg_rate, (double)cfg->msg_burst};
        struct hub_env env = {
            .db = &app->db,
            .fanout = &app->fanout,
            .sync_page = 500,
            .sync_max = (uint32_t)(cfg->sync_max ? cfg->sync_max : 1),
            .pending_max = 4096,
            .presence_max_room = (uint32_t)cfg->presence_max_room,
            .max_inflight = (uint32_t)(cfg->ws_max_inflight < 2       ? 2
                                       : cfg->ws_max_inflight > 65535 ? 65535
                                                                      : cfg->ws_max_inflight),
            .max_inflight_total =
                (uint64_t)(cfg->ws_max_inflight_total < 1 ? 1 : cfg->ws_max_inflight_total),
            .typing_ttl_s = 5,
            .on_ready = api_ws_ready};
        struct tbucket_rule dms = {(double)cfg->max_new_dms / 3600.0, (double)cfg->max_new_dms};
        struct chat_quota quota = {.max_owned_rooms = cfg->max_owned_rooms,
                                   .max_room_members = cfg->max_room_members,
                                   .max_user_rooms = cfg->max_rooms_per_user,
                                   .dm_admit = dm_admit};
        app->presence =
            presence_new(&msg, &dms, cfg->rate_limits, (uint32_t)cfg->max_conns_per_user);
        quota.dm_ud = app->presence;
        chat_quota_set(&quota);
        env.presence = app->presence;
        fanout_init(&app->fanout, &app->net, hub_deliver);
        if (cluster_join(app, &env) != CD_OK) {
            store_db_close(&app->db);
            rc = CD_E_IO;
            goto done;
        }
        hub_env_set(&env);
        app->db.batch_done = batch_done;
        app->db.batch_ud = app;
        app->db.batch_failed = chat_member_cache_reset;
    }
    {
        struct roles_env renv = {.db = &app->db, .node_id = app->node_id, .settings = cfg};
        /* The notifier's "offline": this node's connections (gateway), Redis (every node). */
        if ((cfg->roles_mask & ROLES_GATEWAY) || app->gpresence) {
            renv.online = user_online;
            renv.online_ud = app;
        }
        char roles[96];
        roles_format(cfg->roles_mask, roles, sizeof(roles));
        log_info("roles", "\"roles\":\"%s\"", roles);
        if ((rc = roles_start(cfg->roles_mask, &renv, &app->roles)) != CD_OK) {
            cluster_quiesce(app->cluster);
            store_db_close(&app->db);
            goto done;
        }
    }

    app->net.app = app;
    app->net.trusted = &app->trusted;
    app->net.lim = (struct net_limits){
        .http_max_header = (uint32_t)cfg->http_max_header,
        .http_max_headers = (uint32_t)cfg->http_max_headers,
        .http_max_body = (uint32_t)cfg->http_max_body,
        .http_timeout = (uint32_t)cfg->http_timeout,
        .http_keepalive = (uint32_t)cfg->http_keepalive,
        .ws = {.max_frame = (uint64_t)cfg->ws_max_frame,
               .max_message = (uint64_t)cfg->ws_max_message},
        .ws_idle = (uint32_t)(cfg->ws_idle < 2 ? 2 : cfg->ws_idle),
        .ws_max_outq = (uint32_t)cfg->ws_max_outq,
        .max_conns = (uint32_t)cfg->max_conns,
        .drain_timeout = (uint32_t)cfg->drain_timeout,
    };
    app->net.h = (struct net_handlers){
        .on_request = app_on_request,
        .on_stream_begin = files_stream_begin,
        .on_stream_data = files_stream_data,
        .on_stream_abort = files_stream_abort,
        .on_ws_message = api_ws_message,
        .on_ws_close = api_ws_close,
        .on_ws_deadline = api_ws_deadline,
        .on_thread_start = hub_thread_start,
        .on_thread_stop = hub_thread_stop,
        .on_tick = hub_tick,
        .on_loop_end = hub_loop_end,
    };
    if (cfg->metrics_listen[0] && metrics_listen_start(app, cfg->metrics_listen, &app->mlisten)) {
        cluster_quiesce(app->cluster);
        store_db_close(&app->db);
        rc = CD_E_IO;
        goto done;
    }
    app->files = files_start(app);
    /* The search indexer is the indexer role's (both stores: a send never indexes its text). */
    app->indexer = (cfg->roles_mask & ROLES_INDEXER) ? search_indexer_start(app) : NULL;
    if ((rc = net_start(&app->net, cfg->listen, nthreads(cfg))) != CD_OK) {
        roles_stop(app->roles);
        app->roles = NULL;
        files_stop(app->files);
        app->files = NULL;
        search_indexer_stop(app->indexer);
        app->indexer = NULL;
        metrics_listen_stop(app->mlisten);
        app->mlisten = NULL;
        cluster_quiesce(app->cluster);
        store_db_close(&app->db);
        goto done;
    }
    atomic_store(&app->ready, 1);
    log_info("chatd started",
             "\"version\":\"%s\",\"listen\":\"%s\",\"threads\":%d,"
             "\"data_dir\":\"%s\",\"store\":\"%s\",\"node_id\":\"%s\",\"web_files\":%zu",
             CHATD_VERSION, cfg->listen, app->net.nio, cfg->data_dir, app->db.ops->name,
             app->node_id, app->web.n);

    uv_signal_init(main_loop, &sig_term);
    uv_signal_init(main_loop, &sig_int);
    sig_term.data = sig_int.data = app;
    uv_signal_start_oneshot(&sig_term, on_signal, SIGTERM);
    uv_signal_start_oneshot(&sig_int, on_signal, SIGINT);
    uv_run(main_loop, UV_RUN_DEFAULT); /* returns when a signal stopped it */
    if (!uv_is_closing((uv_handle_t *)&sig_term)) uv_close((uv_handle_t *)&sig_term, NULL);
    if (!uv_is_closing((uv_handle_t *)&sig_int)) uv_close((uv_handle_t *)&sig_int, NULL);
    uv_run(main_loop, UV_RUN_DEFAULT);

    net_join(&app->net);
    /* The role workers' consumers save their positions; the notifier asks presence: before
     * Redis presence closes. */
    roles_stop(app->roles);
    app->roles = NULL;
    metrics_listen_stop(app->mlisten);
    app->mlisten = NULL;
    presence_redis_close(app->gpresence); /* after every connection's close was reported */
    app->gpresence = NULL;
    cluster_quiesce(app->cluster); /* no more storage reads from the cluster's thread */
    files_stop(app->files);        /* its job waits for the writer: before the store closes */
    app->files = NULL;
    search_indexer_stop(app->indexer); /* the same */
    app->indexer = NULL;
    store_db_close(&app->db); /* finishes queued writes; their replies run in net_free */
    cluster_free(app->cluster);
    app->cluster = NULL;
    net_free(&app->net);
    log_info("chatd stopped", "\"exit\":%d", 0);
done:
    limiter_free(&app->auth_ip);
    limiter_free(&app->auth_pair);
    limiter_free(&app->auth_user);
    limiter_free(&app->typing);
    limiter_free(&app->reads);
    limiter_free(&app->room_ops);
    limiter_free(&app->server_keys);
    limiter_free(&app->user_search);
    limiter_free(&app->uploads);
    limiter_free(&app->searches);
    if (app->blobs) app->blobs->ops->close(app->blobs);
    presence_free(app->presence);
    revoked_free(app->revoked);
    presence_redis_close(app->gpresence);
    cluster_free(app->cluster);
    uv_loop_close(main_loop);
    close(lock_fd); /* after the store's last write */
    web_free(&app->web);
    origin_policy_free(&app->origins);
    free(app);
    trace_shutdown(); /* the last spans leave (every thread that made spans has stopped) */
    return rc == CD_OK ? 0 : 1;
}
