/* api_server.c - the server API for app backends (/v1/server/...), authenticated by API keys
 * (auth/apikey.h) instead of user tokens.
 *
 * Every call runs its key check on the thread pool (a primary-key read of the key's hash with
 * the worker's read connection; no key cache, so a revocation holds from the next request on,
 * on every node), then its per-key rate limit (--server-rate), then its own reads there, and its
 * writes as one writer job; the answer goes out on the connection's I/O thread. Each call is
 * logged once, with the key's id and name (never the key), the route and the outcome.
 *
 * The rules are chat's (chat/rooms.h): a message goes through chat_send like a WebSocket or REST
 * send; the system (CHAT_SYSTEM) is the actor of member changes and the sender of messages
 * without a "sender". */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/session.h"
#include "chat/events.h"
#include "chat/people.h"
#include "chat/rooms.h"
#include "outbox/outbox.h"
#include "server/app.h"
#include "util/clock.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/status.h"

#define EVENTS_DEFAULT 100
#define EVENTS_MAX     1000
#define EVENTS_TICK_MS 50   /* a parked long-poll looks for a local commit this often */
#define EVENTS_POLL_MS 1000 /* ... and reads storage (other nodes' commits) this often */

struct srv_call {
    struct api_call base; /* first */
    const char *label;    /* route, for the audit line */
    uint8_t key_hash[32];
    struct store_apikey key; /* after the check */
    int key_ok;
    void (*read)(struct srv_call *sc); /* worker: the route's reads, after the key check */
    int64_t user, room, target, sender;
    int role;
    char username[AUTH_USERNAME_MAX + 1];
    char name[STORE_ROOM_NAME_MAX + 1], topic[STORE_ROOM_TOPIC_MAX + 1];
    int64_t *members;
    size_t nmembers;
    char *body;
    size_t body_len;
    char cmid[CHAT_CMID_MAX + 1];
    size_t cmid_len;
    struct chat_out out;
    struct chat_sent sent;
    struct store_room r;
    /* PATCH /v1/server/users/{id} */
    struct api_profile prof;
    int disable;    /* 1 disable, 0 enable, -1 unchanged */
    int64_t *ended; /* sessions the job revoked (malloc'ed), ended after the commit */
    size_t nended;
    /* GET /v1/server/events */
    int64_t after, next;
    int limit, nevents;
    int64_t deadline_ms, last_read_ms;
    uint64_t gen; /* outbox_generation() at the last read */
    struct jsonw w;
    uv_timer_t timer;
    int timer_on; /* initialized: closed before the call is freed */
};

#define SRV_CALL(j) ((struct srv_call *)((char *)(j)-offsetof(struct api_call, job)))

static void srv_cleanup(struct api_call *call)
{
    struct srv_call *s = (struct srv_call *)call;
    api_server_audit(call, s->key_ok, &s->key, s->label);
    chat_out_discard(&s->out);
    free(s->ended);
    free(s->members);
    free(s->body);
    jsonw_free(&s->w);
}

static void srv_publish(struct api_call *call)
{
    struct srv_call *s = (struct srv_call *)call;
    if (call->status != CD_OK) {
        chat_out_discard(&s->out);
        return;
    }
    chat_out_commit(&s->out, &call->app->fanout);
    /* A disabled user's sessions: tokens refused, WebSockets closed, on every node. */
    for (size_t i = 0; i < s->nended; i++)
        app_session_end(call->app, s->user, s->ended[i]);
}

static struct srv_call *srv_new(struct api_req *r, const char *label)
{
    struct srv_call *s = (struct srv_call *)api_call_new(r, sizeof(struct srv_call));
    s->label = label;
    memcpy(s->key_hash, r->key_hash, sizeof(s->key_hash));
    s->base.cleanup = srv_cleanup;
    s->base.committed = srv_publish;
    jsonw_init(&s->w, 64);
    return s;
}

/* A job's own error travels in call->status; a failed exec rolls its savepoint back. */
static int job_status(struct srv_call *s, int status)
{
    if (status != CD_OK) {
        chat_out_discard(&s->out);
        s->base.status = status;
    }
    return status;
}

