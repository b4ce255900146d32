/* api_msgops.c - REST for message operations (edit, delete, react), receipts and the user's
 * settings. The rules are chat/msgops.c's; this file only translates HTTP to calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/events.h"
#include "chat/msgops.h"
#include "chat/rooms.h"
#include "server/app.h"
#include "util/clock.h"
#include "util/status.h"

struct op_call {
    struct api_call base; /* first */
    struct chat_op op;
    char *body;
    char emoji[CHAT_EMOJI_MAX_BYTES + 1];
    char cmid[CHAT_CMID_MAX + 1];
    struct chat_out out;
    struct chat_sent sent;
    int share;      /* settings */
    int64_t sid;    /* delivered: the device (the access token's login session) */
    int64_t *pairs; /* delivered: (room, seq) pairs, then the watermarks in place of seq */
    size_t npairs;
};

#define OP_CALL(j) ((struct op_call *)((char *)(j)-offsetof(struct api_call, job)))

static void op_publish(struct api_call *call)
{
    chat_out_settle(&((struct op_call *)call)->out, call->status, &call->app->fanout);
}

static void op_cleanup(struct api_call *call)
{
    struct op_call *oc = (struct op_call *)call;
    chat_out_discard(&oc->out);
    free(oc->body);
    free(oc->pairs);
}

/* The answer of an operation: {"room","seq","target","ts","client_msg_id","duplicate","changed"}
 * (seq null when a reaction changed nothing). */
json_t *api_op_result(const struct chat_op *op, const struct chat_sent *sent)
{
    char rid[32];
    json_t *o;
    id_format(rid, sizeof(rid), 'r', op->room);
    o = json_pack("{s:s,s:o,s:I,s:I,s:b,s:b}", "room", rid, "seq",
                  sent->seq ? json_integer(sent->seq) : json_null(), "target",
                  (json_int_t)op->target, "ts", (json_int_t)sent->ts, "duplicate", sent->duplicate,
                  "changed", sent->changed);
    json_object_set_new(o, "client_msg_id",
                        op->cmid ? json_stringn(op->cmid, op->cmid_len) : json_null());
    return o;
}

static int op_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct op_call *oc = OP_CALL(j);
    int st = chat_msg_op(ops, sc, &oc->op, clock_unix_ms(), &oc->out, &oc->sent);
    if (st != CD_OK) {
        chat_out_discard(&oc->out);
        oc->base.status = st;
        return st;
    }
    oc->base.result = api_op_result(&oc->op, &oc->sent);
    return CD_OK;
}

static void op_reset(struct store_job *j)
{
    struct op_call *oc = OP_CALL(j);
    chat_out_discard(&oc->out);
    json_decref(oc->base.result);
    oc->base.result = NULL;
    oc->base.status = CD_OK;
}

/* The checks every operation shares (room and seq in the path, client_msg_id, the send rate),
 * then the writer job. Answers errors itself and returns NULL. */
static struct op_call *op_new(struct api_req *r, int kind)
{
    struct op_call *oc;
    int64_t room, seq, wait;
    json_t *cmid = r->body ? json_object_get(r->body, "client_msg_id") : NULL;

