/* api_webhooks.c - per-user room settings (PATCH /v1/rooms/{id}/settings) and the server API of
 * the webhook engine (roles/roles_webhook.h): endpoints (GET|POST /v1/server/webhooks, DELETE
 * /v1/server/webhooks/{id}) and the dead-letter list (GET /v1/server/webhooks/dead, POST
 * /v1/server/webhooks/dead/{id}/replay, DELETE /v1/server/webhooks/dead/{id}). Server routes
 * check their API key and its rate first and are audited (api_server_key_check), as every
 * /v1/server route. Reads on the thread pool, changes as writer jobs. */
#include <stdlib.h>
#include <string.h>

#include "roles/roles_webhook.h"
#include "server/app.h"
#include "util/clock.h"
#include "util/status.h"

#define DEAD_PAGE_DEFAULT 100
#define DEAD_PAGE_MAX     500

struct wh_call {
    struct api_call base; /* first */
    int64_t user, room, id, after;
    int muted, limit;
    struct store_webhook w;
    json_t *arr;
    int64_t last_id;
    int rows;
    /* server routes (/v1/server/webhooks...): the API key, checked before anything else */
    const char *label; /* route, for the audit line; NULL on user routes */
    uint8_t key_hash[32];
    struct store_apikey key;
    int key_ok;
    void (*read)(struct api_call *call); /* worker: the route's reads, after the key check */
    int (*del)(struct store_conn *c, int64_t id); /* DELETE routes: the store op */
};

#define WH_CALL(j) ((struct wh_call *)((char *)(j)-offsetof(struct api_call, job)))

static void wh_cleanup(struct api_call *call)
{
    struct wh_call *wc = (struct wh_call *)call;
    if (wc->label) api_server_audit(call, wc->key_ok, &wc->key, wc->label);
    json_decref(wc->arr);
}

static struct wh_call *wh_call_new(struct api_req *r)
{
    struct wh_call *wc = (struct wh_call *)api_call_new(r, sizeof(struct wh_call));
    wc->user = r->user_id;
    wc->base.cleanup = wh_cleanup;
    return wc;
}

/* Worker thread: the API key and its rate (as every server route), then the reads. */
static void wh_key_work(struct api_call *call)
{
    struct wh_call *wc = (struct wh_call *)call;
    wc->key_ok = api_server_key_check(call, wc->key_hash, &wc->key);
    if (call->status == CD_OK && wc->read) wc->read(call);
}

/* I/O thread: the writer job (if any) once the key is good, else the answer. */
static void wh_key_after(struct api_call *call)
{
    if (call->status == CD_OK && call->job.exec && conn_alive(call->c)) {
        api_call_write(call);
        return;
    }
    api_call_finish(call);
}

/* Run a server route's call: key check and reads on the pool, then its job.exec, if set. */
static void wh_server_go(struct wh_call *wc, struct api_req *r, const char *label,
                         void (*read)(struct api_call *call))
{
    wc->label = label;
    memcpy(wc->key_hash, r->key_hash, sizeof(wc->key_hash));
    wc->read = read;
    wc->base.work_fn = wh_key_work;
    wc->base.after_fn = wh_key_after;
    api_call_work(&wc->base);
}

/* ---- PATCH /v1/rooms/{id}/settings ---- */

static int settings_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct wh_call *wc = WH_CALL(j);
    struct store_member m;
    int st = ops->member_get(sc, wc->room, wc->user, &m);
    if (st == CD_E_NOT_FOUND) st = CD_E_NOT_MEMBER;
    if (st == CD_OK) st = ops->room_mute_put(sc, wc->room, wc->user, wc->muted);
    if (st != CD_OK) {
        wc->base.status = st;
        return st;
    }
    wc->base.result = json_pack("{s:{s:b}}", "settings", "muted", wc->muted);
    return CD_OK;
}

void api_room_settings(struct api_req *r)
{
    struct wh_call *wc;
    int64_t room;
    json_t *v = json_object_get(r->body, "muted");
    if (!id_parse(r->param, 'r', &room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return;
    }
    if (!json_is_boolean(v)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "muted must be true or false");
        return;
    }
    wc = wh_call_new(r);
    wc->room = room;
    wc->muted = json_is_true(v);
    wc->base.job.exec = settings_exec;
    api_call_write(&wc->base);
}

/* ---- endpoints ---- */

/* A flag endpoint's id in the API ("default", "notify") or a row's "w_<n>". */
static json_t *endpoint_id_json(int64_t id)
{
    char buf[32];
    if (id == ROLES_WEBHOOK_DEFAULT_ID) return json_string("default");
    if (id == ROLES_WEBHOOK_NOTIFY_ID) return json_string("notify");
    id_format(buf, sizeof(buf), 'w', id);
    return json_string(buf);
}