int api_server_key_check(struct api_call *call, const uint8_t hash[32], struct store_apikey *key)
{
    struct store_conn *sc = store_reader(&call->app->db);
    char k[24];
    int n, rc = sc ? call->app->db.ops->apikey_by_hash(sc, hash, key) : CD_E_IO;

    if (rc == CD_E_NOT_FOUND || (rc == CD_OK && key->revoked_at)) {
        metrics_auth_failure(&call->app->metrics, AUTH_FAIL_TOKEN);
        call->status = CD_E_UNAUTHORIZED;
        return 0;
    }
    if (rc != CD_OK) {
        call->status = rc;
        return 0;
    }
    n = snprintf(k, sizeof(k), "%" PRId64, key->id);
    call->retry_ms = limiter_take(&call->app->server_keys, k, (size_t)n, clock_unix_ms());
    if (call->retry_ms) call->status = CD_E_RATE_LIMITED;
    return 1;
}

void api_server_audit(const struct api_call *call, int key_ok, const struct store_apikey *key,
                      const char *label)
{
    if (key_ok)
        log_info("server api",
                 "\"key\":\"k_%" PRId64 "\",\"key_name\":\"%s\",\"route\":\"%s\","
                 "\"status\":\"%s\"",
                 key->id, key->name, label, cd_status_code(call->status));
    else
        log_warn("server api key refused", "\"route\":\"%s\",\"status\":\"%s\"", label,
                 cd_status_code(call->status));
}

/* Worker thread: the key, its rate, then the route's reads. */
static void srv_work(struct api_call *call)
{
    struct srv_call *s = (struct srv_call *)call;
    if (!s->key_ok) {
        s->key_ok = api_server_key_check(call, s->key_hash, &s->key);
        if (call->status != CD_OK) return;
    }
    if (s->read) s->read(s);
}

static void events_park(struct srv_call *s);

static void timer_closed(uv_handle_t *h)
{
    api_call_finish(h->data);
}

