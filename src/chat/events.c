#include "chat/events.h"

#include <string.h>

#include "net/ws_codec.h"

static const char *const role_names[] = {"member", "admin", "owner"};

const char *events_role_name(int role)
{
    return role >= 0 && role <= ROLE_OWNER ? role_names[role] : "member";
}

int events_role_parse(const char *s, int *role)
{
    for (int i = 0; i <= ROLE_OWNER; i++)
        if (!strcmp(s, role_names[i])) {
            *role = i;
            return 1;
        }
    return 0;
}

/* Member and room entries store their details as a JSON object without type, room or seq
 * (the store assigns the seq at the append: nothing stored embeds one); the client's object
 * is {"type","room","seq"} followed by those details. Entries written by chatd 0.1 stored
 * the whole client object, seq included (they start with {"type"), and are copied as is. */
static void meta_json(struct jsonw *w, const struct store_event *ev)
{
    static const char legacy[] = "{\"type\"";
    if (ev->body_len >= sizeof(legacy) - 1 && !memcmp(ev->body, legacy, sizeof(legacy) - 1)) {
        jsonw_raw(w, ev->body, ev->body_len);
        return;
    }
    static const char *const types[] = {
        [EV_MEMBER] = "{\"type\":\"member\",\"room\":",
        [EV_ROOM] = "{\"type\":\"room\",\"room\":",
        [EV_EDIT] = "{\"type\":\"edit\",\"room\":",
        [EV_DELETE] = "{\"type\":\"delete\",\"room\":",
        [EV_REACTION] = "{\"type\":\"reaction\",\"room\":",
    };
    jsonw_lit(w,
              ev->kind >= EV_MEMBER && ev->kind <= EV_REACTION ? types[ev->kind] : types[EV_ROOM]);
    jsonw_id(w, 'r', ev->room_id);
    jsonw_key(w, "seq", 0);
    jsonw_int(w, ev->seq);
    if (ev->body_len > 2 && ev->body[0] == '{') { /* ,"user":...} */
        jsonw_lit(w, ",");
        jsonw_raw(w, ev->body + 1, ev->body_len - 1);
    } else {
        jsonw_lit(w, "}");
    }
}

/* The derived state of a message read with messages_page: ,"edited_at",,"deleted",
 * "reply_count","last_reply_seq","reactions":[{"emoji","count","me"}],"state_seq". */
static void state_json(struct jsonw *w, const struct store_event *ev)
{
    if (ev->edited_at) {
        jsonw_key(w, "edited_at", 0);
        jsonw_int(w, ev->edited_at);
    }
    if (ev->deleted) jsonw_lit(w, ",\"deleted\":true");
    if (ev->reply_count) {
        jsonw_key(w, "reply_count", 0);
        jsonw_int(w, ev->reply_count);
        jsonw_key(w, "last_reply_seq", 0);
        jsonw_int(w, ev->last_reply_seq);
    }
    if (ev->reactions_len) {
        const char *p = ev->reactions, *end = ev->reactions + ev->reactions_len;
        int first = 1;
        jsonw_lit(w, ",\"reactions\":[");
        while (p < end) { /* "emoji\tcount\tme" lines */
            const char *nl = memchr(p, '\n', (size_t)(end - p)), *t1, *t2;
            if (!nl) nl = end;
            t1 = memchr(p, '\t', (size_t)(nl - p));
            t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
            if (t2) {
                int64_t n = 0;
                for (const char *d = t1 + 1; d < t2 && *d >= '0' && *d <= '9'; d++)
                    n = n * 10 + (*d - '0');
                jsonw_lit(w, first ? "{\"emoji\":" : ",{\"emoji\":");
                jsonw_str(w, p, (size_t)(t1 - p));
                jsonw_key(w, "count", 0);
                jsonw_int(w, n);
                jsonw_lit(w, t2 + 1 < nl && t2[1] == '1' ? ",\"me\":true}" : ",\"me\":false}");
                first = 0;
            }
            p = nl + 1;
        }
        jsonw_lit(w, "]");
    }
    if (ev->state_seq) {
        jsonw_key(w, "state_seq", 0);
        jsonw_int(w, ev->state_seq);
    }
}