/* The secret is never returned: the caller chose it. */
static json_t *webhook_json(const struct store_webhook *w, const char *source)
{
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:I,s:s}", "url", w->url, "types", w->types[0] ? w->types : "*",
                  "kind", w->kind == WEBHOOK_NOTIFY ? "notify" : "events", "created_at",
                  (json_int_t)w->created_at, "source", source);
    json_object_set_new(o, "id", endpoint_id_json(w->id));
    return o;
}

static int list_row(void *ud, const struct store_webhook *w)
{
    json_array_append_new(ud, webhook_json(w, "api"));
    return 0;
}

static void list_work(struct api_call *call)
{
    struct wh_call *wc = (struct wh_call *)call;
    const struct cfg *cfg = &call->app->cfg;
    struct store_conn *sc = store_reader(&call->app->db);
    struct store_webhook w = {0};
    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    wc->arr = json_array();
    if (*cfg->webhook_url) {
        w.id = ROLES_WEBHOOK_DEFAULT_ID;
        snprintf(w.url, sizeof(w.url), "%s", cfg->webhook_url);
        snprintf(w.types, sizeof(w.types), "%s", cfg->webhook_types);
        json_array_append_new(wc->arr, webhook_json(&w, "flag"));
    }
    if (*cfg->notify_webhook_url) {
        w.id = ROLES_WEBHOOK_NOTIFY_ID;
        w.kind = WEBHOOK_NOTIFY;
        snprintf(w.url, sizeof(w.url), "%s", cfg->notify_webhook_url);
        snprintf(w.types, sizeof(w.types), "notification");
        json_array_append_new(wc->arr, webhook_json(&w, "flag"));
    }
    call->status = call->app->db.ops->webhooks_list(sc, list_row, wc->arr);
    if (call->status == CD_OK) {
        call->result = json_pack("{s:O}", "webhooks", wc->arr);
    }
}

void api_webhooks_list(struct api_req *r)
{
    wh_server_go(wh_call_new(r), r, "webhooks_list", list_work);
}

static int create_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct wh_call *wc = WH_CALL(j);
    int st = ops->webhook_insert(sc, &wc->w);
    if (st != CD_OK) {
        wc->base.status = st;
        return st;
    }
    wc->base.result = json_pack("{s:o}", "webhook", webhook_json(&wc->w, "api"));
    wc->base.http_status = 201;
    return CD_OK;
}

/* "message,member" style lists of [a-z_.*] words, or "*". */
static int types_valid(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_' || *s == '.' || *s == ',' || *s == '*'))
            return 0;
    return 1;
}

void api_webhooks_create(struct api_req *r)
{
    struct wh_call *wc;
    json_t *url = json_object_get(r->body, "url"), *secret = json_object_get(r->body, "secret"),
           *types = json_object_get(r->body, "types");
    const char *u = json_string_value(url);
    if (!u || json_string_length(url) > STORE_WEBHOOK_URL_MAX ||
        (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "url must be an http:// or https:// URL of at most 1024 bytes");
        return;
    }
    if (!json_is_string(secret) || json_string_length(secret) < 16 ||
        json_string_length(secret) > STORE_WEBHOOK_SECRET_MAX) {
        api_respond_error(r, CD_E_INVALID_FIELD, "secret must be a string of 16-128 bytes");
        return;
    }
    if (types && (!json_is_string(types) || json_string_length(types) > STORE_WEBHOOK_TYPES_MAX ||
                  !types_valid(json_string_value(types)))) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "types must be a comma-separated list of event types, or *");
        return;
    }
    wc = wh_call_new(r);
    wc->w.kind = WEBHOOK_EVENTS;
    snprintf(wc->w.url, sizeof(wc->w.url), "%s", u);
    snprintf(wc->w.secret, sizeof(wc->w.secret), "%s", json_string_value(secret));
    snprintf(wc->w.types, sizeof(wc->w.types), "%s", types ? json_string_value(types) : "*");
    wc->w.created_at = clock_unix_ms();
    wc->base.job.exec = create_exec;
    wh_server_go(wc, r, "webhooks_create", NULL);
}

/* DELETE of an endpoint or of a dead letter: the store op (webhook_delete, delivery_delete)
 * of the id; CD_E_NOT_FOUND answers 404. */
