#include "chat/msgops.h"

#include <string.h>

#include "chat/events.h"
#include "util/jsonw.h"
#include "util/status.h"

/* Decode one UTF-8 sequence at s (n bytes left): its length, or 0 when invalid (overlong,
 * surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t v;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        v = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        v = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        v = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

int chat_emoji_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, cps = 0;
    int wide = 0;

    if (!s || len == 0 || len > CHAT_EMOJI_MAX_BYTES) return 0;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_next(p + i, len - i, &cp);
        if (!k) return 0;
        i += k;
        if (++cps > CHAT_EMOJI_MAX_CPS) return 0;
        if (cp < 0x80) {
            if (!((cp >= '0' && cp <= '9') || cp == '#' || cp == '*')) return 0;
            continue;
        }
        if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
            (cp >= 0x2000 && cp <= 0x200b) || cp == 0x3000)
            return 0; /* C1 controls, separators and spaces */
        wide = 1;
    }
    return wide;
}

/* Membership of user (role in *m): CD_E_NOT_FOUND when the room does not exist either. */
static int member_of(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                     struct store_member *m)
{
    int rc = ops->member_get(sc, room, user, m);
    if (rc == CD_E_NOT_FOUND) {
        struct store_room r;
        return ops->room_get(sc, room, &r) == CD_E_NOT_FOUND ? CD_E_NOT_FOUND : CD_E_NOT_MEMBER;
    }
    return rc;
}

/* A message at seq (not a member, room or op entry): CD_E_NOT_FOUND otherwise. */
static int message_at(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t seq,
                      struct store_msg *m)
{
    int rc;
    if (seq <= 0) return CD_E_NOT_FOUND;
    rc = ops->msg_get(sc, room, seq, m);
    if (rc == CD_OK && m->kind != EV_MESSAGE) rc = CD_E_NOT_FOUND;
    return rc;
}

int chat_send_linked(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                     int64_t sender, const char *body, size_t body_len, const char *cmid,
                     size_t cmid_len, int64_t reply_to, int64_t thread, int64_t now_ms,
                     struct chat_out *out, struct chat_sent *res)
{
    struct store_member mem;
    struct store_msg m;
    int rc;

    memset(res, 0, sizeof(*res));
    if (reply_to || thread) {
        if ((rc = member_of(ops, sc, room, sender, &mem)) != CD_OK) return rc;
        if (reply_to && (rc = message_at(ops, sc, room, reply_to, &m)) != CD_OK) return rc;
        if (thread) {
            if ((rc = message_at(ops, sc, room, thread, &m)) != CD_OK) return rc;
            if (m.deleted) return CD_E_GONE;
            if (m.thread) return CD_E_INVALID_FIELD; /* a reply in a thread is not a root */
        }
    }
    return chat__send(ops, sc, room, sender, body, body_len, cmid, cmid_len, reply_to, thread,
                      now_ms, out, res);
}

struct orig {
    int64_t seq, ts;
    int kind;
};

static int orig_row(void *ud, const struct store_event *ev)
{
    struct orig *o = ud;
    o->seq = ev->seq;
    o->ts = ev->ts;
    o->kind = ev->kind;
    return 1;
}

/* The stored details of an op entry (no type, room or seq: see events_log_json). */
static void op_details(struct jsonw *w, const struct chat_op *op, int64_t now_ms)
{
    jsonw_lit(w, "{\"target\":");
    jsonw_int(w, op->target);
    if (op->kind == EV_EDIT) {
        jsonw_key(w, "body", 0);
        jsonw_str(w, op->body, op->body_len);
        jsonw_key(w, "edited_at", 0);
        jsonw_int(w, now_ms);
    } else if (op->kind == EV_REACTION) {
        jsonw_key(w, "emoji", 0);
        jsonw_str(w, op->emoji, op->emoji_len);
    }
    jsonw_key(w, "user", 0);
    jsonw_id(w, 'u', op->user);
    if (op->kind == EV_REACTION) jsonw_lit(w, op->on ? ",\"on\":true" : ",\"on\":false");
    jsonw_key(w, "ts", 0);
    jsonw_int(w, now_ms);
    jsonw_lit(w, "}");
}

