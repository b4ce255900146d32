/* api_rooms.c - rooms, direct chats, members and history over REST. Reads run on the thread
 * pool with read-only connections; changes run as writer jobs whose committed events are
 * published to the fanout before the HTTP answer leaves. */
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "auth/auth.h"
#include "chat/attach.h"
#include "chat/events.h"
#include "chat/msgops.h"
#include "chat/people.h"
#include "chat/rooms.h"
#include "server/app.h"
#include "util/jsonw.h"
#include "util/status.h"

#define HISTORY_DEFAULT    50
#define HISTORY_MAX        200
#define ROOMS_PAGE_DEFAULT 100 /* GET /v1/rooms without limit= */
#define ROOMS_PAGE_MAX     500

struct room_call {
    struct api_call base; /* first */
    int64_t user;         /* the caller */
    int64_t room, target; /* room and subject user */
    int role;
    char name[STORE_ROOM_NAME_MAX + 1], topic[STORE_ROOM_TOPIC_MAX + 1];
    int has_name, has_topic;
    int is_public, archived; /* -1: not given */
    int64_t *members;
    size_t nmembers;
    int64_t after, before;
    int64_t reply_to, thread; /* send: links; history: the thread root (0: the whole log) */
    int limit, desc;
    char *body;
    size_t body_len;
    char cmid[CHAT_CMID_MAX + 1];
    size_t cmid_len;
    struct chat_attach att; /* a send's attachments */
    struct store_room r;
    struct chat_out out;
    struct chat_sent sent;
    int created;
    struct jsonw w; /* history rows */
    int rows;
    int more;                        /* history: a row past `limit` exists */
    struct people_blocklist blocked; /* history: users the caller blocks (their messages get
                                        "blocked":true) */
    int64_t last_row_seq;
};

#define ROOM_CALL(j) ((struct room_call *)((char *)(j)-offsetof(struct api_call, job)))

json_t *api_room_json(const struct store_room *r)
{
    char id[32], by[32];
    id_format(id, sizeof(id), 'r', r->id);
    id_format(by, sizeof(by), 'u', r->created_by);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:b,s:b}", "id", id, "kind",
                     r->kind == ROOM_DIRECT ? "direct" : "group", "name", r->name, "topic",
                     r->topic, "created_by", by, "created_at", (json_int_t)r->created_at,
                     "last_seq", (json_int_t)r->last_seq, "member_count",
                     (json_int_t)r->member_count, "public", r->is_public, "archived",
                     r->state == ROOM_ARCHIVED);
}

static void publish(struct api_call *call)
{
    struct room_call *rc = (struct room_call *)call;
    if (call->status == CD_OK && call->route == ROUTE_MESSAGE_POST && !rc->sent.duplicate)
        atomic_fetch_add_explicit(&call->app->metrics.messages_stored, 1, memory_order_relaxed);
    chat_out_settle(&rc->out, call->status, &call->app->fanout);
}

static void room_call_cleanup(struct api_call *call)
{
    struct room_call *rc = (struct room_call *)call;
    chat_out_discard(&rc->out);
    free(rc->members);
    free(rc->body);
    people_blocklist_free(&rc->blocked);
}

static struct room_call *room_call_new(struct api_req *r)
{
    struct room_call *rc = (struct room_call *)api_call_new(r, sizeof(struct room_call));
    rc->user = r->user_id;
    rc->base.committed = publish;
    rc->base.cleanup = room_call_cleanup;
    return rc;
}

/* A job's own error travels in call->status; a failed exec rolls its savepoint back. */
static int job_status(struct room_call *rc, int status)
{
    if (status != CD_OK) {
        chat_out_discard(&rc->out);
        rc->base.status = status;
    }
    return status;
}

int api_room_param(struct api_req *r, int64_t *room)
{
    if (id_parse(r->param, 'r', room)) return 1;
    api_respond_error(r, CD_E_NOT_FOUND, "no such room");
    return 0;
}

