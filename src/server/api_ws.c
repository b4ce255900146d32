/* api_ws.c - the WebSocket endpoint: authenticated upgrade, the operation table, replies. */
#include <string.h>

#include "util/clock.h"
#include "chat/attach.h"
#include "chat/events.h"
#include "chat/hub.h"
#include "chat/msgops.h"
#include "chat/rooms.h"
#include "server/app.h"
#include "util/jsonflat.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/status.h"

#define WS_ID_MAX 64 /* longest client request "id" echoed back */

/* Send a JSON object as one text message; steals obj. */
static void ws_send_json(struct conn *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text) conn_ws_text(c, text, strlen(text));
    free(text);
    json_decref(obj);
}

/* {"type":"error","id":...,"code":...,"message":...}; id may be NULL. */
static void ws_send_error(struct conn *c, json_t *id, int status, const char *message)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", cd_status_code(status),
                          "message", message ? message : cd_status_message(status));
    if (id) json_object_set(o, "id", id);
    ws_send_json(c, o);
}

/* ---- operations ---- */

struct ws_op {
    const char *type;
    void (*handler)(struct app *app, struct conn *c, json_t *msg, json_t *id);
};

static void op_ping(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *o = json_pack("{s:s}", "type", "pong");
    (void)app;
    (void)msg;
    if (id) json_object_set(o, "id", id);
    ws_send_json(c, o);
}

/* The room of a request: a room id the connection's user is a member of. Answers the error
 * itself and returns 0 otherwise. */
static int room_check(struct conn *c, struct slice v, json_t *id, int64_t *room)
{
    if (!id_parse(v, 'r', room)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "room must be a room id string");
        return 0;
    }
    if (!hub_is_member(c, *room)) {
        ws_send_error(c, id, CD_E_NOT_MEMBER, NULL);
        return 0;
    }
    return 1;
}

/* The "r_<n>" field of msg, as room_check. */
static int msg_room(struct conn *c, json_t *msg, json_t *id, int64_t *room)
{
    json_t *v = json_object_get(msg, "room");
    if (!json_is_string(v)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "room must be a room id string");
        return 0;
    }
    return room_check(c, (struct slice){json_string_value(v), json_string_length(v)}, id, room);
}

static void ws_send_retry(struct app *app, struct conn *c, json_t *id, int64_t wait)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I}", "type", "error", "code", "rate_limited", "message",
                          "too many requests; retry later", "retry_after_ms", (json_int_t)wait);
    atomic_fetch_add(&app->metrics.rate_limited, 1);
    if (id) json_object_set(o, "id", id);
    ws_send_json(c, o);
}

/* A frame for one connection, carried in commit order through the fanout. */
static struct rbuf *reply_frame(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    size_t len = strlen(text);
    uint8_t hdr[WS_MAX_HEADER];
    size_t h = ws_frame_header(hdr, WS_OP_TEXT, len);
    struct rbuf *b = rbuf_new(h + len);
    memcpy(b->data, hdr, h);
    memcpy(b->data + h, text, len);
    free(text);
    json_decref(o);
    return b;
}

struct ws_job {
    struct store_job job; /* first */
    struct app *app;
    struct conn *c; /* held until the reply is delivered (hub_deliver releases) */
    json_t *id;
    int64_t user, room, seq;
    char *body;
    size_t body_len;
    char cmid[CHAT_CMID_MAX + 1];
    size_t cmid_len;
    struct chat_attach *att; /* a send's attachments, NULL when none (the common case) */
    struct chat_out out;
    struct chat_sent sent;
    int64_t marker, unread, prev;
    int unread_capped;        /* read: more entries follow the unread_max looked at */
    int64_t reply_to, thread; /* send: links (0 = none) */
    struct chat_op op;        /* edit, delete, react */
    char emoji[CHAT_EMOJI_MAX_BYTES + 1];
    int64_t sid;    /* delivered: the device (login session) */
    int64_t *pairs; /* delivered: (room, seq) pairs, then the watermarks in place of seq */
    size_t npairs;
    struct trace_span *span; /* tracing: the operation's span, ended with the job */
};