int chat_msg_op(const struct store_ops *ops, struct store_conn *sc, const struct chat_op *op,
                int64_t now_ms, struct chat_out *out, struct chat_sent *res)
{
    struct store_event ev = {.room_id = op->room,
                             .kind = op->kind,
                             .sender = op->user,
                             .ts = now_ms,
                             .client_msg_id = op->cmid,
                             .cmid_len = op->cmid_len};
    struct fan_ev fe = {.kind = FAN_LOG, .room = op->room};
    struct store_member mem;
    struct store_msg m;
    struct jsonw w;
    int rc;

    memset(res, 0, sizeof(*res));
    if (op->kind != EV_EDIT && op->kind != EV_DELETE && op->kind != EV_REACTION)
        return CD_E_INVALID_FIELD;
    if ((rc = member_of(ops, sc, op->room, op->user, &mem)) != CD_OK) return rc;
    if (op->cmid) { /* a resend: the original's seq, whatever happened since */
        struct orig o = {0};
        rc = ops->event_by_client_id(sc, op->room, op->user, op->cmid, op->cmid_len, orig_row, &o);
        if (rc == CD_OK) {
            if (o.kind != op->kind) return CD_E_CONFLICT;
            res->seq = o.seq;
            res->ts = o.ts;
            res->duplicate = 1;
            res->changed = 1;
            return CD_OK;
        }
        if (rc != CD_E_NOT_FOUND) return rc;
    }
    if ((rc = message_at(ops, sc, op->room, op->target, &m)) != CD_OK) return rc;
    if (m.deleted) return CD_E_GONE;
    if (op->kind == EV_EDIT && m.sender != op->user) return CD_E_FORBIDDEN;
    if (op->kind == EV_DELETE && m.sender != op->user && mem.role < ROLE_ADMIN)
        return CD_E_FORBIDDEN;
    if (op->kind == EV_REACTION) {
        int changed = 0;
        if (!chat_emoji_valid(op->emoji, op->emoji_len)) return CD_E_INVALID_FIELD;
        rc = ops->reaction_set(sc, op->room, op->target, op->user, op->emoji, op->emoji_len, op->on,
                               now_ms, &changed);
        if (rc != CD_OK) return rc;
        if (!changed) return CD_OK; /* already so: no entry, res->changed 0 */
    }
    jsonw_init(&w, 192 + op->body_len + op->body_len / 8);
    op_details(&w, op, now_ms);
    ev.body = jsonw_text(&w);
    ev.body_len = jsonw_text_len(&w);
    if ((rc = ops->event_append(sc, &ev)) != CD_OK) goto done;
    if (op->kind == EV_EDIT) {
        rc = ops->msg_edit(sc, op->room, op->target, op->body, op->body_len, now_ms, ev.seq);
        /* search finds the new text, never the old (the index is keyed by the target) */
        if (rc == CD_OK)
            rc = ops->search_index_put(sc, op->room, op->target, op->body, op->body_len);
    } else if (op->kind == EV_DELETE) {
        struct jsonw e; /* what the message's edit entries keep: no text */
        jsonw_init(&e, 64);
        jsonw_lit(&e, "{\"target\":");
        jsonw_int(&e, op->target);
        jsonw_lit(&e, ",\"body\":\"\",\"deleted\":true}");
        rc = ops->msg_delete(sc, op->room, op->target, ev.seq, jsonw_text(&e), jsonw_text_len(&e));
        jsonw_free(&e);
        /* its attachments are no longer shown nor readable through it (an upload nothing
         * references any more expires), and its text is never found again */
        if (rc == CD_OK) rc = ops->attachments_unref_message(sc, op->room, op->target);
        if (rc == CD_OK) rc = ops->search_index_delete(sc, op->room, op->target);
    } else {
        rc = ops->msg_touch(sc, op->room, op->target, ev.seq);
    }
    if (rc != CD_OK) goto done;
    res->seq = ev.seq;
    res->ts = ev.ts;
    res->changed = 1;
    fe.seq = ev.seq;
    fe.frame = events_log_frame(&ev);
    chat_out_add(out, &fe);
done:
    jsonw_free(&w);
    return rc;
}

int chat_delivered(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                   int64_t session, int64_t seq, int64_t *out)
{
    struct store_member m;
    int rc = member_of(ops, sc, room, user, &m);
    if (rc != CD_OK) return rc;
    if (seq < 0) return CD_E_INVALID_FIELD;
    return ops->delivered_mark(sc, room, user, session, seq, out);
}

int chat_read_receipt(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                      int64_t user, int64_t old, int64_t marker, struct chat_out *out)
{
    struct fan_ev fe = {.kind = FAN_RECEIPT, .room = room, .user = user, .seq = marker};
    struct store_room r;
    struct jsonw w;
    int share = 1, rc;

    if (marker <= old) return CD_OK;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if (r.member_count > CHAT_RECEIPT_ROOM_MAX) return CD_OK;
    if ((rc = ops->settings_get(sc, user, &share)) != CD_OK) return rc;
    if (!share) return CD_OK;
    jsonw_init(&w, 96);
    jsonw_lit(&w, "{\"type\":\"receipt\",\"room\":");
    jsonw_id(&w, 'r', room);
    jsonw_key(&w, "user", 0);
    jsonw_id(&w, 'u', user);
    jsonw_key(&w, "seq", 0);
    jsonw_int(&w, marker);
    jsonw_lit(&w, "}");
    fe.frame = events_frame(&w);
    jsonw_free(&w);
    chat_out_add(out, &fe);
    return CD_OK;
}
