/* routes.c - the route table: every HTTP endpoint with its checks in one place, plus the shared
 * response and async-call helpers, and the operational endpoints (healthz, readyz, metrics). */
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/apikey.h"
#include "util/clock.h"
#include "chat/hub.h"
#include "roles/roles_webhook.h"
#include "server/app.h"
#include "util/log.h"
#include "util/status.h"

enum route_flags {
    ROUTE_F_AUTH = 1 << 0,   /* needs "Authorization: Bearer <access token>" */
    ROUTE_F_JSON = 1 << 1,   /* needs a JSON object body */
    ROUTE_F_ORIGIN = 1 << 2, /* browsers only from this origin or --allowed-origins (else 403) */
    /* needs "Authorization: Bearer ck_..." (an API key, checked by the handler's call, see
     * api_server.c); a user's access token is refused here, and a key is refused as a user */
    ROUTE_F_SERVER = 1 << 3,
    ROUTE_F_OPS = 1 << 4, /* served by every process, gateway role or not */
};

struct route {
    int method;
    const char *pattern; /* exact path; a trailing "{id}" matches one non-empty segment */
    int id;
    unsigned flags;
    void (*handler)(struct api_req *r);
};

static void api_healthz(struct api_req *r);
static void api_readyz(struct api_req *r);
static void api_metrics(struct api_req *r);