static struct ws_job *ws_job_new(struct app *app, struct conn *c, json_t *id)
{
    struct ws_job *j = xcalloc(1, sizeof(*j));
    j->app = app;
    j->c = c;
    j->id = id ? json_incref(id) : NULL;
    j->user = c->user_id;
    conn_hold(c);
    return j;
}

/* To the writer, counted as one of the connection's requests in flight until its answer (a
 * fan_ev with `request` set) is delivered. */
static void ws_job_submit(struct ws_job *j)
{
    hub_submit(j->c->io, &j->job);
    hub_request_begin(j->c);
}

/* Tracing: a WebSocket operation that goes to storage is a span from its frame to its answer
 * (the ack, after the group commit). A new trace: the connection's upgrade request ended long
 * ago. */
static void ws_job_trace(struct ws_job *j, const char *name)
{
    char rid[24];
    int n;
    if (!trace_enabled()) return;
    j->span = trace_span_start(name, TRACE_SERVER, NULL);
    n = id_format(rid, sizeof(rid), 'r', j->room);
    trace_attr_str(j->span, "chatd.room", rid, (size_t)n);
    n = id_format(rid, sizeof(rid), 'u', j->user);
    trace_attr_str(j->span, "enduser.id", rid, (size_t)n);
    j->job.trace = trace_span_ctx(j->span);
}

static void ws_job_free(struct ws_job *j)
{
    if (j->span) {
        if (j->job.status != CD_OK) trace_span_error(j->span, cd_status_code(j->job.status));
        trace_span_end(j->span);
    }
    json_decref(j->id);
    free(j->pairs);
    free(j->body);
    free(j->att);
    free(j);
}

static json_t *with_id(json_t *o, json_t *id)
{
    if (id) json_object_set(o, "id", id);
    return o;
}

static struct rbuf *error_frame(json_t *id, int status)
{
    return reply_frame(
        with_id(json_pack("{s:s,s:s,s:s}", "type", "error", "code", cd_status_code(status),
                          "message", cd_status_message(status)),
                id));
}

static int send_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    int64_t room;
    int st = api_send_exec(ops, sc, j->room, j->user, j->body, j->body_len, j->cmid, j->cmid_len,
                           j->reply_to, j->thread, j->att, &j->out, &j->sent, &room);
    if (st != CD_OK) chat_out_discard(&j->out);
    j->room = room;
    return st;
}

/* Before a retried batch runs the job again: forget the events of the rolled-back run. */
static void ws_job_reset(struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    chat_out_discard(&j->out);
    memset(&j->sent, 0, sizeof(j->sent));
}

/* {"type":"ack","room","seq","msg_id","ts","client_msg_id","duplicate","id"}, written directly:
 * one per message on the writer thread. */
static struct rbuf *ack_frame(const struct ws_job *j)
{
    struct jsonw w;
    struct rbuf *b;

    jsonw_init(&w, 256);
    jsonw_lit(&w, "{\"type\":\"ack\",\"room\":");
    jsonw_id(&w, 'r', j->room);
    jsonw_key(&w, "seq", 0);
    jsonw_int(&w, j->sent.seq);
    jsonw_key(&w, "msg_id", 0);
    jsonw_msg_id(&w, j->room, j->sent.seq);
    jsonw_key(&w, "ts", 0);
    jsonw_int(&w, j->sent.ts);
    jsonw_key(&w, "client_msg_id", 0);
    jsonw_str(&w, j->cmid, j->cmid_len);
    jsonw_key(&w, "duplicate", 0);
    jsonw_lit(&w, j->sent.duplicate ? "true" : "false");
    if (json_is_string(j->id)) {
        jsonw_key(&w, "id", 0);
        jsonw_str(&w, json_string_value(j->id), json_string_length(j->id));
    } else if (json_is_integer(j->id)) {
        jsonw_key(&w, "id", 0);
        jsonw_int(&w, json_integer_value(j->id));
    }
    jsonw_lit(&w, "}");
    b = events_frame(&w);
    jsonw_free(&w);
    return b;
}