int api_body_user(struct api_req *r, int64_t *user)
{
    json_t *v = json_object_get(r->body, "user_id");
    if (json_is_string(v) &&
        id_parse((struct slice){json_string_value(v), json_string_length(v)}, 'u', user))
        return 1;
    api_respond_error(r, CD_E_INVALID_FIELD, "user_id must be a user id string");
    return 0;
}

/* Room creations, member additions and direct-chat opens share one bucket per user
 * (--room-rate, burst 10x): answers 429 itself and returns 1 when it is empty. */
int api_room_op_limited(struct api_req *r)
{
    char key[24];
    int n = snprintf(key, sizeof(key), "%lld", (long long)r->user_id);
    int64_t wait = limiter_take(&r->app->room_ops, key, (size_t)n, clock_unix_ms());
    if (wait) api_respond_retry(r, wait);
    return wait != 0;
}

/* Optional string field with a byte limit; returns 0 after answering on a bad value. */
static int opt_string(struct api_req *r, const char *key, size_t min, size_t max, char *out,
                      int *present)
{
    json_t *v = json_object_get(r->body, key);
    *present = 0;
    if (!v) return 1;
    if (!json_is_string(v) || json_string_length(v) < min || json_string_length(v) > max) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be a string of %zu-%zu bytes", key, min, max);
        api_respond_error(r, CD_E_INVALID_FIELD, msg);
        return 0;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    *present = 1;
    return 1;
}

/* Optional boolean field: *out -1 when absent; returns 0 after answering on a bad value. */
static int opt_bool(struct api_req *r, const char *key, int *out)
{
    json_t *v = json_object_get(r->body, key);
    char msg[64];
    *out = -1;
    if (!v) return 1;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 1;
    }
    snprintf(msg, sizeof(msg), "%s must be true or false", key);
    api_respond_error(r, CD_E_INVALID_FIELD, msg);
    return 0;
}

/* ---- POST /v1/rooms ---- */

static int create_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    int st = chat_room_create(ops, sc, rc->user, rc->name, rc->topic, rc->members, rc->nmembers,
                              clock_unix_ms(), &rc->out, &rc->r);
    if (st == CD_OK && rc->is_public > 0 &&
        (st = ops->room_set_flags(sc, rc->r.id, 1, -1)) == CD_OK)
        st = ops->room_get(sc, rc->r.id, &rc->r);
    if (job_status(rc, st) != CD_OK) return st;
    rc->base.result = json_pack("{s:o}", "room", api_room_json(&rc->r));
    return CD_OK;
}

void api_rooms_create(struct api_req *r)
{
    json_t *members = json_object_get(r->body, "members"), *v;
    struct room_call *rc;
    char name[STORE_ROOM_NAME_MAX + 1], topic[STORE_ROOM_TOPIC_MAX + 1] = "";
    int has_name, has_topic, is_public;
    size_t i;

    if (!opt_string(r, "name", 1, STORE_ROOM_NAME_MAX, name, &has_name) ||
        !opt_string(r, "topic", 0, STORE_ROOM_TOPIC_MAX, topic, &has_topic) ||
        !opt_bool(r, "public", &is_public))
        return;
    if (!has_name) {
        api_respond_error(r, CD_E_INVALID_FIELD, "name (string, 1-100 bytes) is required");
        return;
    }
    if (members &&
        (!json_is_array(members) || json_array_size(members) > CHAT_MAX_INITIAL_MEMBERS)) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "members must be an array of at most 1000 user ids");
        return;
    }
    if (api_room_op_limited(r)) return;
    rc = room_call_new(r);
    memcpy(rc->name, name, sizeof(name));
    memcpy(rc->topic, topic, sizeof(topic));
    rc->is_public = is_public;
    rc->members = xcalloc(json_array_size(members) + 1, sizeof(int64_t));
    json_array_foreach(members, i, v)
    {
        if (!json_is_string(v) ||
            !id_parse((struct slice){json_string_value(v), json_string_length(v)}, 'u',
                      &rc->members[rc->nmembers])) {
            rc->base.status = CD_E_INVALID_FIELD;
            api_call_finish(&rc->base);
            return;
        }
        rc->nmembers++;
    }
    rc->base.http_status = 201;
    rc->base.job.exec = create_exec;
    api_call_write(&rc->base);
}