static const struct route routes[] = {
    {HTTP_GET, "/healthz", ROUTE_HEALTHZ, ROUTE_F_OPS, api_healthz},
    {HTTP_GET, "/readyz", ROUTE_READYZ, ROUTE_F_OPS, api_readyz},
    {HTTP_GET, "/metrics", ROUTE_METRICS, ROUTE_F_OPS, api_metrics},
    {HTTP_POST, "/v1/auth/register", ROUTE_REGISTER, ROUTE_F_JSON, api_register},
    {HTTP_POST, "/v1/auth/login", ROUTE_LOGIN, ROUTE_F_JSON, api_login},
    {HTTP_POST, "/v1/auth/refresh", ROUTE_REFRESH, ROUTE_F_JSON, api_refresh},
    {HTTP_POST, "/v1/auth/logout", ROUTE_LOGOUT, ROUTE_F_JSON, api_logout},
    {HTTP_GET, "/v1/me", ROUTE_ME, ROUTE_F_AUTH, api_me},
    {HTTP_PATCH, "/v1/me", ROUTE_ME_PATCH, ROUTE_F_AUTH | ROUTE_F_JSON, api_me_patch},
    {HTTP_DELETE, "/v1/me", ROUTE_ME_DELETE, ROUTE_F_AUTH | ROUTE_F_JSON, api_me_delete},
    {HTTP_POST, "/v1/me/password", ROUTE_ME_PASSWORD, ROUTE_F_AUTH | ROUTE_F_JSON, api_me_password},
    {HTTP_GET, "/v1/me/sessions", ROUTE_SESSIONS_LIST, ROUTE_F_AUTH, api_sessions_list},
    {HTTP_DELETE, "/v1/me/sessions/{id}", ROUTE_SESSION_END, ROUTE_F_AUTH, api_session_end},
    {HTTP_GET, "/v1/me/contacts", ROUTE_CONTACTS_LIST, ROUTE_F_AUTH, api_contacts_list},
    {HTTP_POST, "/v1/me/contacts", ROUTE_CONTACT_ADD, ROUTE_F_AUTH | ROUTE_F_JSON, api_contact_add},
    {HTTP_DELETE, "/v1/me/contacts/{id}", ROUTE_CONTACT_REMOVE, ROUTE_F_AUTH, api_contact_remove},
    {HTTP_GET, "/v1/me/blocks", ROUTE_BLOCKS_LIST, ROUTE_F_AUTH, api_blocks_list},
    {HTTP_POST, "/v1/me/blocks", ROUTE_BLOCK_ADD, ROUTE_F_AUTH | ROUTE_F_JSON, api_block_add},
    {HTTP_DELETE, "/v1/me/blocks/{id}", ROUTE_BLOCK_REMOVE, ROUTE_F_AUTH, api_block_remove},
    {HTTP_GET, "/v1/users", ROUTE_USER_FIND, ROUTE_F_AUTH, api_user_find},
    {HTTP_GET, "/v1/users/{id}", ROUTE_USER, ROUTE_F_AUTH, api_user},
    {HTTP_GET, "/v1/ws", ROUTE_WS, ROUTE_F_ORIGIN, api_ws_upgrade},
    {HTTP_POST, "/v1/rooms", ROUTE_ROOMS_CREATE, ROUTE_F_AUTH | ROUTE_F_JSON, api_rooms_create},
    {HTTP_GET, "/v1/rooms", ROUTE_ROOMS_LIST, ROUTE_F_AUTH, api_rooms_list},
    {HTTP_GET, "/v1/rooms/public", ROUTE_ROOMS_PUBLIC, ROUTE_F_AUTH, api_rooms_public},
    {HTTP_GET, "/v1/rooms/{id}", ROUTE_ROOM_GET, ROUTE_F_AUTH, api_room_get},
    {HTTP_DELETE, "/v1/rooms/{id}", ROUTE_ROOM_DELETE, ROUTE_F_AUTH, api_room_delete},
    {HTTP_POST, "/v1/rooms/{id}/join", ROUTE_ROOM_JOIN, ROUTE_F_AUTH, api_room_join},
    {HTTP_POST, "/v1/rooms/{id}/leave", ROUTE_ROOM_LEAVE, ROUTE_F_AUTH, api_room_leave},
    {HTTP_GET, "/v1/rooms/{id}/members", ROUTE_MEMBERS_LIST, ROUTE_F_AUTH, api_members_list},
    {HTTP_POST, "/v1/rooms/{id}/invites", ROUTE_INVITE_CREATE, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_invite_create},
    {HTTP_POST, "/v1/invites/{id}/accept", ROUTE_INVITE_ACCEPT, ROUTE_F_AUTH, api_invite_accept},
    {HTTP_PATCH, "/v1/rooms/{id}", ROUTE_ROOM_PATCH, ROUTE_F_AUTH | ROUTE_F_JSON, api_room_patch},
    {HTTP_POST, "/v1/rooms/{id}/members", ROUTE_MEMBER_ADD, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_member_add},
    {HTTP_DELETE, "/v1/rooms/{id}/members/{id}", ROUTE_MEMBER_REMOVE, ROUTE_F_AUTH,
     api_member_remove},
    {HTTP_POST, "/v1/dms", ROUTE_DMS, ROUTE_F_AUTH | ROUTE_F_JSON, api_dms},
    {HTTP_GET, "/v1/rooms/{id}/messages", ROUTE_HISTORY, ROUTE_F_AUTH, api_history},
    {HTTP_POST, "/v1/rooms/{id}/messages", ROUTE_MESSAGE_POST, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_message_post},
    {HTTP_PATCH, "/v1/rooms/{id}/settings", ROUTE_ROOM_SETTINGS, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_room_settings},
    {HTTP_GET, "/v1/server/events", ROUTE_SERVER_EVENTS, ROUTE_F_SERVER, api_server_events},
    {HTTP_POST, "/v1/server/users", ROUTE_SERVER_USERS, ROUTE_F_SERVER | ROUTE_F_JSON,
     api_server_user_put},
    {HTTP_POST, "/v1/server/users/{id}/tokens", ROUTE_SERVER_TOKENS, ROUTE_F_SERVER,
     api_server_tokens},
    {HTTP_PATCH, "/v1/server/users/{id}", ROUTE_SERVER_USER_PATCH, ROUTE_F_SERVER | ROUTE_F_JSON,
     api_server_user_patch},
    {HTTP_POST, "/v1/server/rooms", ROUTE_SERVER_ROOMS, ROUTE_F_SERVER | ROUTE_F_JSON,
     api_server_rooms_create},
    {HTTP_POST, "/v1/server/rooms/{id}/members", ROUTE_SERVER_MEMBER_ADD,
     ROUTE_F_SERVER | ROUTE_F_JSON, api_server_member_add},
    {HTTP_DELETE, "/v1/server/rooms/{id}/members/{id}", ROUTE_SERVER_MEMBER_REMOVE, ROUTE_F_SERVER,
     api_server_member_remove},
    {HTTP_POST, "/v1/server/rooms/{id}/messages", ROUTE_SERVER_MESSAGE,
     ROUTE_F_SERVER | ROUTE_F_JSON, api_server_message},
    {HTTP_GET, "/v1/server/webhooks", ROUTE_WEBHOOKS_LIST, ROUTE_F_SERVER, api_webhooks_list},
    {HTTP_POST, "/v1/server/webhooks", ROUTE_WEBHOOKS_CREATE, ROUTE_F_SERVER | ROUTE_F_JSON,
     api_webhooks_create},
    {HTTP_GET, "/v1/server/webhooks/dead", ROUTE_WEBHOOKS_DEAD, ROUTE_F_SERVER, api_webhooks_dead},
    {HTTP_DELETE, "/v1/server/webhooks/{id}", ROUTE_WEBHOOKS_DELETE, ROUTE_F_SERVER,
     api_webhooks_delete},
    {HTTP_POST, "/v1/server/webhooks/dead/{id}/replay", ROUTE_WEBHOOKS_REPLAY, ROUTE_F_SERVER,
     api_webhooks_replay},
    {HTTP_DELETE, "/v1/server/webhooks/dead/{id}", ROUTE_WEBHOOKS_DEAD_DELETE, ROUTE_F_SERVER,
     api_webhooks_dead_delete},
    {HTTP_PATCH, "/v1/rooms/{id}/messages/{id}", ROUTE_MESSAGE_EDIT, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_message_edit},
    {HTTP_DELETE, "/v1/rooms/{id}/messages/{id}", ROUTE_MESSAGE_DELETE, ROUTE_F_AUTH,
     api_message_delete},
    {HTTP_POST, "/v1/rooms/{id}/messages/{id}/reactions", ROUTE_MESSAGE_REACT,
     ROUTE_F_AUTH | ROUTE_F_JSON, api_message_react},
    {HTTP_GET, "/v1/rooms/{id}/threads/{id}/messages", ROUTE_THREAD_MESSAGES, ROUTE_F_AUTH,
     api_history},
    {HTTP_GET, "/v1/rooms/{id}/receipts", ROUTE_RECEIPTS, ROUTE_F_AUTH, api_receipts},
    {HTTP_POST, "/v1/rooms/{id}/delivered", ROUTE_DELIVERED, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_delivered},
    {HTTP_POST, "/v1/me/delivered", ROUTE_DELIVERED_BATCH, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_delivered},
    {HTTP_GET, "/v1/me/settings", ROUTE_SETTINGS_GET, ROUTE_F_AUTH, api_settings_get},
    {HTTP_PATCH, "/v1/me/settings", ROUTE_SETTINGS_PATCH, ROUTE_F_AUTH | ROUTE_F_JSON,
     api_settings_patch},
    /* The body is streamed (files_stream_begin checks the token, type and size first). */
    {HTTP_POST, "/v1/uploads", ROUTE_UPLOAD, 0, api_upload},
    {HTTP_GET, "/v1/attachments/{id}", ROUTE_ATTACHMENT, ROUTE_F_AUTH, api_attachment_get},
    {HTTP_GET, "/v1/search", ROUTE_SEARCH, ROUTE_F_AUTH, api_search},
};