/* Writer thread, after the commit: the answer of a send or a message operation, an error or
 * ack(j). The ack rides with the entry's own fanout event, so the asking connection sees it in
 * order with the room's other events. Frees j. */
static void answer(struct ws_job *j, int status, struct rbuf *(*ack)(const struct ws_job *j))
{
    struct fan_ev ev = {.kind = FAN_REPLY, .request = 1, .origin = j->c, .origin_io = j->c->io};

    if (status != CD_OK) {
        chat_out_discard(&j->out);
        ev.reply = error_frame(j->id, status);
        fanout_add(&j->app->fanout, &ev);
        ws_job_free(j);
        return;
    }
    ev.reply = ack(j);
    if (!j->sent.duplicate)
        atomic_fetch_add_explicit(&j->app->metrics.messages_stored, 1, memory_order_relaxed);
    if (!j->sent.duplicate && j->out.n) {
        j->out.ev[0].origin = ev.origin;
        j->out.ev[0].origin_io = ev.origin_io;
        j->out.ev[0].reply = ev.reply;
        j->out.ev[0].request = 1;
        chat_out_commit(&j->out, &j->app->fanout);
    } else {
        chat_out_discard(&j->out);
        fanout_add(&j->app->fanout, &ev);
    }
    ws_job_free(j);
}

static void send_done(struct store_job *job)
{
    answer((struct ws_job *)job, job->status, ack_frame);
}

/* A send to a checked room, from either parser (a body or client_msg_id that is not a string
 * comes as length 0): the checks, then the job. */
static void send_fields(struct app *app, struct conn *c, json_t *id, int64_t room, const char *body,
                        size_t body_len, const char *cmid, size_t cmid_len, int64_t reply_to,
                        int64_t thread, const struct chat_attach *att)
{
    struct ws_job *j;
    int64_t wait;

    if (body_len == 0) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "body (non-empty string) is required");
        return;
    }
    if ((int64_t)body_len > app->cfg.max_body_text) {
        ws_send_error(c, id, CD_E_TOO_LARGE, "message body over --max-message-body");
        return;
    }
    if (cmid_len == 0 || cmid_len > CHAT_CMID_MAX) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "client_msg_id (string, 1-64 bytes) is required");
        return;
    }
    if ((wait = presence_take_msg(app->presence, c->user_id, clock_unix_ms()))) {
        ws_send_retry(app, c, id, wait);
        return;
    }
    j = ws_job_new(app, c, id);
    j->room = room;
    j->body_len = body_len;
    j->body = xstrndup(body, body_len);
    j->cmid_len = cmid_len;
    memcpy(j->cmid, cmid, cmid_len);
    j->reply_to = reply_to;
    j->thread = thread;
    if (att && att->n) {
        j->att = xmalloc(sizeof(*j->att));
        *j->att = *att;
    }
    j->job.exec = send_exec;
    j->job.done = send_done;
    j->job.reset = ws_job_reset;
    j->job.room_id = room;
    /* membership check, then one append that fails without a trace (a linked send or one with
     * attachments writes more) */
    j->job.clean_fail = !reply_to && !thread && !j->att;
    ws_job_trace(j, "ws send");
    ws_job_submit(j);
}

static void op_send(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *body = json_object_get(msg, "body"), *cmid = json_object_get(msg, "client_msg_id");
    struct chat_attach att;
    const char *why;
    int64_t room, reply_to, thread;

    if (!msg_room(c, msg, id, &room)) return;
    if (!link_field(msg, "reply_to", &reply_to) || !link_field(msg, "thread", &thread)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "reply_to and thread must be positive seqs");
        return;
    }
    if (!api_attach_list(json_object_get(msg, "attachments"), &att, &why)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, why);
        return;
    }
    send_fields(app, c, id, room, json_string_value(body), json_string_length(body),
                json_string_value(cmid), json_string_length(cmid), reply_to, thread, &att);
}

/* The hot path: a `send` of plain fields ({"type":"send","id":..,"room":..,"client_msg_id":..,
 * "body":..} in any order, strings without escapes) is handled without building a DOM, at a
 * fraction of jansson's cost. Returns 0 for anything else, which then takes the general path
 * (and gets its error there, if any). */