/* ---- POST /v1/dms ---- */

static int dm_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    int st = chat_dm_open(ops, sc, rc->user, rc->target, clock_unix_ms(), &rc->out, &rc->r,
                          &rc->created, &rc->base.retry_ms);
    if (job_status(rc, st) != CD_OK) return st;
    rc->base.http_status = rc->created ? 201 : 200;
    rc->base.result = json_pack("{s:o}", "room", api_room_json(&rc->r));
    return CD_OK;
}

void api_dms(struct api_req *r)
{
    int64_t target;
    struct room_call *rc;
    if (!api_body_user(r, &target)) return;
    if (target == r->user_id) {
        api_respond_error(r, CD_E_INVALID_FIELD, "a direct chat needs another user");
        return;
    }
    if (api_room_op_limited(r)) return;
    rc = room_call_new(r);
    rc->target = target;
    rc->base.job.exec = dm_exec;
    api_call_write(&rc->base);
}

/* ---- PATCH /v1/rooms/{id} ---- */

static int patch_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    int st = CD_OK;
    if (rc->has_name || rc->has_topic)
        st = chat_room_update(ops, sc, rc->room, rc->user, rc->has_name ? rc->name : NULL,
                              rc->has_topic ? rc->topic : NULL, clock_unix_ms(), &rc->out);
    if (st == CD_OK && (rc->is_public >= 0 || rc->archived >= 0))
        st = chat_room_set_flags(ops, sc, rc->room, rc->user, rc->is_public, rc->archived,
                                 clock_unix_ms(), &rc->out);
    if (st == CD_OK) st = ops->room_get(sc, rc->room, &rc->r);
    if (job_status(rc, st) != CD_OK) return st;
    rc->base.result = json_pack("{s:o}", "room", api_room_json(&rc->r));
    return CD_OK;
}

void api_room_patch(struct api_req *r)
{
    struct room_call *rc;
    int64_t room;
    char name[STORE_ROOM_NAME_MAX + 1], topic[STORE_ROOM_TOPIC_MAX + 1];
    int has_name, has_topic, is_public, archived;

    if (!api_room_param(r, &room)) return;
    if (!opt_string(r, "name", 1, STORE_ROOM_NAME_MAX, name, &has_name) ||
        !opt_string(r, "topic", 0, STORE_ROOM_TOPIC_MAX, topic, &has_topic) ||
        !opt_bool(r, "public", &is_public) || !opt_bool(r, "archived", &archived))
        return;
    if (!has_name && !has_topic && is_public < 0 && archived < 0) {
        api_respond_error(r, CD_E_INVALID_FIELD, "name, topic, public or archived is required");
        return;
    }
    rc = room_call_new(r);
    rc->room = room;
    memcpy(rc->name, name, has_name ? strlen(name) + 1 : 1);
    memcpy(rc->topic, topic, has_topic ? strlen(topic) + 1 : 1);
    rc->has_name = has_name;
    rc->has_topic = has_topic;
    rc->is_public = is_public;
    rc->archived = archived;
    rc->base.job.exec = patch_exec;
    rc->base.job.room_id = rc->room;
    api_call_write(&rc->base);
}

/* ---- members ---- */

static int member_add_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    struct store_member m;
    char uid[32];
    int st = chat_member_add(ops, sc, rc->room, rc->user, rc->target, rc->role, clock_unix_ms(),
                             &rc->out);
    if (st == CD_OK) st = ops->member_get(sc, rc->room, rc->target, &m);
    if (job_status(rc, st) != CD_OK) return st;
    id_format(uid, sizeof(uid), 'u', rc->target);
    rc->base.result =
        json_pack("{s:{s:s,s:s}}", "member", "user_id", uid, "role", events_role_name(m.role));
    return CD_OK;
}