static const char *const route_names[] = {
#define ROUTE_NAME(name, label) label,
    ROUTE_MAP(ROUTE_NAME)
#undef ROUTE_NAME
};
/* every route has its metrics row (metrics.h) */
_Static_assert(ROUTE__COUNT <= METRICS_MAX_ROUTES, "raise METRICS_MAX_ROUTES");

/* ---- ids and time ---- */

int id_format(char *out, size_t cap, char kind, int64_t n)
{
    return snprintf(out, cap, "%c_%" PRId64, kind, n);
}

int id_parse(struct slice s, char kind, int64_t *n)
{
    int64_t v = 0;
    if (s.len < 3 || s.len > 21 || s.p[0] != kind || s.p[1] != '_') return 0;
    for (size_t i = 2; i < s.len; i++) {
        int d = s.p[i] - '0';
        if (d < 0 || d > 9) return 0;
        if (v > (INT64_MAX - d) / 10) return 0; /* exact: every id id_format writes parses */
        v = v * 10 + d;
    }
    if (v <= 0) return 0;
    *n = v;
    return 1;
}

/* ---- responses ---- */

void api_send_json(struct app *app, struct conn *c, int route, uint64_t start_ms, int http_status,
                   json_t *obj, const char *extra_headers)
{
    char *text = NULL;
    size_t len = 0;

    if (obj) {
        text = json_dumps(obj, JSON_COMPACT);
        len = text ? strlen(text) : 0;
        json_decref(obj);
    }
    metrics_http(&app->metrics, route, http_status, (net_now_ms() - start_ms) * 1000);
    http_respond(c, http_status, "application/json", text, len, extra_headers);
    free(text);
}

void api_send_error(struct app *app, struct conn *c, int route, uint64_t start_ms, int status,
                    const char *message, const char *extra_headers)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", cd_status_code(status), "message",
                          message ? message : cd_status_message(status));
    api_send_json(app, c, route, start_ms, cd_status_http(status), o, extra_headers);
}

void api_respond_json(struct api_req *r, int http_status, json_t *obj)
{
    api_send_json(r->app, r->c, r->route, r->http->start_ms, http_status, obj, NULL);
}

/* Token failures are counted where they are detected (api_verify_token, a missing token), not
 * here: counting here too made one rejected request count twice. */