static int ws_send_fast(struct app *app, struct conn *c, const uint8_t *data, size_t len)
{
    struct jsonflat_field f[6];
    const struct jsonflat_field *type = NULL, *id = NULL, *room = NULL, *body = NULL, *cmid = NULL;
    int n = jsonflat_scan((const char *)data, len, f, 6);
    json_t *jid = NULL;
    int64_t r;

    if (n < 0) return 0;
    for (int i = 0; i < n; i++) {
        struct slice k = {f[i].key, f[i].key_len};
        if (slice_eq(k, "type"))
            type = &f[i];
        else if (slice_eq(k, "id"))
            id = &f[i];
        else if (slice_eq(k, "room"))
            room = &f[i];
        else if (slice_eq(k, "body"))
            body = &f[i];
        else if (slice_eq(k, "client_msg_id"))
            cmid = &f[i];
        else
            return 0;
    }
    if (!type || type->kind != JSONFLAT_STRING ||
        !slice_eq((struct slice){type->val, type->val_len}, "send") || !room ||
        room->kind != JSONFLAT_STRING || !body || body->kind != JSONFLAT_STRING || !cmid ||
        cmid->kind != JSONFLAT_STRING ||
        (id && id->kind == JSONFLAT_STRING && id->val_len > WS_ID_MAX))
        return 0;
    if (id)
        jid = id->kind == JSONFLAT_STRING ? json_stringn(id->val, id->val_len)
                                          : json_integer((json_int_t)id->num);
    hub_release(c); /* the connection's first request starts its live delivery */
    if (room_check(c, (struct slice){room->val, room->val_len}, jid, &r))
        send_fields(app, c, jid, r, body->val, body->val_len, cmid->val, cmid->val_len, 0, 0, NULL);
    json_decref(jid);
    return 1;
}

static int read_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    int st = chat_read(ops, sc, j->room, j->user, j->seq, j->app->cfg.unread_max, &j->prev,
                       &j->marker, &j->unread, &j->unread_capped);
    if (st == CD_OK) st = chat_read_receipt(ops, sc, j->room, j->user, j->prev, j->marker, &j->out);
    if (st != CD_OK) chat_out_discard(&j->out);
    return st;
}

/* {"type":"read","room","seq","unread"[,"unread_capped":true][,"id"]} */
static struct rbuf *read_frame(const struct ws_job *j, json_t *id)
{
    char rid[32];
    json_t *o;
    id_format(rid, sizeof(rid), 'r', j->room);
    o = json_pack("{s:s,s:s,s:I,s:I}", "type", "read", "room", rid, "seq", (json_int_t)j->marker,
                  "unread", (json_int_t)j->unread);
    if (j->unread_capped) json_object_set_new(o, "unread_capped", json_true());
    return reply_frame(with_id(o, id));
}

/* The new marker goes to every connection of the user: the asking one as a reply with its id,
 * the others as a `read` event. */
static void read_done(struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    struct fan_ev ev = {
        .kind = FAN_USER, .request = 1, .user = j->user, .origin = j->c, .origin_io = j->c->io};

    if (job->status != CD_OK) {
        chat_out_discard(&j->out);
        ev.kind = FAN_REPLY;
        ev.reply = error_frame(j->id, job->status);
    } else {
        chat_out_commit(&j->out, &j->app->fanout); /* the receipt to the room's others */
        ev.frame = read_frame(j, NULL);
        ev.reply = read_frame(j, j->id);
    }
    fanout_add(&j->app->fanout, &ev);
    ws_job_free(j);
}

static void op_read(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *seq = json_object_get(msg, "seq");
    struct ws_job *j;
    int64_t room, wait;
    char key[24];
    int n;

    if (!msg_room(c, msg, id, &room)) return;
    if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "seq (non-negative integer) is required");
        return;
    }
    /* Each read is a writer job: limited per user like messages (--read-rate). */
    n = snprintf(key, sizeof(key), "%lld", (long long)c->user_id);
    if ((wait = limiter_take(&app->reads, key, (size_t)n, clock_unix_ms()))) {
        ws_send_retry(app, c, id, wait);
        return;
    }
    j = ws_job_new(app, c, id);
    j->room = room;
    j->seq = json_integer_value(seq);
    j->job.exec = read_exec;
    j->job.done = read_done;
    j->job.reset = ws_job_reset;
    j->job.room_id = room;
    j->job.clean_fail = 1; /* reads and one UPDATE */
    ws_job_trace(j, "ws read");
    ws_job_submit(j);
}