/* I/O thread: answer and free the call (after closing its timer, if it has one). */
static void srv_finish(struct srv_call *s)
{
    if (!s->timer_on) {
        api_call_finish(&s->base);
        return;
    }
    s->timer.data = &s->base;
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

/* I/O thread: answer, or go on with the writer job, or wait for events. */
static void srv_after(struct api_call *call)
{
    struct srv_call *s = (struct srv_call *)call;
    if (call->status != CD_OK || !conn_alive(call->c)) {
        srv_finish(s);
        return;
    }
    if (call->job.exec) {
        api_call_write(call);
        return;
    }
    if (s->nevents == 0 && s->deadline_ms && clock_unix_ms() < s->deadline_ms) {
        events_park(s);
        return;
    }
    srv_finish(s);
}

static void srv_go(struct srv_call *s)
{
    s->base.work_fn = srv_work;
    s->base.after_fn = srv_after;
    api_call_work(&s->base);
}

static int body_id(struct api_req *r, const char *key, char kind, int64_t *out, int required)
{
    json_t *v = json_object_get(r->body, key);
    char msg[96];
    if (!v && !required) return 1;
    if (json_is_string(v) &&
        id_parse((struct slice){json_string_value(v), json_string_length(v)}, kind, out))
        return 1;
    snprintf(msg, sizeof(msg), "%s must be %s id string (%c_N)", key,
             kind == 'u' ? "a user" : "a room", kind);
    api_respond_error(r, CD_E_INVALID_FIELD, msg);
    return 0;
}

/* ---- GET /v1/server/events?after=&limit=&wait= ---- */

static int event_row(void *ud, const struct store_outbox_event *ev)
{
    struct srv_call *s = ud;
    if (s->nevents++) jsonw_lit(&s->w, ",");
    outbox_event_json(&s->w, ev);
    s->next = ev->pos;
    return 0;
}

static void events_read(struct srv_call *s)
{
    struct app *app = s->base.app;
    struct store_conn *sc = store_reader(&app->db);
    int rc;

    s->gen = outbox_generation(); /* before the read: a commit after it is seen next time */
    s->last_read_ms = clock_unix_ms();
    s->nevents = 0;
    s->next = s->after;
    s->w.len = JSONW_HEADROOM;
    jsonw_lit(&s->w, "{\"events\":[");
    rc = sc ? app->db.ops->outbox_page(sc, s->after, s->limit, event_row, s) : CD_E_IO;
    if (rc != CD_OK) {
        s->base.status = rc;
        return;
    }
    jsonw_lit(&s->w, "],\"next\":");
    jsonw_int(&s->w, s->next);
    jsonw_lit(&s->w, "}");
    free(s->base.raw);
    s->base.raw = xstrndup(jsonw_text(&s->w), jsonw_text_len(&s->w));
    s->base.raw_len = jsonw_text_len(&s->w);
}

/* I/O thread, every EVENTS_TICK_MS while parked: read again after a local commit, every
 * EVENTS_POLL_MS anyway (other nodes' commits), and answer (empty) at the deadline or when the
 * client went away. */
static void events_tick(uv_timer_t *t)
{
    struct srv_call *s = t->data;
    int64_t now = clock_unix_ms();
    int done = !conn_alive(s->base.c) || now >= s->deadline_ms ||
               atomic_load(&s->base.app->net.draining); /* a drain answers at once */
    if (!done && outbox_generation() == s->gen && now - s->last_read_ms < EVENTS_POLL_MS) return;
    uv_timer_stop(t);
    if (done)
        srv_finish(s);
    else
        srv_go(s);
}

static void events_park(struct srv_call *s)
{
    if (!s->timer_on) {
        uv_timer_init(&s->base.c->io->loop, &s->timer);
        s->timer_on = 1;
    }
    s->timer.data = s;
    uv_timer_start(&s->timer, events_tick, EVENTS_TICK_MS, EVENTS_TICK_MS);
}

void api_server_events(struct api_req *r)
{
    int64_t after = 0, limit = EVENTS_DEFAULT, wait = 0;
    int has_after, has_limit, has_wait;
    struct srv_call *s;

    if (!api_query_int(r, "after", &after, &has_after) ||
        !api_query_int(r, "limit", &limit, &has_limit) ||
        !api_query_int(r, "wait", &wait, &has_wait))
        return;
    if (has_limit && (limit < 1 || limit > EVENTS_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "limit must be 1-1000");
        return;
    }
    if (wait > r->app->cfg.events_wait_max) wait = r->app->cfg.events_wait_max;
    s = srv_new(r, "server_events");
    s->after = after;
    s->limit = (int)limit;
    if (wait > 0) s->deadline_ms = clock_unix_ms() + wait * 1000;
    s->read = events_read;
    srv_go(s);
}

/* ---- POST /v1/server/users {username}: create, or find, a user without a password ---- */

static json_t *user_json(int64_t id, const char *username, int64_t created_at)
{
    char uid[32];
    id_format(uid, sizeof(uid), 'u', id);
    return json_pack("{s:s,s:s,s:I}", "id", uid, "username", username, "created_at",
                     (json_int_t)created_at);
}

static int user_put_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    struct store_user u;
    int64_t now = clock_unix_ms(), id = 0;
    int rc = ops->user_by_name(sc, s->username, &u);

    if (rc == CD_OK) { /* exists: the same answer every time (idempotent) */
        s->base.result =
            json_pack("{s:o,s:b}", "user", user_json(u.id, u.username, u.created_at), "created", 0);
        return CD_OK;
    }
    if (rc != CD_E_NOT_FOUND) return job_status(s, rc);
    /* An empty password hash: password login never matches (api_auth.c). */
    if ((rc = people_user_create(ops, sc, s->username, "", now, &id)) != CD_OK)
        return job_status(s, rc);
    s->base.http_status = 201;
    s->base.result = json_pack("{s:o,s:b}", "user", user_json(id, s->username, now), "created", 1);
    return CD_OK;
}

void api_server_user_put(struct api_req *r)
{
    json_t *v = json_object_get(r->body, "username");
    struct srv_call *s;
    if (!json_is_string(v) || !auth_username_valid(json_string_value(v), json_string_length(v))) {
        api_respond_error(r, CD_E_INVALID_USERNAME, NULL);
        return;
    }
    s = srv_new(r, "server_users");
    memcpy(s->username, json_string_value(v), json_string_length(v) + 1);
    s->base.job.exec = user_put_exec;
    srv_go(s);
}

/* ---- PATCH /v1/server/users/{id} {display_name?, avatar?, status_text?, disabled?} ---- */