void api_respond_error(struct api_req *r, int status, const char *message)
{
    api_send_error(r->app, r->c, r->route, r->http->start_ms, status, message,
                   status == CD_E_UNAUTHORIZED || status == CD_E_TOKEN_EXPIRED
                       ? "WWW-Authenticate: Bearer\r\n"
                       : NULL);
}

static void send_retry(struct app *app, struct conn *c, int route, uint64_t start_ms,
                       int64_t retry_ms)
{
    char hdr[64], msg[96];
    int64_t secs = (retry_ms + 999) / 1000;
    atomic_fetch_add(&app->metrics.rate_limited, 1);
    snprintf(hdr, sizeof(hdr), "Retry-After: %" PRId64 "\r\n", secs < 1 ? 1 : secs);
    snprintf(msg, sizeof(msg), "too many requests; retry after %" PRId64 " ms", retry_ms);
    api_send_error(app, c, route, start_ms, CD_E_RATE_LIMITED, msg, hdr);
}

void api_respond_retry(struct api_req *r, int64_t retry_ms)
{
    send_retry(r->app, r->c, r->route, r->http->start_ms, retry_ms);
}

/* ---- async calls ---- */

struct api_call *api_call_new(struct api_req *r, size_t size)
{
    struct api_call *call = xcalloc(1, size);
    call->app = r->app;
    call->c = r->c;
    call->route = r->route;
    call->start_ms = r->http->start_ms;
    if (r->http->request_id)
        snprintf(call->request_id, sizeof(call->request_id), "%s", r->http->request_id);
    if (r->http->span) {
        call->trace = *trace_span_ctx(r->http->span);
        snprintf(call->trace_id, sizeof(call->trace_id), "%s", r->http->trace_id);
        call->job.trace = &call->trace;
    }
    call->http_status = 200;
    conn_hold(r->c);
    return call;
}

void api_call_finish(struct api_call *call)
{
    struct conn *c = call->c;
    const char *prev_rid = log_request_id_set(call->request_id);
    const char *prev_tid = log_trace_id_set(call->trace_id[0] ? call->trace_id : NULL);
    if (conn_alive(c)) {
        if (call->status == CD_OK && call->raw) {
            metrics_http(&call->app->metrics, call->route, call->http_status,
                         (net_now_ms() - call->start_ms) * 1000);
            http_respond(c, call->http_status, "application/json", call->raw, call->raw_len, NULL);
        } else if (call->status == CD_OK) {
            api_send_json(call->app, c, call->route, call->start_ms, call->http_status,
                          call->result, NULL);
            call->result = NULL; /* stolen */
        } else if (call->status == CD_E_RATE_LIMITED && call->retry_ms > 0) {
            send_retry(call->app, c, call->route, call->start_ms, call->retry_ms);
        } else {
            api_send_error(
                call->app, c, call->route, call->start_ms, call->status, call->error_message,
                call->status == CD_E_UNAUTHORIZED ? "WWW-Authenticate: Bearer\r\n" : NULL);
        }
    }
    /* Not sent: the connection is gone, or the job built its result and then the commit (or a
     * later step) failed. */
    json_decref(call->result);
    free(call->raw);
    if (call->cleanup) call->cleanup(call);
    conn_release(c);
    log_trace_id_set(prev_tid);
    log_request_id_set(prev_rid);
    free(call);
}

void api_call_free(struct api_call *call)
{
    json_decref(call->result);
    free(call->raw);
    if (call->cleanup) call->cleanup(call);
    conn_release(call->c);
    free(call);
}

static void call_work(uv_work_t *w)
{
    struct api_call *call = w->data;
    const char *prev = log_request_id_set(call->request_id);
    const char *prev_tid = log_trace_id_set(call->trace_id[0] ? call->trace_id : NULL);
    call->work_fn(call);
    log_trace_id_set(prev_tid);
    log_request_id_set(prev);
}

/* after_fn may free the call (api_call_finish): the id is copied first. */
static void call_after_work(uv_work_t *w, int status)
{
    struct api_call *call = w->data;
    char rid[sizeof(call->request_id)], tid[sizeof(call->trace_id)];
    const char *prev, *prev_tid;
    (void)status;
    memcpy(rid, call->request_id, sizeof(rid));
    memcpy(tid, call->trace_id, sizeof(tid));
    prev = log_request_id_set(rid);
    prev_tid = log_trace_id_set(tid[0] ? tid : NULL);
    call->after_fn(call);
    log_trace_id_set(prev_tid);
    log_request_id_set(prev);
}

void api_call_work(struct api_call *call)
{
    call->work.data = call;
    uv_queue_work(&call->c->io->loop, &call->work, call_work, call_after_work);
}