    if (!id_parse(r->param, 'r', &room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return NULL;
    }
    if (!seq_param(r->param2, &seq)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such message (the path names its seq)");
        return NULL;
    }
    if (cmid && !json_is_null(cmid) &&
        (!json_is_string(cmid) || json_string_length(cmid) == 0 ||
         json_string_length(cmid) > CHAT_CMID_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "client_msg_id must be a string of 1-64 bytes");
        return NULL;
    }
    if ((wait = presence_take_msg(r->app->presence, r->user_id, clock_unix_ms()))) {
        api_respond_retry(r, wait);
        return NULL;
    }
    oc = (struct op_call *)api_call_new(r, sizeof(*oc));
    oc->base.committed = op_publish;
    oc->base.cleanup = op_cleanup;
    oc->op.kind = kind;
    oc->op.room = room;
    oc->op.user = r->user_id;
    oc->op.target = seq;
    if (json_is_string(cmid)) {
        oc->op.cmid_len = json_string_length(cmid);
        memcpy(oc->cmid, json_string_value(cmid), oc->op.cmid_len);
        oc->op.cmid = oc->cmid;
    }
    oc->base.job.exec = op_exec;
    oc->base.job.reset = op_reset;
    oc->base.job.room_id = room;
    return oc;
}

/* PATCH /v1/rooms/{id}/messages/{seq} {"body", "client_msg_id"?} */
void api_message_edit(struct api_req *r)
{
    json_t *body = json_object_get(r->body, "body");
    struct op_call *oc;
    if (!json_is_string(body) || json_string_length(body) == 0) {
        api_respond_error(r, CD_E_INVALID_FIELD, "body (non-empty string) is required");
        return;
    }
    if ((int64_t)json_string_length(body) > r->app->cfg.max_body_text) {
        api_respond_error(r, CD_E_TOO_LARGE, "message body over --max-message-body");
        return;
    }
    if (!(oc = op_new(r, EV_EDIT))) return;
    oc->op.body_len = json_string_length(body);
    oc->body = xstrndup(json_string_value(body), oc->op.body_len);
    oc->op.body = oc->body;
    api_call_write(&oc->base);
}

/* DELETE /v1/rooms/{id}/messages/{seq}[?client_msg_id=] (no body needed) */
void api_message_delete(struct api_req *r)
{
    struct op_call *oc;
    char cmid[CHAT_CMID_MAX + 2];
    int q = http_query_value(r->http, "client_msg_id", cmid, sizeof(cmid));
    if (q < 0 || (q == 1 && (strlen(cmid) == 0 || strlen(cmid) > CHAT_CMID_MAX))) {
        api_respond_error(r, CD_E_INVALID_FIELD, "client_msg_id must be a string of 1-64 bytes");
        return;
    }
    if (!(oc = op_new(r, EV_DELETE))) return;
    if (q == 1) {
        oc->op.cmid_len = strlen(cmid);
        memcpy(oc->cmid, cmid, oc->op.cmid_len);
        oc->op.cmid = oc->cmid;
    }
    api_call_write(&oc->base);
}

/* POST /v1/rooms/{id}/messages/{seq}/reactions {"emoji", "on"?: true, "client_msg_id"?} */
void api_message_react(struct api_req *r)
{
    json_t *emoji = json_object_get(r->body, "emoji"), *on = json_object_get(r->body, "on");
    struct op_call *oc;
    if (!json_is_string(emoji) ||
        !chat_emoji_valid(json_string_value(emoji), json_string_length(emoji))) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "emoji must be one emoji (1-32 bytes of UTF-8, at most 10 code points)");
        return;
    }
    if (on && !json_is_boolean(on)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "on must be a boolean");
        return;
    }
    if (!(oc = op_new(r, EV_REACTION))) return;
    oc->op.emoji_len = json_string_length(emoji);
    memcpy(oc->emoji, json_string_value(emoji), oc->op.emoji_len);
    oc->op.emoji = oc->emoji;
    oc->op.on = !on || json_is_true(on);
    api_call_write(&oc->base);
}

/* ---- GET /v1/rooms/{id}/receipts ---- */

struct receipts_ctx {
    int64_t me;
    json_t *arr;
    int64_t delivered_all, read_all;
};

static int receipt_row(void *ud, const struct store_receipt *r)
{
    struct receipts_ctx *x = ud;
    int visible = r->share_read || r->user_id == x->me;
    char uid[32];
    json_t *o;
    id_format(uid, sizeof(uid), 'u', r->user_id);
    o = json_pack("{s:s}", "user", uid);
    json_object_set_new(o, "read_seq", visible ? json_integer(r->read_seq) : json_null());
    json_object_set_new(o, "delivered_seq",
                        r->delivered_seq >= 0 ? json_integer(r->delivered_seq) : json_null());
    json_array_append_new(x->arr, o);
    if (r->user_id != x->me) {
        int64_t d = r->delivered_seq < 0 ? 0 : r->delivered_seq;
        if (x->delivered_all < 0 || d < x->delivered_all) x->delivered_all = d;
        if (visible && (x->read_all < 0 || r->read_seq < x->read_all)) x->read_all = r->read_seq;
    }
    return 0;
}