/* ---- edit, delete, react ---- */

static int msgop_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    int st = chat_msg_op(ops, sc, &j->op, clock_unix_ms(), &j->out, &j->sent);
    if (st != CD_OK) chat_out_discard(&j->out);
    return st;
}

/* {"type":"ack","op":"edit"|"delete"|"react",...api_op_result...,"id"} */
static struct rbuf *op_ack_frame(const struct ws_job *j)
{
    static const char *const names[] = {
        [EV_EDIT] = "edit", [EV_DELETE] = "delete", [EV_REACTION] = "react"};
    json_t *o = api_op_result(&j->op, &j->sent);
    json_object_set_new(o, "type", json_string("ack"));
    json_object_set_new(o, "op", json_string(names[j->op.kind]));
    return reply_frame(with_id(o, j->id));
}

static void msgop_done(struct store_job *job)
{
    answer((struct ws_job *)job, job->status, op_ack_frame);
}

/* The fields every operation shares: room, seq (the target), optional client_msg_id, the send
 * rate. Answers errors itself and returns NULL. */
static struct ws_job *msgop_new(struct app *app, struct conn *c, json_t *msg, json_t *id, int kind)
{
    json_t *seq = json_object_get(msg, "seq"), *cmid = json_object_get(msg, "client_msg_id");
    struct ws_job *j;
    int64_t room, wait;

    if (!msg_room(c, msg, id, &room)) return NULL;
    if (!json_is_integer(seq) || json_integer_value(seq) <= 0) {
        ws_send_error(c, id, CD_E_INVALID_FIELD,
                      "seq (the message's, a positive integer) is required");
        return NULL;
    }
    if (cmid && !json_is_null(cmid) &&
        (!json_is_string(cmid) || json_string_length(cmid) == 0 ||
         json_string_length(cmid) > CHAT_CMID_MAX)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "client_msg_id must be a string of 1-64 bytes");
        return NULL;
    }
    if ((wait = presence_take_msg(app->presence, c->user_id, clock_unix_ms()))) {
        ws_send_retry(app, c, id, wait);
        return NULL;
    }
    j = ws_job_new(app, c, id);
    j->room = room;
    j->op.kind = kind;
    j->op.room = room;
    j->op.user = c->user_id;
    j->op.target = json_integer_value(seq);
    if (json_is_string(cmid)) {
        j->cmid_len = json_string_length(cmid);
        memcpy(j->cmid, json_string_value(cmid), j->cmid_len);
        j->op.cmid = j->cmid;
        j->op.cmid_len = j->cmid_len;
    }
    j->job.exec = msgop_exec;
    j->job.done = msgop_done;
    j->job.reset = ws_job_reset;
    j->job.room_id = room;
    return j;
}

/* {"type":"edit","room","seq","body","client_msg_id"?} */
static void op_edit(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *body = json_object_get(msg, "body");
    struct ws_job *j;
    if (!json_is_string(body) || json_string_length(body) == 0) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "body (non-empty string) is required");
        return;
    }
    if ((int64_t)json_string_length(body) > app->cfg.max_body_text) {
        ws_send_error(c, id, CD_E_TOO_LARGE, "message body over --max-message-body");
        return;
    }
    if (!(j = msgop_new(app, c, msg, id, EV_EDIT))) return;
    j->body_len = json_string_length(body);
    j->body = xstrndup(json_string_value(body), j->body_len);
    j->op.body = j->body;
    j->op.body_len = j->body_len;
    ws_job_submit(j);
}

/* {"type":"delete","room","seq","client_msg_id"?} */
static void op_delete(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    struct ws_job *j = msgop_new(app, c, msg, id, EV_DELETE);
    if (j) ws_job_submit(j);
}