static int user_patch_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    struct store_profile p;
    struct store_user u;
    json_t *o;
    int rc = ops->profile_get(sc, s->user, &p);

    if (rc == CD_OK && p.deleted_at) rc = CD_E_NOT_FOUND;
    if (rc == CD_OK && (s->prof.has_display_name || s->prof.has_avatar || s->prof.has_status_text))
        rc = api_profile_set(ops, sc, s->user, &s->prof, &p, &s->base.error_message);
    if (rc == CD_OK && s->disable >= 0)
        rc = people_user_set_enabled(ops, sc, s->user, !s->disable, clock_unix_ms(), &s->ended,
                                     &s->nended);
    if (rc == CD_OK) rc = ops->user_get(sc, s->user, &u);
    if (rc != CD_OK) return job_status(s, rc);
    o = api_user_json(&p);
    json_object_set_new(o, "disabled", json_boolean(people_user_disabled(&u)));
    s->base.result = json_pack("{s:o,s:I}", "user", o, "sessions_ended", (json_int_t)s->nended);
    return CD_OK;
}

void api_server_user_patch(struct api_req *r)
{
    json_t *dis = json_object_get(r->body, "disabled");
    struct api_profile prof;
    struct srv_call *s;
    int64_t user;

    if (!id_parse(r->param, 'u', &user)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such user");
        return;
    }
    if (!api_profile_fields(r, &prof)) return; /* the rules of PATCH /v1/me */
    if (dis && !json_is_boolean(dis)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "disabled must be true or false");
        return;
    }
    if (!prof.has_display_name && !prof.has_avatar && !prof.has_status_text && !dis) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "display_name, avatar, status_text or disabled is required");
        return;
    }
    s = srv_new(r, "server_user_patch");
    s->user = user;
    s->prof = prof;
    s->disable = dis ? json_is_true(dis) : -1;
    s->base.job.exec = user_patch_exec;
    srv_go(s);
}

/* ---- POST /v1/server/users/{id}/tokens: a session for a user, as a login gives ---- */

static int tokens_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    struct app *app = s->base.app;
    struct store_user u;
    char refresh[AUTH_REFRESH_LEN + 1];
    int64_t sid = 0;
    int rc = ops->user_get(sc, s->user, &u);

    if (rc != CD_OK) return job_status(s, rc);
    if (people_user_disabled(&u)) return job_status(s, CD_E_FORBIDDEN);
    rc = session_start(ops, sc, u.id, clock_unix_ms(), app->cfg.refresh_ttl * 1000, refresh, &sid);
    if (rc != CD_OK) return job_status(s, rc);
    s->base.result = api_token_json(app, u.id, u.username, sid, refresh);
    if (!s->base.result) return job_status(s, CD_E_INTERNAL);
    s->base.http_status = 201;
    return CD_OK;
}

void api_server_tokens(struct api_req *r)
{
    struct srv_call *s;
    int64_t user;
    if (!id_parse(r->param, 'u', &user)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such user");
        return;
    }
    s = srv_new(r, "server_tokens");
    s->user = user;
    s->base.job.exec = tokens_exec;
    srv_go(s);
}

/* ---- POST /v1/server/rooms {name, topic?, owner, members?} ---- */

static int room_create_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    int rc = chat_room_create(ops, sc, s->user, s->name, s->topic, s->members, s->nmembers,
                              clock_unix_ms(), &s->out, &s->r);
    if (rc != CD_OK) return job_status(s, rc);
    s->base.http_status = 201;
    s->base.result = json_pack("{s:o}", "room", api_room_json(&s->r));
    return CD_OK;
}