static int delete_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct wh_call *wc = WH_CALL(j);
    int st = wc->del(sc, wc->id);
    (void)ops;
    if (st != CD_OK) {
        wc->base.status = st;
        return st;
    }
    wc->base.http_status = 204;
    return CD_OK;
}

/* A server route on one {id} of `kind` ('w' endpoint, 'd' delivery): 404 with `missing` when
 * the id is malformed, else exec (with del, for delete_exec) as a writer job after the key
 * check. */
static void wh_by_id(struct api_req *r, char kind, const char *missing,
                     int (*exec)(const struct store_ops *, struct store_conn *, struct store_job *),
                     int (*del)(struct store_conn *c, int64_t id), const char *label)
{
    struct wh_call *wc;
    int64_t id;
    if (!id_parse(r->param, kind, &id)) {
        api_respond_error(r, CD_E_NOT_FOUND, missing);
        return;
    }
    wc = wh_call_new(r);
    wc->id = id;
    wc->del = del;
    wc->base.job.exec = exec;
    wh_server_go(wc, r, label, NULL);
}

void api_webhooks_delete(struct api_req *r)
{
    wh_by_id(r, 'w', "no such webhook (flag endpoints change with their flags)", delete_exec,
             r->app->db.ops->webhook_delete, "webhooks_delete");
}

/* ---- dead letters ---- */

static int dead_row(void *ud, const struct store_delivery *d)
{
    struct wh_call *wc = ud;
    char id[32];
    json_t *body = json_loadb(d->body, d->body_len, 0, NULL);
    json_t *o;
    id_format(id, sizeof(id), 'd', d->id);
    o = json_pack("{s:s,s:s,s:i,s:s,s:I,s:I}", "id", id, "event_id", d->event_id, "attempts",
                  d->attempts, "last_error", d->last_error, "created_at", (json_int_t)d->created_at,
                  "failed_at", (json_int_t)d->next_at);
    json_object_set_new(o, "endpoint", endpoint_id_json(d->endpoint_id));
    json_object_set_new(o, "event", body ? body : json_null());
    json_array_append_new(wc->arr, o);
    wc->last_id = d->id;
    wc->rows++;
    return 0;
}

static void dead_work(struct api_call *call)
{
    struct wh_call *wc = (struct wh_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    wc->arr = json_array();
    call->status = call->app->db.ops->deliveries_list(sc, DELIVERY_DEAD, 0, wc->after, wc->limit,
                                                      dead_row, wc);
    if (call->status != CD_OK) return;
    call->result = json_pack("{s:O}", "deliveries", wc->arr);
    if (wc->rows == wc->limit) {
        char next[32];
        id_format(next, sizeof(next), 'd', wc->last_id);
        json_object_set_new(call->result, "next_after", json_string(next));
    }
}

void api_webhooks_dead(struct api_req *r)
{
    struct wh_call *wc;
    char buf[32];
    int64_t after = 0, limit = DEAD_PAGE_DEFAULT;
    int q = http_query_value(r->http, "after", buf, sizeof(buf));
    if (q != 0 && (q != 1 || !id_parse((struct slice){buf, strlen(buf)}, 'd', &after))) {
        api_respond_error(r, CD_E_INVALID_FIELD, "after must be a delivery id (d_...)");
        return;
    }
    q = http_query_value(r->http, "limit", buf, sizeof(buf));
    if (q != 0) {
        char *end;
        limit = q == 1 ? strtoll(buf, &end, 10) : 0;
        if (q != 1 || *end || limit < 1 || limit > DEAD_PAGE_MAX) {
            api_respond_error(r, CD_E_INVALID_FIELD, "limit must be 1-500");
            return;
        }
    }
    wc = wh_call_new(r);
    wc->after = after;
    wc->limit = (int)limit;
    wh_server_go(wc, r, "webhooks_dead", dead_work);
}

static int replay_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct wh_call *wc = WH_CALL(j);
    int st = ops->delivery_replay(sc, wc->id, clock_unix_ms());
    if (st != CD_OK) {
        wc->base.status = st;
        return st;
    }
    wc->base.http_status = 202;
    wc->base.result = json_pack("{s:s}", "state", "pending");
    return CD_OK;
}

void api_webhooks_replay(struct api_req *r)
{
    wh_by_id(r, 'd', "no such dead delivery", replay_exec, NULL, "webhooks_replay");
}

/* DELETE /v1/server/webhooks/dead/{id}: drop a dead letter for good (delivery_delete touches
 * dead rows only). */
void api_webhooks_dead_delete(struct api_req *r)
{
    wh_by_id(r, 'd', "no such dead delivery", delete_exec, r->app->db.ops->delivery_delete,
             "webhooks_dead_delete");
}
