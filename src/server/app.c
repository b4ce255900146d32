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

#include "auth/auth.h"
#include "chat/hub.h"
#include "chat/rooms.h"
#include "server/app.h"
#include "util/log.h"
#include "util/status.h"

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
    return fd;
}

/* How long a token of a session ended at `at_s` can still verify. */
static int64_t token_end(const struct app *app, int64_t at_s)
{
    return at_s + app->cfg.access_ttl + API_TOKEN_LEEWAY_S;
}

void app_session_end(struct app *app, int64_t user, int64_t sid)
{
    int64_t now = now_unix_ms() / 1000;
    struct fan_ev ev = {.kind = FAN_SESSION_END, .user = user, .seq = sid};
    revoked_add(app->revoked, sid, now, token_end(app, now));
    fanout_add(&app->fanout, &ev);
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
    struct revoked_load l = {app, now_unix_ms() / 1000};
    struct store_conn *rd = store_reader(&app->db);
    int64_t since_ms = (l.now - app->cfg.access_ttl - API_TOKEN_LEEWAY_S) * 1000;
    if (!rd) return CD_E_IO;
    return app->db.ops->sessions_revoked_since(rd, since_ms, revoked_row, &l);
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

static int nthreads(const struct cfg *cfg)
{
    long n = cfg->threads > 0 ? (long)cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    return (int)n;
}

int app_run(struct cfg *cfg)
{
    struct app *app = xcalloc(1, sizeof(*app));
    struct store_config sc;
    uv_loop_t *main_loop = uv_default_loop();
    uv_signal_t sig_term, sig_int;
    double auth_rate;
    int rc, lvl, lock_fd;

    app->cfg = *cfg;
    if (app->cfg.access_ttl < 1) app->cfg.access_ttl = 1; /* a token must live at least 1 s */
    lvl = log_level_parse(cfg->log_level);
    if (lvl < 0) {
        log_error("invalid --log-level", "\"value\":\"%s\"", cfg->log_level);
        free(app);
        return 2;
    }
    log_set_level((enum log_level)lvl);
    signal(SIGPIPE, SIG_IGN);
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
    if (cfg->web && web_init(&app->web, cfg->web_dir) != CD_OK) {
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
    sc.dir = cfg->data_dir;
    sc.sync_mode = cfg->sqlite_sync;
    sc.commit_interval_us = cfg->commit_interval_us;
    sc.wal_restart_frames = cfg->wal_restart_frames;
    if (store_db_open(&app->db, &store_sqlite_ops, &sc) != CD_OK) {
        close(lock_fd);
        web_free(&app->web);
        origin_policy_free(&app->origins);
        free(app);
        return 1;
    }
    app->revoked = revoked_new();
    if (load_keys(app) != CD_OK || load_revoked(app) != CD_OK) {
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
    limiter_init(&app->auth_user, auth_rate, auth_rate * 2, cfg->rate_limits);
    limiter_init(&app->typing, (double)cfg->typing_rate, (double)cfg->typing_rate * 2,
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
        app->presence = presence_new(&msg, cfg->rate_limits, (uint32_t)cfg->max_conns_per_user);
        env.presence = app->presence;
        hub_env_set(&env);
        bus_local_init(&app->bus, &app->net, hub_deliver);
        app->fanout.bus = &app->bus;
        app->db.batch_done = fanout_flush;
        app->db.batch_ud = &app->fanout;
        app->db.batch_failed = chat_member_cache_reset;
    }

    app->net.app = app;
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
        .on_ws_message = api_ws_message,
        .on_ws_close = api_ws_close,
        .on_thread_start = hub_thread_start,
        .on_thread_stop = hub_thread_stop,
        .on_tick = hub_tick,
        .on_loop_end = hub_loop_end,
    };
    if ((rc = net_start(&app->net, cfg->listen, nthreads(cfg))) != CD_OK) {
        store_db_close(&app->db);
        goto done;
    }
    atomic_store(&app->ready, 1);
    log_info("chatd started",
             "\"version\":\"%s\",\"listen\":\"%s\",\"threads\":%d,"
             "\"data_dir\":\"%s\",\"store\":\"%s\",\"web_files\":%zu",
             CHATD_VERSION, cfg->listen, app->net.nio, cfg->data_dir, app->db.ops->name,
             app->web.n);

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
    store_db_close(&app->db); /* finishes queued writes; their replies run in net_free */
    net_free(&app->net);
    log_info("chatd stopped", "%s", "\"exit\":0");
done:
    limiter_free(&app->auth_ip);
    limiter_free(&app->auth_user);
    limiter_free(&app->typing);
    presence_free(app->presence);
    revoked_free(app->revoked);
    bus_local_free(&app->bus);
    uv_loop_close(main_loop);
    close(lock_fd); /* after the store's last write */
    web_free(&app->web);
    origin_policy_free(&app->origins);
    free(app);
    return rc == CD_OK ? 0 : 1;
}