static void receipts_work(struct api_call *call)
{
    struct op_call *oc = (struct op_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    const struct store_ops *ops = call->app->db.ops;
    struct receipts_ctx x = {.me = oc->op.user, .delivered_all = -1, .read_all = -1};
    struct store_member m;
    struct store_room room;
    char rid[32];

    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    if ((call->status = ops->room_get(sc, oc->op.room, &room)) != CD_OK) return;
    if ((call->status = ops->member_get(sc, oc->op.room, oc->op.user, &m)) != CD_OK) {
        if (call->status == CD_E_NOT_FOUND) call->status = CD_E_NOT_MEMBER;
        return;
    }
    if (room.member_count > CHAT_RECEIPT_ROOM_MAX) {
        call->status = CD_E_FORBIDDEN;
        return;
    }
    x.arr = json_array();
    call->status = ops->receipts_list(sc, oc->op.room, CHAT_RECEIPT_ROOM_MAX, receipt_row, &x);
    if (call->status != CD_OK) {
        json_decref(x.arr);
        return;
    }
    id_format(rid, sizeof(rid), 'r', oc->op.room);
    call->result = json_pack("{s:s,s:I,s:o,s:I,s:o}", "room", rid, "last_seq",
                             (json_int_t)room.last_seq, "receipts", x.arr, "delivered_all",
                             (json_int_t)(x.delivered_all < 0 ? room.last_seq : x.delivered_all),
                             "read_all", x.read_all < 0 ? json_null() : json_integer(x.read_all));
}

void api_receipts(struct api_req *r)
{
    struct op_call *oc;
    int64_t room;
    if (!id_parse(r->param, 'r', &room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return;
    }
    oc = (struct op_call *)api_call_new(r, sizeof(*oc));
    oc->base.cleanup = op_cleanup;
    oc->op.room = room;
    oc->op.user = r->user_id;
    oc->base.work_fn = receipts_work;
    oc->base.after_fn = api_call_finish;
    api_call_work(&oc->base);
}

/* ---- POST /v1/rooms/{id}/delivered, POST /v1/me/delivered ---- */

static int delivered_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct op_call *oc = OP_CALL(j);
    json_t *arr;
    for (size_t i = 0; i < oc->npairs; i++) {
        int st = chat_delivered(ops, sc, oc->pairs[2 * i], oc->op.user, oc->sid,
                                oc->pairs[2 * i + 1], &oc->pairs[2 * i + 1]);
        if (st != CD_OK) { /* the whole request fails (the savepoint undoes the others) */
            oc->base.status = st;
            return st;
        }
    }
    arr = json_array();
    for (size_t i = 0; i < oc->npairs; i++) {
        char rid[32];
        id_format(rid, sizeof(rid), 'r', oc->pairs[2 * i]);
        json_array_append_new(
            arr, json_pack("{s:s,s:I}", "room", rid, "seq", (json_int_t)oc->pairs[2 * i + 1]));
    }
    json_decref(oc->base.result);
    oc->base.result = json_pack("{s:o}", "rooms", arr);
    return CD_OK;
}

static void delivered_reset(struct store_job *j)
{
    struct op_call *oc = OP_CALL(j);
    json_decref(oc->base.result);
    oc->base.result = NULL;
    oc->base.status = CD_OK;
}

/* A {"room"?, "seq"} object: room from o (batched) or the path; answers errors itself. */
static int delivered_pair(struct api_req *r, json_t *o, int64_t *room, int64_t *seq)
{
    json_t *s = json_object_get(o, "seq"), *rm = json_object_get(o, "room");
    if (r->route == ROUTE_DELIVERED_BATCH) {
        if (!json_is_string(rm) ||
            !id_parse((struct slice){json_string_value(rm), json_string_length(rm)}, 'r', room)) {
            api_respond_error(r, CD_E_INVALID_FIELD, "rooms must hold {room (a room id), seq}");
            return 0;
        }
    } else if (!id_parse(r->param, 'r', room)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such room");
        return 0;
    }
    if (!json_is_integer(s) || json_integer_value(s) < 0) {
        api_respond_error(r, CD_E_INVALID_FIELD, "seq (non-negative integer) is required");
        return 0;
    }
    *seq = json_integer_value(s);
    return 1;
}

/* POST /v1/rooms/{id}/delivered {"seq"} and POST /v1/me/delivered {"rooms":[{"room","seq"}]}
 * (1-CHAT_DELIVERED_BATCH pairs): the REST form of the WebSocket `delivered`. The device is the
 * login session of the access token, as for a WebSocket; limited with `read` (--read-rate). */
void api_delivered(struct api_req *r)
{
    json_t *rooms = json_object_get(r->body, "rooms");
    size_t n = r->route == ROUTE_DELIVERED_BATCH ? json_array_size(rooms) : 1;
    struct op_call *oc;
    int64_t wait, *pairs;
    char key[24];
    int k;

    if (r->route == ROUTE_DELIVERED_BATCH &&
        (!json_is_array(rooms) || n == 0 || n > CHAT_DELIVERED_BATCH)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "rooms must be an array of 1-100 {room, seq}");
        return;
    }
    pairs = xmalloc(2 * n * sizeof(*pairs));
    for (size_t i = 0; i < n; i++)
        if (!delivered_pair(r, rooms ? json_array_get(rooms, i) : r->body, &pairs[2 * i],
                            &pairs[2 * i + 1])) {
            free(pairs);
            return;
        }
    k = snprintf(key, sizeof(key), "%lld", (long long)r->user_id);
    if ((wait = limiter_take(&r->app->reads, key, (size_t)k, clock_unix_ms()))) {
        free(pairs);
        api_respond_retry(r, wait);
        return;
    }
    oc = (struct op_call *)api_call_new(r, sizeof(*oc));
    oc->base.cleanup = op_cleanup;
    oc->op.user = r->user_id;
    oc->sid = r->sid;
    oc->pairs = pairs;
    oc->npairs = n;
    oc->base.job.exec = delivered_exec;
    oc->base.job.reset = delivered_reset;
    oc->base.job.room_id = n == 1 ? pairs[0] : 0;
    api_call_write(&oc->base);
}