/* {"type":"react","room","seq","emoji","on":true|false,"client_msg_id"?} */
static void op_react(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *emoji = json_object_get(msg, "emoji"), *on = json_object_get(msg, "on");
    struct ws_job *j;
    if (!json_is_string(emoji) ||
        !chat_emoji_valid(json_string_value(emoji), json_string_length(emoji))) {
        ws_send_error(c, id, CD_E_INVALID_FIELD,
                      "emoji must be one emoji (1-32 bytes of UTF-8, at most 10 code points)");
        return;
    }
    if (!json_is_boolean(on)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "on (boolean) is required");
        return;
    }
    if (!(j = msgop_new(app, c, msg, id, EV_REACTION))) return;
    memcpy(j->emoji, json_string_value(emoji), json_string_length(emoji));
    j->op.emoji = j->emoji;
    j->op.emoji_len = json_string_length(emoji);
    j->op.on = json_is_true(on);
    ws_job_submit(j);
}

/* ---- delivered ---- */

static int delivered_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    for (size_t i = 0; i < j->npairs; i++) {
        int st = chat_delivered(ops, sc, j->pairs[2 * i], j->user, j->sid, j->pairs[2 * i + 1],
                                &j->pairs[2 * i + 1]);
        if (st != CD_OK) return st;
    }
    return CD_OK;
}

/* {"type":"delivered","rooms":[{"room","seq"}...],"id"}: the watermarks after the move. */
static void delivered_done(struct store_job *job)
{
    struct ws_job *j = (struct ws_job *)job;
    struct fan_ev ev = {.kind = FAN_REPLY, .request = 1, .origin = j->c, .origin_io = j->c->io};
    if (job->status != CD_OK) {
        ev.reply = error_frame(j->id, job->status);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < j->npairs; i++) {
            char rid[32];
            id_format(rid, sizeof(rid), 'r', j->pairs[2 * i]);
            json_array_append_new(
                arr, json_pack("{s:s,s:I}", "room", rid, "seq", (json_int_t)j->pairs[2 * i + 1]));
        }
        ev.reply =
            reply_frame(with_id(json_pack("{s:s,s:o}", "type", "delivered", "rooms", arr), j->id));
    }
    fanout_add(&j->app->fanout, &ev);
    ws_job_free(j);
}

/* One (room, seq) of a delivered request: the room must be one of the connection's. */
static int delivered_pair(struct conn *c, json_t *id, json_t *o, int64_t *room, int64_t *seq)
{
    json_t *s = json_object_get(o, "seq");
    if (!json_is_object(o) || !msg_room(c, o, id, room)) {
        if (!json_is_object(o))
            ws_send_error(c, id, CD_E_INVALID_FIELD, "rooms must hold {room, seq} objects");
        return 0;
    }
    if (!json_is_integer(s) || json_integer_value(s) < 0) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "seq (non-negative integer) is required");
        return 0;
    }
    *seq = json_integer_value(s);
    return 1;
}

/* {"type":"delivered","room","seq"} or {"type":"delivered","rooms":[{"room","seq"},...]} (at
 * most CHAT_DELIVERED_BATCH): this device (the connection's login session) has received the
 * rooms up to seq. Limited with `read` (--read-rate). */
static void op_delivered(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *rooms = json_object_get(msg, "rooms");
    size_t n = rooms ? json_array_size(rooms) : 1;
    struct ws_job *j;
    int64_t wait, *pairs;
    char key[24];
    int k;

    if (rooms && (!json_is_array(rooms) || n == 0 || n > CHAT_DELIVERED_BATCH)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "rooms must be an array of 1-100 {room, seq}");
        return;
    }
    pairs = xmalloc(2 * n * sizeof(*pairs));
    for (size_t i = 0; i < n; i++)
        if (!delivered_pair(c, id, rooms ? json_array_get(rooms, i) : msg, &pairs[2 * i],
                            &pairs[2 * i + 1])) {
            free(pairs);
            return;
        }
    k = snprintf(key, sizeof(key), "%lld", (long long)c->user_id);
    if ((wait = limiter_take(&app->reads, key, (size_t)k, clock_unix_ms()))) {
        free(pairs);
        ws_send_retry(app, c, id, wait);
        return;
    }
    j = ws_job_new(app, c, id);
    j->pairs = pairs;
    j->npairs = n;
    j->sid = hub_conn_sid(c);
    j->job.exec = delivered_exec;
    j->job.done = delivered_done;
    j->job.room_id = n == 1 ? pairs[0] : 0;
    ws_job_submit(j);
}