static void call_task_run(struct net_io *io, struct net_task *t)
{
    struct api_call *call = (struct api_call *)((char *)t - offsetof(struct api_call, task));
    (void)io;
    api_call_finish(call);
}

static void call_job_done(struct store_job *j)
{
    struct api_call *call = (struct api_call *)((char *)j - offsetof(struct api_call, job));
    if (j->status != CD_OK) call->status = j->status;
    if (call->committed) call->committed(call);
    call->task.run = call_task_run;
    net_post(call->c->io, &call->task);
}

void api_call_write(struct api_call *call)
{
    call->job.done = call_job_done;
    store_submit(&call->app->db, &call->job);
}

/* ---- auth ---- */

int api_verify_claims(struct app *app, const char *tok, size_t len, struct jwt_claims *out)
{
    int64_t now = clock_unix_ms() / 1000;
    int rc = jwt_verify(&app->keys, tok, len, now, app->cfg.token_leeway, out);
    if (rc == CD_OK && out->sid && revoked_has(app->revoked, out->sid, now)) rc = CD_E_UNAUTHORIZED;
    if (rc != CD_OK) metrics_auth_failure(&app->metrics, AUTH_FAIL_TOKEN);
    return rc;
}

int api_verify_token(struct app *app, const char *tok, size_t len, int64_t *user_id, int64_t *sid)
{
    struct jwt_claims cl;
    int rc = api_verify_claims(app, tok, len, &cl);
    if (rc != CD_OK) return rc;
    *user_id = cl.sub;
    if (sid) *sid = cl.sid;
    return CD_OK;
}

/* ---- operational endpoints ---- */

static void api_healthz(struct api_req *r)
{
    api_respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

/* Ready: started, not draining, and storage takes writes (store_health: the last write batch
 * did not fail, no commit is stuck). The reason is the error message. */
static void api_readyz(struct api_req *r)
{
    const char *why = NULL;
    if (!atomic_load(&r->app->ready) || atomic_load(&r->app->net.draining)) {
        api_respond_error(r, CD_E_UNAVAILABLE, "not ready");
        return;
    }
    if (store_health(&r->app->db, &why) != CD_OK) {
        api_respond_error(r, CD_E_UNAVAILABLE, why);
        return;
    }
    api_respond_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

/* ---- webhook deliveries and notifications (roles_webhook.h's roles_stat): one block ---- */
static void render_deliveries(char **buf, size_t *len, size_t *cap)
{
    static const struct {
        const char *name, *type, *help;
        enum roles_stat stat;
    } series[] = {
        {"chatd_webhook_attempts_total", "counter",
         "Webhook delivery attempts (POSTs) made by this process's engine.", ROLES_WH_ATTEMPTS},
        {"chatd_webhook_deliveries_succeeded_total", "counter",
         "Webhook attempts answered 2xx (delivered).", ROLES_WH_SUCCEEDED},
        {"chatd_webhook_deliveries_failed_total", "counter",
         "Webhook attempts that failed (error, timeout or non-2xx; retried or dead).",
         ROLES_WH_FAILED},
        {"chatd_webhook_dead_letters_total", "counter",
         "Webhook deliveries that became dead letters.", ROLES_WH_DEAD},
        {"chatd_webhook_deliveries_pruned_total", "counter",
         "Delivered rows deleted after --webhook-retention.", ROLES_WH_PRUNED},
        {"chatd_webhook_pending_rows", "gauge",
         "Pending webhook deliveries in storage (every node's), at the engine's last count.",
         ROLES_WH_PENDING_ROWS},
        {"chatd_webhook_dead_rows", "gauge",
         "Dead letters in storage (until replayed or deleted), at the engine's last count.",
         ROLES_WH_DEAD_ROWS},
        {"chatd_webhook_delivered_rows", "gauge",
         "Delivered rows in storage not yet pruned, at the engine's last count.",
         ROLES_WH_DONE_ROWS},
        {"chatd_notifications_total", "counter",
         "Offline notifications produced by this process's notifier.", ROLES_NOTE_PRODUCED},
        {"chatd_notifications_coalesced_total", "counter",
         "Offline notifications not produced: inside the (user, room) window.",
         ROLES_NOTE_COALESCED},
        {"chatd_notifications_muted_total", "counter",
         "Offline notifications not produced: the member muted the room.", ROLES_NOTE_MUTED},
    };
    int counted = roles_stat_get(ROLES_WH_COUNTED) != 0;
    for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
        /* the gauges only once the engine counted (a process without the notifier role has
         * no engine: no gauge rather than a false 0) */
        if (!strcmp(series[i].type, "gauge") && !counted) continue;
        metrics_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", series[i].name,
                       series[i].help, series[i].name, series[i].type, series[i].name,
                       (unsigned long long)roles_stat_get(series[i].stat));
    }
}