/* ---- GET|PATCH /v1/me/settings ---- */

static json_t *settings_json(int share)
{
    return json_pack("{s:{s:b}}", "settings", "share_read_receipts", share);
}

static void settings_work(struct api_call *call)
{
    struct op_call *oc = (struct op_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    int share = 1;
    call->status = sc ? call->app->db.ops->settings_get(sc, oc->op.user, &share) : CD_E_IO;
    if (call->status == CD_OK) call->result = settings_json(share);
}

void api_settings_get(struct api_req *r)
{
    struct op_call *oc = (struct op_call *)api_call_new(r, sizeof(*oc));
    oc->base.cleanup = op_cleanup;
    oc->op.user = r->user_id;
    oc->base.work_fn = settings_work;
    oc->base.after_fn = api_call_finish;
    api_call_work(&oc->base);
}

static int settings_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct op_call *oc = OP_CALL(j);
    int st = ops->settings_put(sc, oc->op.user, oc->share);
    if (st != CD_OK) {
        oc->base.status = st;
        return st;
    }
    json_decref(oc->base.result);
    oc->base.result = settings_json(oc->share);
    return CD_OK;
}

/* PATCH /v1/me/settings {"share_read_receipts": bool} */
void api_settings_patch(struct api_req *r)
{
    json_t *share = json_object_get(r->body, "share_read_receipts");
    struct op_call *oc;
    if (!json_is_boolean(share)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "share_read_receipts (boolean) is required");
        return;
    }
    oc = (struct op_call *)api_call_new(r, sizeof(*oc));
    oc->base.cleanup = op_cleanup;
    oc->op.user = r->user_id;
    oc->share = json_is_true(share);
    oc->base.job.exec = settings_exec;
    api_call_write(&oc->base);
}