static void op_typing(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    char key[64];
    int64_t room, wait;
    int n;

    if (!msg_room(c, msg, id, &room)) return;
    n = snprintf(key, sizeof(key), "%lld:%lld", (long long)c->user_id, (long long)room);
    if ((wait = limiter_take(&app->typing, key, (size_t)n, clock_unix_ms()))) {
        ws_send_retry(app, c, id, wait);
        return;
    }
    hub_typing(c, room);
}

static void op_sync(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *rooms = json_object_get(msg, "rooms"), *empty = NULL;
    (void)app;
    if (rooms && !json_is_object(rooms)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "rooms must be an object {room_id: last_seq}");
        hub_release(c);
        return;
    }
    if (!rooms) rooms = empty = json_object(); /* nothing to replay: just start live delivery */
    hub_sync(c, id, rooms);
    json_decref(empty);
}

/* The socket lives while its access token would still be accepted: until exp + --token-leeway,
 * closed with 4002 by the tick (up to two seconds later). A `refresh` moves the deadline. */
static void ws_set_expiry(struct app *app, struct conn *c, int64_t exp)
{
    int64_t left = exp + app->cfg.token_leeway - clock_unix_ms() / 1000;
    if (left < 0) left = 0;
    if (left > INT32_MAX) left = INT32_MAX;
    /* io->now_s lags the clock by up to a second: one more keeps the close after the expiry. */
    c->deadline = c->io->now_s + (uint32_t)left + 1;
}

void api_ws_deadline(struct conn *c)
{
    conn_ws_close(c, WS_CLOSE_TOKEN_EXPIRED, "token expired");
}

/* {"type":"refresh","access_token":JWT}: a valid token of the same user replaces the socket's
 * (its expiry, its session); the reply is {"type":"refreshed","exp":...}. A bad, expired or
 * revoked token is `unauthorized`, another user's `forbidden`: the socket keeps its old token. */
static void op_refresh(struct app *app, struct conn *c, json_t *msg, json_t *id)
{
    json_t *t = json_object_get(msg, "access_token"), *o;
    struct jwt_claims cl;

    if (!json_is_string(t) || json_string_length(t) == 0) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "access_token (string) is required");
        return;
    }
    if (api_verify_claims(app, json_string_value(t), json_string_length(t), &cl) != CD_OK) {
        ws_send_error(c, id, CD_E_UNAUTHORIZED, "invalid, expired or revoked access token");
        return;
    }
    if (cl.sub != c->user_id) {
        ws_send_error(c, id, CD_E_FORBIDDEN, "the access token is another user's");
        return;
    }
    hub_conn_set_sid(c, cl.sid);
    ws_set_expiry(app, c, cl.exp);
    o = json_pack("{s:s,s:I}", "type", "refreshed", "exp", (json_int_t)cl.exp);
    ws_send_json(c, with_id(o, id));
}

static const struct ws_op ws_ops[] = {
    {"send", op_send},   {"sync", op_sync},           {"read", op_read}, {"typing", op_typing},
    {"ping", op_ping},   {"refresh", op_refresh},     {"edit", op_edit}, {"delete", op_delete},
    {"react", op_react}, {"delivered", op_delivered},
};