void app_metrics_render(struct app *app, char **bufp, size_t *lenp, size_t *capp)
{
    struct net_server *s = &app->net;
    struct net_stats sum;
    struct store_stats ss;
    struct hub_stats hs;
    struct trace_stats ts;
    char *buf = *bufp;
    size_t len = *lenp, cap = *capp;
    const char *why;

    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < s->nio; i++) {
#define SUM(f) sum.f += atomic_load_explicit(&s->io[i].stats.f, memory_order_relaxed)
        SUM(conns_open);
        SUM(conns_total);
        SUM(ws_open);
        SUM(frames_in);
        SUM(frames_out);
        SUM(bytes_in);
        SUM(bytes_out);
        SUM(slow_closed);
        SUM(refused);
#undef SUM
    }
    store_db_stats(&app->db, &ss);
    hub_stats(s, &hs);
    trace_stats(&ts);
#define GAUGE(name, help, v)                                                                       \
    metrics_printf(&buf, &len, &cap,                                                               \
                   "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %llu\n",             \
                   (unsigned long long)(v))
#define COUNTER(name, help, v)                                                                     \
    metrics_printf(&buf, &len, &cap,                                                               \
                   "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",           \
                   (unsigned long long)(v))
    GAUGE("chatd_connections_open", "Open TCP connections (HTTP and WebSocket).", sum.conns_open);
    GAUGE("chatd_websockets_open", "Open WebSocket connections.", sum.ws_open);
    COUNTER("chatd_connections_total", "Accepted connections.", sum.conns_total);
    COUNTER("chatd_connections_refused_total", "Connections refused over --max-conns.",
            sum.refused);
    COUNTER("chatd_ws_frames_in_total", "WebSocket frames received.", sum.frames_in);
    COUNTER("chatd_ws_frames_out_total", "WebSocket messages queued for sending.", sum.frames_out);
    COUNTER("chatd_bytes_in_total", "Bytes received.", sum.bytes_in);
    COUNTER("chatd_bytes_out_total", "Bytes sent.", sum.bytes_out);
    COUNTER("chatd_ws_slow_consumer_closed_total", "Connections closed over --ws-max-outq.",
            sum.slow_closed);
    COUNTER("chatd_store_commits_total", "Storage transactions (group commits).", ss.commits);
    COUNTER("chatd_store_jobs_total", "Write jobs committed or failed.", ss.jobs);
    COUNTER("chatd_store_failed_commits_total", "Failed group commits.", ss.failed_commits);
    GAUGE("chatd_store_failing",
          "1 while the last write batch failed and no commit succeeded since (/readyz 503).",
          ss.failing);
    GAUGE("chatd_store_queued_jobs", "Write jobs submitted to the writer and not yet done.",
          ss.queued);
    COUNTER("chatd_messages_stored_total",
            "Messages committed to storage (a resent client_msg_id is not counted again).",
            atomic_load(&app->metrics.messages_stored));
    COUNTER("chatd_deliveries_total",
            "Frames (events, acks, replies) queued to WebSocket connections by the hub.",
            hs.deliveries);
    COUNTER("chatd_sync_requests_total", "WebSocket sync requests (replays of missed entries).",
            hs.sync_requests);
    COUNTER("chatd_sync_replayed_entries_total",
            "Room log entries read from storage for replays and gap fills.", hs.replayed_entries);
    GAUGE("chatd_online_users", "Users with at least one WebSocket on this node.",
          presence_online_users(app->presence));
    GAUGE("chatd_ready", "1 while /readyz answers 200.",
          atomic_load(&app->ready) && !atomic_load(&app->net.draining) &&
              store_health(&app->db, &why) == CD_OK);
    COUNTER("chatd_trace_spans_exported_total", "Spans the OTLP endpoint accepted.", ts.exported);
    COUNTER("chatd_trace_spans_dropped_total",
            "Sampled spans dropped because the export queue was full.", ts.dropped);
    COUNTER("chatd_trace_spans_failed_total", "Spans in export requests that failed.",
            ts.export_failed);