void events_log_json(struct jsonw *w, const struct store_event *ev)
{
    if (ev->kind != EV_MESSAGE) {
        meta_json(w, ev);
        return;
    }
    jsonw_lit(w, "{\"type\":\"message\",\"room\":");
    jsonw_id(w, 'r', ev->room_id);
    jsonw_key(w, "seq", 0);
    jsonw_int(w, ev->seq);
    jsonw_key(w, "msg_id", 0);
    jsonw_msg_id(w, ev->room_id, ev->seq);
    jsonw_key(w, "sender", 0);
    jsonw_id(w, 'u', ev->sender);
    jsonw_key(w, "body", 0);
    jsonw_str(w, ev->body, ev->body_len);
    jsonw_key(w, "ts", 0);
    jsonw_int(w, ev->ts);
    jsonw_key(w, "client_msg_id", 0);
    if (ev->client_msg_id)
        jsonw_str(w, ev->client_msg_id, ev->cmid_len);
    else
        jsonw_lit(w, "null");
    if (ev->extra_len) { /* stored by chat/ as JSON members ("attachments":[...]) */
        jsonw_lit(w, ",");
        jsonw_raw(w, ev->extra, ev->extra_len);
    }
    if (ev->reply_to) {
        jsonw_key(w, "reply_to", 0);
        jsonw_int(w, ev->reply_to);
    }
    if (ev->thread) {
        jsonw_key(w, "thread", 0);
        jsonw_int(w, ev->thread);
    }
    if (ev->edited_at || ev->deleted || ev->reply_count || ev->state_seq || ev->reactions)
        state_json(w, ev);
    jsonw_lit(w, "}");
}

struct rbuf *events_frame(const struct jsonw *w)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t len = jsonw_text_len(w);
    size_t h = ws_frame_header(hdr, WS_OP_TEXT, len);
    struct rbuf *b = rbuf_new(h + len);
    memcpy(b->data, hdr, h);
    memcpy(b->data + h, jsonw_text(w), len);
    return b;
}

struct rbuf *events_log_frame(const struct store_event *ev)
{
    struct jsonw w;
    struct rbuf *b;
    jsonw_init(&w, 192 + ev->body_len + ev->body_len / 8 + ev->extra_len);
    events_log_json(&w, ev);
    b = events_frame(&w);
    jsonw_free(&w);
    return b;
}

void events_member_json(struct jsonw *w, int64_t user, const char *action, int role, int64_t by,
                        int64_t member_count, int64_t ts)
{
    jsonw_lit(w, "{\"user\":");
    jsonw_id(w, 'u', user);
    jsonw_key(w, "action", 0);
    jsonw_str(w, action, strlen(action));
    jsonw_key(w, "role", 0);
    if (strcmp(action, "leave") && strcmp(action, "kick"))
        jsonw_str(w, events_role_name(role), strlen(events_role_name(role)));
    else
        jsonw_lit(w, "null");
    jsonw_key(w, "by", 0);
    jsonw_id(w, 'u', by);
    jsonw_key(w, "member_count", 0);
    jsonw_int(w, member_count);
    jsonw_key(w, "ts", 0);
    jsonw_int(w, ts);
    jsonw_lit(w, "}");
}

void events_room_json(struct jsonw *w, const char *name, const char *topic, int64_t by, int64_t ts)
{
    jsonw_lit(w, "{\"name\":");
    jsonw_str(w, name, strlen(name));
    jsonw_key(w, "topic", 0);
    jsonw_str(w, topic, strlen(topic));
    jsonw_key(w, "by", 0);
    jsonw_id(w, 'u', by);
    jsonw_key(w, "ts", 0);
    jsonw_int(w, ts);
    jsonw_lit(w, "}");
}