void api_ws_message(struct conn *c, uint8_t *data, size_t len)
{
    json_error_t err;
    json_t *msg, *id, *type;

    if (ws_send_fast(c->io->srv->app, c, data, len)) return;
    msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(msg)) {
        ws_send_error(c, NULL, CD_E_INVALID_JSON, "message must be a JSON object");
        json_decref(msg);
        return;
    }
    id = json_object_get(msg, "id");
    if (id &&
        !((json_is_string(id) && json_string_length(id) <= WS_ID_MAX) || json_is_integer(id))) {
        ws_send_error(c, NULL, CD_E_INVALID_FIELD, "id must be a string (<= 64 bytes) or integer");
        json_decref(msg);
        return;
    }
    type = json_object_get(msg, "type");
    if (!json_is_string(type)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "type (string) is required");
        json_decref(msg);
        return;
    }
    for (size_t i = 0; i < sizeof(ws_ops) / sizeof(ws_ops[0]); i++)
        if (!strcmp(ws_ops[i].type, json_string_value(type))) {
            /* The first request of a connection starts its live delivery (sync does it after
             * positioning its rooms; a refresh is about the connection, not the chat). */
            if (ws_ops[i].handler != op_sync && ws_ops[i].handler != op_refresh) hub_release(c);
            ws_ops[i].handler(c->io->srv->app, c, msg, id);
            json_decref(msg);
            return;
        }
    hub_release(c);
    ws_send_error(c, id, CD_E_UNKNOWN_TYPE, NULL);
    json_decref(msg);
}

void api_ws_close(struct conn *c)
{
    hub_conn_close(c);
}

/* The connection's rooms are subscribed: greet it and start reading its requests. */
void api_ws_ready(struct conn *c, uint32_t nrooms)
{
    struct app *app = c->io->srv->app;
    char uid[24];
    id_format(uid, sizeof(uid), 'u', c->user_id);
    ws_send_json(c, json_pack("{s:s,s:s,s:s,s:I,s:{s:I,s:I,s:I}}", "type", "hello", "user", uid,
                              "server", "chatd " CHATD_VERSION, "rooms", (json_int_t)nrooms,
                              "limits", "max_message", (json_int_t)app->cfg.ws_max_message,
                              "max_body", (json_int_t)app->cfg.max_body_text, "idle_timeout",
                              (json_int_t)app->cfg.ws_idle));
    conn_resume(c);
}

/* ---- upgrade ---- */

void api_ws_upgrade(struct api_req *r)
{
    char accept[29], tok[JWT_MAX_TOKEN + 1];
    struct slice h;
    size_t toklen = 0;
    struct jwt_claims cl;
    uint32_t online;
    int rc;

    /* The header as on every other route (one parser); else ?access_token= for browsers. */
    if ((rc = http_bearer_token(r->http, &h)) == 1 && h.len <= JWT_MAX_TOKEN) {
        toklen = h.len;
        memcpy(tok, h.p, toklen);
    } else if (rc == 0 && http_query_value(r->http, "access_token", tok, sizeof(tok)) == 1) {
        toklen = strlen(tok);
    }
    if (!toklen) {
        metrics_auth_failure(&r->app->metrics, AUTH_FAIL_TOKEN);
        api_respond_error(r, CD_E_UNAUTHORIZED,
                          rc < 0 ? "malformed Authorization header (expected Bearer <token>)"
                                 : "missing or invalid access token");
        return;
    }
    if ((rc = api_verify_claims(r->app, tok, toklen, &cl)) != CD_OK) {
        api_send_error(r->app, r->c, r->route, r->http->start_ms, rc, NULL,
                       "WWW-Authenticate: Bearer\r\n");
        return;
    }
    if ((rc = http_ws_check(r->http, accept)) != CD_OK) {
        api_send_error(r->app, r->c, r->route, r->http->start_ms, rc, NULL,
                       rc == CD_E_UPGRADE_REQUIRED ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    online = presence_connect(r->app->presence, cl.sub);
    if (!online) {
        api_send_error(r->app, r->c, r->route, r->http->start_ms, CD_E_RATE_LIMITED,
                       "too many open connections for this user (--max-conns-per-user)",
                       "Retry-After: 1\r\n");
        return;
    }
    metrics_http(&r->app->metrics, r->route, 101, (net_now_ms() - r->http->start_ms) * 1000);
    http_upgrade_ws(r->c, accept);
    r->c->user_id = cl.sub;
    ws_set_expiry(r->app, r->c, cl.exp);
    hub_conn_open(r->c, cl.sub, cl.sid, online == 1); /* hello follows once its rooms are loaded */
}