void api_member_add(struct api_req *r)
{
    struct room_call *rc;
    int64_t room, user;
    int role = -1;
    json_t *jr = json_object_get(r->body, "role");

    if (!api_room_param(r, &room) || !api_body_user(r, &user)) return;
    if (jr && (!json_is_string(jr) || !events_role_parse(json_string_value(jr), &role))) {
        api_respond_error(r, CD_E_INVALID_FIELD, "role must be member, admin or owner");
        return;
    }
    if (api_room_op_limited(r)) return;
    rc = room_call_new(r);
    rc->room = room;
    rc->target = user;
    rc->role = role;
    rc->base.job.exec = member_add_exec;
    rc->base.job.room_id = rc->room;
    api_call_write(&rc->base);
}

static int member_remove_exec(const struct store_ops *ops, struct store_conn *sc,
                              struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    int st = chat_member_remove(ops, sc, rc->room, rc->user, rc->target, clock_unix_ms(), &rc->out);
    return job_status(rc, st);
}

void api_member_remove(struct api_req *r)
{
    struct room_call *rc;
    int64_t room, user;

    if (!api_room_param(r, &room)) return;
    if (!id_parse(r->param2, 'u', &user)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such user");
        return;
    }
    rc = room_call_new(r);
    rc->room = room;
    rc->target = user;
    rc->base.http_status = 204;
    rc->base.job.exec = member_remove_exec;
    rc->base.job.room_id = rc->room;
    api_call_write(&rc->base);
}

/* ---- reads ---- */

struct list_ctx {
    struct room_call *rc;
    struct store_conn *sc;
    json_t *arr;
    int rows;
    int64_t last; /* id of the page's last room */
};

static int list_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct list_ctx *lc = ud;
    const struct store_ops *ops = lc->rc->base.app->db.ops;
    json_t *o;
    int64_t unread = 0;
    int capped = 0;

    if (lc->rows == lc->rc->limit) { /* the probe row: there is more (not part of the page) */
        lc->rc->more = 1;
        return 1;
    }
    lc->rows++;
    lc->last = room->id;
    o = api_room_json(room);
    ops->unread_count(lc->sc, room->id, m->user_id, m->read_seq, lc->rc->base.app->cfg.unread_max,
                      &unread, &capped);
    json_object_set_new(o, "role", json_string(events_role_name(m->role)));
    json_object_set_new(o, "read_seq", json_integer(m->read_seq));
    json_object_set_new(o, "unread", json_integer(unread));
    if (capped) json_object_set_new(o, "unread_capped", json_true());
    json_array_append_new(lc->arr, o);
    return 0;
}

static int peer_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    int64_t *peer_me = ud; /* [0] = me, [1] = peer out */
    (void)room;
    if (m->user_id != peer_me[0]) peer_me[1] = m->user_id;
    return 0;
}