void api_server_rooms_create(struct api_req *r)
{
    json_t *name = json_object_get(r->body, "name"), *topic = json_object_get(r->body, "topic"),
           *members = json_object_get(r->body, "members"), *v;
    struct srv_call *s;
    int64_t owner, *ids;
    size_t i;

    if (!json_is_string(name) || json_string_length(name) < 1 ||
        json_string_length(name) > STORE_ROOM_NAME_MAX) {
        api_respond_error(r, CD_E_INVALID_FIELD, "name (string, 1-100 bytes) is required");
        return;
    }
    if (topic && (!json_is_string(topic) || json_string_length(topic) > STORE_ROOM_TOPIC_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "topic must be a string of 0-500 bytes");
        return;
    }
    if (!body_id(r, "owner", 'u', &owner, 1)) return;
    if (members &&
        (!json_is_array(members) || json_array_size(members) > CHAT_MAX_INITIAL_MEMBERS)) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "members must be an array of at most 1000 user ids");
        return;
    }
    ids = xcalloc(json_array_size(members) + 1, sizeof(int64_t));
    json_array_foreach(members, i, v)
    {
        if (!json_is_string(v) ||
            !id_parse((struct slice){json_string_value(v), json_string_length(v)}, 'u', &ids[i])) {
            free(ids);
            api_respond_error(r, CD_E_INVALID_FIELD, "members must be user id strings");
            return;
        }
    }
    s = srv_new(r, "server_rooms");
    s->user = owner;
    memcpy(s->name, json_string_value(name), json_string_length(name) + 1);
    if (topic) memcpy(s->topic, json_string_value(topic), json_string_length(topic) + 1);
    s->members = ids;
    s->nmembers = json_array_size(members);
    s->base.job.exec = room_create_exec;
    srv_go(s);
}

/* ---- members: POST /v1/server/rooms/{id}/members, DELETE .../members/{id} ---- */

static int member_add_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    return job_status(s, chat_member_add(ops, sc, s->room, CHAT_SYSTEM, s->target, s->role,
                                         clock_unix_ms(), &s->out));
}

void api_server_member_add(struct api_req *r)
{
    json_t *role = json_object_get(r->body, "role");
    struct srv_call *s;
    int64_t room, user;
    int rl = ROLE_MEMBER;

    if (!id_parse(r->param, 'r', &room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return;
    }
    if (!body_id(r, "user_id", 'u', &user, 1)) return;
    if (role && (!json_is_string(role) || !events_role_parse(json_string_value(role), &rl) ||
                 rl == ROLE_OWNER)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "role must be \"member\" or \"admin\"");
        return;
    }
    s = srv_new(r, "server_member_add");
    s->room = room;
    s->target = user;
    s->role = rl;
    s->base.http_status = 204;
    s->base.job.exec = member_add_exec;
    s->base.job.room_id = room;
    srv_go(s);
}

static int member_remove_exec(const struct store_ops *ops, struct store_conn *sc,
                              struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    return job_status(
        s, chat_member_remove(ops, sc, s->room, CHAT_SYSTEM, s->target, clock_unix_ms(), &s->out));
}

void api_server_member_remove(struct api_req *r)
{
    struct srv_call *s;
    int64_t room, user;
    if (!id_parse(r->param, 'r', &room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return;
    }
    if (!id_parse(r->param2, 'u', &user)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such user");
        return;
    }
    s = srv_new(r, "server_member_remove");
    s->room = room;
    s->target = user;
    s->base.http_status = 204;
    s->base.job.exec = member_remove_exec;
    s->base.job.room_id = room;
    srv_go(s);
}

/* ---- POST /v1/server/rooms/{id}/messages {body, client_msg_id, sender?} ---- */

static int message_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct srv_call *s = SRV_CALL(j);
    int64_t room;
    int rc = api_send_exec(ops, sc, s->room, s->sender, s->body, s->body_len, s->cmid, s->cmid_len,
                           0, 0, NULL, &s->out, &s->sent, &room);
    if (rc != CD_OK) return job_status(s, rc);
    s->base.result = api_ack_json(room, &s->sent, s->cmid, &s->base.http_status);
    return CD_OK;
}

void api_server_message(struct api_req *r)
{
    json_t *body, *cmid;
    struct srv_call *s;
    int64_t room, sender = CHAT_SYSTEM;

    if (!id_parse(r->param, 'r', &room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return;
    }
    if (!api_message_fields(r, &body, &cmid)) return;
    if (!body_id(r, "sender", 'u', &sender, 0)) return;
    s = srv_new(r, "server_message");
    s->room = room;
    s->sender = sender;
    s->body_len = json_string_length(body);
    s->body = xstrndup(json_string_value(body), s->body_len);
    s->cmid_len = json_string_length(cmid);
    memcpy(s->cmid, json_string_value(cmid), s->cmid_len + 1);
    s->base.job.exec = message_exec;
    s->base.job.room_id = room;
    srv_go(s);
}