#undef GAUGE
#undef COUNTER
    metrics_printf(&buf, &len, &cap,
                   "# HELP chatd_component_up 1 when a component this node depends on works: "
                   "store (takes writes), bus (connected to NATS), presence (connected to Redis)."
                   "\n# TYPE chatd_component_up gauge\n"
                   "chatd_component_up{component=\"store\"} %d\n",
                   store_health(&app->db, &why) == CD_OK);
    if (app->cluster) {
        struct cluster_stats cs;
        cluster_stats(app->cluster, &cs);
        metrics_printf(&buf, &len, &cap, "chatd_component_up{component=\"bus\"} %d\n",
                       cs.connected);
    }
    if (app->gpresence)
        metrics_printf(&buf, &len, &cap, "chatd_component_up{component=\"presence\"} %d\n",
                       presence_redis_connected(app->gpresence));
    metrics_printf(&buf, &len, &cap,
                   "# HELP chatd_build_info chatd's version and storage backend.\n"
                   "# TYPE chatd_build_info gauge\n"
                   "chatd_build_info{version=\"%s\",store=\"%s\"} 1\n",
                   CHATD_VERSION, app->db.ops->name);
    metrics_render_hist(&buf, &len, &cap, "chatd_store_commit_duration_seconds",
                        "Time of each group commit's transaction, retries included.", "",
                        ss.commit_latency);
    metrics_render_hist(&buf, &len, &cap, "chatd_fanout_duration_seconds",
                        "From a batch's publish to the end of its delivery on one I/O thread.", "",
                        &app->fanout.latency);
    render_deliveries(&buf, &len, &cap);
    metrics_render_process(&buf, &len, &cap, app->start_unix_s);
    metrics_render_outbox(&buf, &len, &cap);
    metrics_render_http(&app->metrics, route_names, ROUTE__COUNT, &buf, &len, &cap);
    *bufp = buf;
    *lenp = len;
    *capp = cap;
}

static void api_metrics(struct api_req *r)
{
    size_t len = 0, cap = 8192;
    char *buf;

    if (r->app->cfg.metrics_listen[0]) { /* served on the internal listener only */
        api_respond_error(r, CD_E_NOT_FOUND, NULL);
        return;
    }
    buf = xmalloc(cap);
    app_metrics_render(r->app, &buf, &len, &cap);
    metrics_http(&r->app->metrics, r->route, 200, (net_now_ms() - r->http->start_ms) * 1000);
    http_respond(r->c, 200, "text/plain; version=0.0.4", buf, len, NULL);
    free(buf);
}

/* ---- dispatch ---- */

/* Segment-wise match; each "{id}" segment matches one non-empty segment and is captured. */
static int route_match(const struct route *rt, struct slice path, struct slice *p1,
                       struct slice *p2)
{
    const char *pat = rt->pattern, *p = path.p, *end = path.p + path.len;
    int nparam = 0;

    while (*pat) {
        if (!strncmp(pat, "{id}", 4)) {
            const char *seg = p;
            while (p < end && *p != '/')
                p++;
            if (p == seg) return 0;
            if (nparam++ == 0)
                *p1 = (struct slice){seg, (size_t)(p - seg)};
            else
                *p2 = (struct slice){seg, (size_t)(p - seg)};
            pat += 4;
            continue;
        }
        if (p >= end || *p != *pat) return 0;
        p++;
        pat++;
    }
    return p == end;
}

/* CORS headers for a listed cross-origin caller, on whatever response this request gets. The
 * origin is echoed only after origin_check validated its characters (no CR/LF can pass). */
static void cors_headers(struct app *app, struct conn *c, enum origin_verdict ov,
                         struct slice origin)
{
    char h[ORIGIN_MAX_LEN + 160];
    if (ov == ORIGIN_NONE || (!app->origins.n && !app->origins.any)) return;
    if (ov != ORIGIN_ALLOWED) {
        http_add_response_headers(c, "Vary: Origin\r\n");
        return;
    }
    snprintf(h, sizeof(h),
             "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n"
             "Access-Control-Expose-Headers: Retry-After, WWW-Authenticate\r\n",
             (int)origin.len, origin.p);
    http_add_response_headers(c, h);
}

/* OPTIONS on an API path: a CORS preflight (or a plain question about the methods). */
static void api_preflight(struct api_req *r, enum origin_verdict ov)
{
    r->route = ROUTE_PREFLIGHT;
    if (ov == ORIGIN_FORBIDDEN) {
        api_respond_error(r, CD_E_FORBIDDEN, "origin not allowed (--allowed-origins)");
        return;
    }
    api_send_json(r->app, r->c, r->route, r->http->start_ms, 204, NULL,
                  "Allow: GET, POST, PATCH, DELETE, OPTIONS\r\n"
                  "Access-Control-Allow-Methods: GET, POST, PATCH, DELETE\r\n"
                  "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
                  "Access-Control-Max-Age: 600\r\n");
}