static void rooms_list_work(struct api_call *call)
{
    struct room_call *rc = (struct room_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    const struct store_ops *ops = call->app->db.ops;
    struct list_ctx lc = {rc, sc, json_array(), 0, 0};
    size_t i;
    json_t *o;
    char next[32];

    call->status =
        sc ? ops->rooms_visible(sc, rc->user, rc->after, rc->limit + 1, list_row, &lc) : CD_E_IO;
    json_array_foreach(lc.arr, i, o)
    {
        int64_t peer_me[2] = {rc->user, 0}, id;
        json_t *jid = json_object_get(o, "id");
        if (strcmp(json_string_value(json_object_get(o, "kind")), "direct")) continue;
        id_parse((struct slice){json_string_value(jid), json_string_length(jid)}, 'r', &id);
        ops->members_list(sc, id, 2, peer_row, peer_me);
        if (peer_me[1]) {
            struct store_profile p;
            char uid[32];
            id_format(uid, sizeof(uid), 'u', peer_me[1]);
            json_object_set_new(o, "peer", json_string(uid));
            if (ops->profile_get(sc, peer_me[1], &p) == CD_OK)
                json_object_set_new(o, "peer_user", api_user_json(&p));
        }
    }
    id_format(next, sizeof(next), 'r', lc.last);
    call->result = json_pack("{s:o,s:b,s:o}", "rooms", lc.arr, "has_more", rc->more, "next",
                             rc->more ? json_string(next) : json_null());
}

/* GET /v1/rooms[?limit=N][&after=ROOM_ID]: my rooms in id order, a page at a time; `next` is the
 * `after` of the following page (null on the last). */
void api_rooms_list(struct api_req *r)
{
    struct room_call *rc;
    int64_t limit = ROOMS_PAGE_DEFAULT, after = 0;
    int has_limit;
    char buf[32];

    if (!api_query_int(r, "limit", &limit, &has_limit)) return;
    if (has_limit && (limit < 1 || limit > ROOMS_PAGE_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "limit must be 1-500");
        return;
    }
    switch (http_query_value(r->http, "after", buf, sizeof(buf))) {
    case 0:
        break;
    case 1:
        if (id_parse((struct slice){buf, strlen(buf)}, 'r', &after)) break;
        /* fall through */
    default: /* over-long, repeated or not a room id: refused, never ignored */
        api_respond_error(r, CD_E_INVALID_FIELD, "after must be a room id, given once");
        return;
    }
    rc = room_call_new(r);
    rc->limit = (int)limit;
    rc->after = after;
    rc->base.work_fn = rooms_list_work;
    rc->base.after_fn = api_call_finish;
    api_call_work(&rc->base);
}

static int members_row(void *ud, const struct store_profile *p, const struct store_member *m,
                       int64_t at)
{
    json_t *arr = ud;
    char uid[32];
    (void)at;
    id_format(uid, sizeof(uid), 'u', m->user_id);
    json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "user_id", uid, "role",
                                         events_role_name(m->role), "user", api_user_json(p)));
    return 0;
}

/* Member check on a read connection: CD_OK, CD_E_NOT_FOUND (no room) or CD_E_NOT_MEMBER. */
static int read_member(struct room_call *rc, struct store_conn *sc, struct store_member *m)
{
    const struct store_ops *ops = rc->base.app->db.ops;
    int st = ops->room_get(sc, rc->room, &rc->r);
    if (st != CD_OK) return st;
    if (rc->r.state == ROOM_DELETED) return CD_E_NOT_FOUND;
    st = ops->member_get(sc, rc->room, rc->user, m);
    return st == CD_E_NOT_FOUND ? CD_E_NOT_MEMBER : st;
}