/* GET/HEAD of a file of the web client; other methods get 405. */
static void web_request(struct api_req *r, const struct web_file *f)
{
    int status;
    r->route = ROUTE_WEB;
    if (r->http->method != HTTP_GET && r->http->method != HTTP_HEAD) {
        api_send_error(r->app, r->c, r->route, r->http->start_ms, CD_E_METHOD_NOT_ALLOWED, NULL,
                       "Allow: GET, HEAD\r\n");
        return;
    }
    status = web_respond(r->c, r->http, f);
    metrics_http(&r->app->metrics, r->route, status, (net_now_ms() - r->http->start_ms) * 1000);
}

int route_lookup(int method, struct slice path, struct slice *p1, struct slice *p2)
{
    int path_known = 0;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        struct slice a = {0}, b = {0};
        if (!route_match(&routes[i], path, &a, &b)) continue;
        path_known = 1;
        if (routes[i].method == method) {
            *p1 = a;
            *p2 = b;
            return (int)i;
        }
    }
    return path_known ? ROUTE_LOOKUP_METHOD : ROUTE_LOOKUP_NONE;
}

void app_on_request(struct conn *c, struct http_request *req)
{
    struct app *app = c->io->srv->app;
    struct api_req r = {.app = app, .c = c, .http = req, .route = ROUTE_UNMATCHED};
    const struct route *rt = NULL;
    struct slice origin = {0};
    enum origin_verdict ov = origin_check(&app->origins, req, &origin);
    int i;

    if (req->upgrade) c->flags |= CONN_F_NO_KEEPALIVE; /* bytes after it are not HTTP */
    cors_headers(app, c, ov, origin);
    i = route_lookup(req->method, req->path, &r.param, &r.param2);
    if (i >= 0) rt = &routes[i];
    if (!(app->cfg.roles_mask & ROLES_GATEWAY) && !(rt && (rt->flags & ROUTE_F_OPS))) {
        /* a process without the gateway role serves its operational endpoints only */
        api_respond_error(&r, CD_E_NOT_FOUND, "this process does not serve it (--roles)");
        return;
    }
    if (!rt) {
        int path_known = i == ROUTE_LOOKUP_METHOD;
        const struct web_file *f = path_known ? NULL : web_find(&app->web, req->path);
        if (f)
            web_request(&r, f);
        else if (path_known && req->method == HTTP_OPTIONS)
            api_preflight(&r, ov);
        else
            api_respond_error(&r, path_known ? CD_E_METHOD_NOT_ALLOWED : CD_E_NOT_FOUND, NULL);
        return;
    }
    rt = &routes[i];
    r.route = rt->id;
    if (req->span) http_trace_route(c, rt->pattern);
    if ((rt->flags & ROUTE_F_ORIGIN) && ov == ORIGIN_FORBIDDEN) {
        api_respond_error(&r, CD_E_FORBIDDEN, "origin not allowed (--allowed-origins)");
        return;
    }
    if (rt->flags & ROUTE_F_AUTH) {
        struct slice tok;
        int rc;
        if ((rc = http_bearer_token(req, &tok)) != 1) {
            metrics_auth_failure(&app->metrics, AUTH_FAIL_TOKEN);
            api_respond_error(&r, CD_E_UNAUTHORIZED,
                              rc ? "malformed Authorization header (expected Bearer <token>)"
                                 : "missing bearer token");
            return;
        }
        if ((rc = api_verify_token(app, tok.p, tok.len, &r.user_id, &r.sid)) != CD_OK) {
            api_respond_error(&r, rc, NULL);
            return;
        }
    }
    if (rt->flags & ROUTE_F_SERVER) {
        struct slice tok;
        if (http_bearer_token(req, &tok) != 1 || !apikey_shape_ok(tok.p, tok.len)) {
            metrics_auth_failure(&app->metrics, AUTH_FAIL_TOKEN);
            log_warn("server api key refused", "\"route\":\"%s\",\"why\":\"%s\"",
                     route_names[rt->id], "no API key");
            api_respond_error(&r, CD_E_UNAUTHORIZED,
                              "an API key is required (Authorization: Bearer ck_...)");
            return;
        }
        apikey_hash(tok.p, tok.len, r.key_hash);
    }
    if (rt->flags & ROUTE_F_JSON) {
        struct slice ct;
        json_error_t err;
        if (!http_header(req, "content-type", &ct) || ct.len < 16 ||
            !slice_case_eq((struct slice){ct.p, 16}, "application/json")) {
            api_respond_error(&r, CD_E_UNSUPPORTED_MEDIA, NULL);
            return;
        }
        r.body = json_loadb(req->body.p, req->body.len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(r.body)) {
            json_decref(r.body);
            api_respond_error(&r, CD_E_INVALID_JSON, NULL);
            return;
        }
    }
    rt->handler(&r);
    json_decref(r.body);
}