static void room_get_work(struct api_call *call)
{
    struct room_call *rc = (struct room_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    struct store_member m;
    json_t *room, *arr;

    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    if ((call->status = read_member(rc, sc, &m)) != CD_OK) return;
    room = api_room_json(&rc->r);
    arr = json_array();
    call->app->db.ops->members_page(sc, rc->room, 0, CHAT_MAX_INITIAL_MEMBERS, members_row, arr);
    json_object_set_new(room, "members", arr);
    json_object_set_new(room, "role", json_string(events_role_name(m.role)));
    json_object_set_new(room, "read_seq", json_integer(m.read_seq));
    call->result = json_pack("{s:o}", "room", room);
}

void api_room_get(struct api_req *r)
{
    struct room_call *rc;
    int64_t room;
    if (!api_room_param(r, &room)) return;
    rc = room_call_new(r);
    rc->room = room;
    rc->base.work_fn = room_get_work;
    rc->base.after_fn = api_call_finish;
    api_call_work(&rc->base);
}

static int history_row(void *ud, const struct store_event *ev)
{
    struct room_call *rc = ud;
    if (rc->rows == rc->limit) { /* the probe row: there is more (not part of the page) */
        rc->more = 1;
        return 1;
    }
    if (rc->rows++) jsonw_lit(&rc->w, ",");
    events_log_json_mark(&rc->w, ev, people_blocklist_marks(&rc->blocked, ev));
    return 0;
}

/* Rows come newest-first for `before` pages; they are collected and reversed. */
struct rev_ctx {
    struct room_call *rc;
    struct store_event *evs;
    char **bodies;
    size_t n;
};

static int history_rev_row(void *ud, const struct store_event *ev)
{
    struct rev_ctx *x = ud;
    struct store_event *e = &x->evs[x->n];
    char *p = xmalloc(ev->body_len + ev->cmid_len + ev->extra_len + ev->reactions_len + 1);
    *e = *ev;
    x->bodies[x->n] = p;
    memcpy(p, ev->body, ev->body_len);
    e->body = p;
    p += ev->body_len;
    if (ev->client_msg_id) memcpy(p, ev->client_msg_id, ev->cmid_len);
    e->client_msg_id = ev->client_msg_id ? p : NULL;
    p += ev->cmid_len;
    if (ev->extra_len) memcpy(p, ev->extra, ev->extra_len);
    e->extra = ev->extra_len ? p : NULL;
    p += ev->extra_len;
    if (ev->reactions_len) memcpy(p, ev->reactions, ev->reactions_len);
    e->reactions = ev->reactions_len ? p : NULL;
    x->n++;
    return 0;
}

static void history_work(struct api_call *call)
{
    struct room_call *rc = (struct room_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    const struct store_ops *ops = call->app->db.ops;
    struct store_member m;
    int has_more;

    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    if ((call->status = read_member(rc, sc, &m)) != CD_OK) return;
    people_blocklist_read(ops, sc, rc->user, &rc->blocked); /* on failure: nothing marked */
    jsonw_init(&rc->w, 4096);
    jsonw_lit(&rc->w, "{\"messages\":[");
    if (rc->desc) {
        struct rev_ctx x = {rc, xcalloc((size_t)rc->limit + 1, sizeof(struct store_event)),
                            xcalloc((size_t)rc->limit + 1, sizeof(char *)), 0};
        call->status = ops->messages_page(sc, rc->room, 0, rc->before, rc->limit + 1, 1, rc->user,
                                          rc->thread, history_rev_row, &x);
        has_more = x.n > (size_t)rc->limit;
        for (size_t i = x.n > (size_t)rc->limit ? (size_t)rc->limit : x.n; i-- > 0;)
            history_row(rc, &x.evs[i]);
        for (size_t i = 0; i < x.n; i++)
            free(x.bodies[i]);
        free(x.evs);
        free(x.bodies);
    } else {
        /* read one more row to learn whether there is more; history_row stops at it */
        call->status = ops->messages_page(sc, rc->room, rc->after, rc->before, rc->limit + 1, 0,
                                          rc->user, rc->thread, history_row, rc);
        has_more = rc->more;
    }
    jsonw_lit(&rc->w, "],\"has_more\":");
    jsonw_lit(&rc->w, has_more ? "true" : "false");
    jsonw_lit(&rc->w, "}");
    call->raw_len = jsonw_text_len(&rc->w);
    call->raw = xmalloc(call->raw_len);
    memcpy(call->raw, jsonw_text(&rc->w), call->raw_len);
    jsonw_free(&rc->w);
}

/* A positive decimal seq of 1-18 digits (a path segment). */
int seq_param(struct slice s, int64_t *out)
{
    int64_t v = 0;
    if (s.len == 0 || s.len > 18) return 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return 0;
        v = v * 10 + (s.p[i] - '0');
    }
    *out = v;
    return v > 0;
}

/* An optional non-negative integer query parameter: 1-18 decimal digits, nothing else (no sign,
 * no spaces), given at most once. Anything else is answered with 400 (returns 0), never
 * ignored or truncated. */
int api_query_int(struct api_req *r, const char *name, int64_t *out, int *present)
{
    char buf[24], msg[96];
    int64_t v = 0;
    size_t i;
    int rc = http_query_value(r->http, name, buf, sizeof(buf));

    *present = 0;
    if (rc == 0) return 1;
    for (i = 0; rc == 1 && i < 18 && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (buf[i] - '0');
    if (rc == 1 && i > 0 && i <= 18 && buf[i] == '\0') {
        *out = v;
        *present = 1;
        return 1;
    }
    snprintf(msg, sizeof(msg), "%s must be given once, as a non-negative integer of 1-18 digits",
             name);
    api_respond_error(r, CD_E_INVALID_FIELD, msg);
    return 0;
}

/* GET /v1/rooms/{id}/messages, and GET /v1/rooms/{id}/threads/{root}/messages (the replies of
 * one thread, paged the same way). */
void api_history(struct api_req *r)
{
    struct room_call *rc;
    int64_t room, before = 0, after = 0, limit = HISTORY_DEFAULT, thread = 0;
    int has_before, has_after, has_limit;

    if (!api_room_param(r, &room)) return;
    if (r->route == ROUTE_THREAD_MESSAGES && !seq_param(r->param2, &thread)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such thread (the root is a seq)");
        return;
    }
    if (!api_query_int(r, "before", &before, &has_before) ||
        !api_query_int(r, "after", &after, &has_after) ||
        !api_query_int(r, "limit", &limit, &has_limit))
        return;
    if (has_limit && (limit < 1 || limit > HISTORY_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "limit must be 1-200");
        return;
    }
    rc = room_call_new(r);
    rc->room = room;
    rc->thread = thread;
    rc->limit = (int)limit;
    rc->after = has_after ? after : 0;
    rc->before = has_before ? before : 0;
    /* Without `after`, the newest page (before SEQ, or the latest) in ascending order. */
    rc->desc = !has_after;
    rc->base.work_fn = history_work;
    rc->base.after_fn = api_call_finish;
    api_call_work(&rc->base);
}

/* ---- POST /v1/rooms/{id}/messages ---- */

struct orig_ctx {
    int64_t room, seq, ts;
};

static int orig_row(void *ud, const struct store_event *ev)
{
    struct orig_ctx *o = ud;
    o->room = ev->room_id;
    o->seq = ev->seq;
    o->ts = ev->ts;
    return 0;
}

int link_field(json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    *out = 0;
    if (!v || json_is_null(v)) return 1;
    if (!json_is_integer(v) || json_integer_value(v) <= 0) return 0;
    *out = json_integer_value(v);
    return 1;
}

int api_send_exec(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t sender,
                  const char *body, size_t body_len, const char *cmid, size_t cmid_len,
                  int64_t reply_to, int64_t thread, const struct chat_attach *att,
                  struct chat_out *out, struct chat_sent *sent, int64_t *room_out)
{
    struct orig_ctx o = {0};
    struct jsonw extra = {0};
    int st = CD_OK;

    *room_out = room;
    if (att && att->n) { /* checked before the append, so a refusal changes nothing */
        jsonw_init(&extra, 256);
        st = chat_attach_check(ops, sc, sender, att, &extra);
    }
    if (st == CD_OK)
        st = reply_to || thread
                 ? chat_send_linked(ops, sc, room, sender, body, body_len, cmid, cmid_len, reply_to,
                                    thread, clock_unix_ms(), out, sent)
                 : chat_send(ops, sc, room, sender, body, body_len, cmid, cmid_len, clock_unix_ms(),
                             out, sent);
    if (st == CD_OK && att && att->n) {
        struct store_event ev = {.room_id = room,
                                 .seq = sent->seq,
                                 .kind = EV_MESSAGE,
                                 .sender = sender,
                                 .ts = sent->ts,
                                 .body = body,
                                 .body_len = body_len,
                                 .client_msg_id = cmid,
                                 .cmid_len = cmid_len,
                                 .reply_to = reply_to,
                                 .thread = thread,
                                 .extra = jsonw_text(&extra),
                                 .extra_len = jsonw_text_len(&extra)};
        st = chat_attach_commit(ops, sc, &ev, att, out);
    }
    if (att && att->n) jsonw_free(&extra);
    if (st != CD_E_CONFLICT) return st;
    /* the same (room, sender, client_msg_id) was stored before: answer with the original */
    st = ops->event_by_client_id(sc, room, sender, cmid, cmid_len, orig_row, &o);
    if (st != CD_OK) return st == CD_E_NOT_FOUND ? CD_E_CONFLICT : st;
    sent->seq = o.seq;
    sent->ts = o.ts;
    sent->duplicate = 1;
    *room_out = o.room;
    return CD_OK;
}

json_t *api_ack_json(int64_t room, const struct chat_sent *sent, const char *cmid, int *http_status)
{
    char rid[32], mid[48];
    id_format(rid, sizeof(rid), 'r', room);
    snprintf(mid, sizeof(mid), "m_%lld_%lld", (long long)room, (long long)sent->seq);
    *http_status = sent->duplicate ? 200 : 201;
    return json_pack("{s:s,s:I,s:s,s:I,s:s,s:b}", "room", rid, "seq", (json_int_t)sent->seq,
                     "msg_id", mid, "ts", (json_int_t)sent->ts, "client_msg_id", cmid, "duplicate",
                     sent->duplicate);
}

int api_message_fields(struct api_req *r, json_t **body, json_t **cmid)
{
    *body = json_object_get(r->body, "body");
    *cmid = json_object_get(r->body, "client_msg_id");
    if (!json_is_string(*body) || json_string_length(*body) == 0) {
        api_respond_error(r, CD_E_INVALID_FIELD, "body (non-empty string) is required");
        return 0;
    }
    if ((int64_t)json_string_length(*body) > r->app->cfg.max_body_text) {
        api_respond_error(r, CD_E_TOO_LARGE, "message body over --max-message-body");
        return 0;
    }
    if (!json_is_string(*cmid) || json_string_length(*cmid) == 0 ||
        json_string_length(*cmid) > CHAT_CMID_MAX) {
        api_respond_error(r, CD_E_INVALID_FIELD, "client_msg_id (string, 1-64 bytes) is required");
        return 0;
    }
    return 1;
}

static int post_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    int64_t room;
    int st =
        api_send_exec(ops, sc, rc->room, rc->user, rc->body, rc->body_len, rc->cmid, rc->cmid_len,
                      rc->reply_to, rc->thread, &rc->att, &rc->out, &rc->sent, &room);
    if (job_status(rc, st) != CD_OK) return st;
    rc->base.result = api_ack_json(room, &rc->sent, rc->cmid, &rc->base.http_status);
    return CD_OK;
}

/* Before the batch runs post_exec again (PostgreSQL rolled it back: a deadlock, or a late
 * duplicate of an optimistic batch): forget what the rolled-back run produced. With it a REST
 * send can share an optimistic batch (two round trips) with WebSocket sends. */
static void post_reset(struct store_job *j)
{
    struct room_call *rc = ROOM_CALL(j);
    chat_out_discard(&rc->out);
    memset(&rc->sent, 0, sizeof(rc->sent));
    json_decref(rc->base.result);
    rc->base.result = NULL;
    rc->base.status = CD_OK;
}

void api_message_post(struct api_req *r)
{
    struct chat_attach att;
    struct room_call *rc;
    int64_t room, wait, reply_to = 0, thread = 0;
    json_t *body, *cmid;

    if (!api_room_param(r, &room)) return;
    if (!api_message_fields(r, &body, &cmid)) return;
    if (!link_field(r->body, "reply_to", &reply_to) || !link_field(r->body, "thread", &thread)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "reply_to and thread must be positive seqs");
        return;
    }
    if (!api_attach_parse(r, json_object_get(r->body, "attachments"), &att)) return;
    if ((wait = presence_take_msg(r->app->presence, r->user_id, clock_unix_ms()))) {
        api_respond_retry(r, wait);
        return;
    }
    rc = room_call_new(r);
    rc->room = room;
    rc->att = att;
    rc->reply_to = reply_to;
    rc->thread = thread;
    rc->body_len = json_string_length(body);
    rc->body = xstrndup(json_string_value(body), rc->body_len);
    rc->cmid_len = json_string_length(cmid);
    memcpy(rc->cmid, json_string_value(cmid), rc->cmid_len);
    rc->base.job.exec = post_exec;
    rc->base.job.reset = post_reset;
    rc->base.job.room_id = rc->room;
    api_call_write(&rc->base);
}
