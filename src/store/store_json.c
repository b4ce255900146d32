/* store_json.c - JSON of stored entries (see store_json.h). */
#include "store/store_json.h"

#include <stdio.h>
#include <string.h>

void store_json_user_ref(struct jsonw *w, int64_t user)
{
    if (user == 0)
        jsonw_lit(w, "\"system\"");
    else
        jsonw_id(w, 'u', user);
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

void store_json_message_head(struct jsonw *w, int64_t room, int64_t seq, int64_t sender)
{
    jsonw_lit(w, "{\"type\":\"message\",\"room\":");
    jsonw_id(w, 'r', room);
    jsonw_key(w, "seq", 0);
    jsonw_int(w, seq);
    jsonw_key(w, "msg_id", 0);
    jsonw_msg_id(w, room, seq);
    jsonw_key(w, "sender", 0);
    store_json_user_ref(w, sender);
}

void store_event_json(struct jsonw *w, const struct store_event *ev)
{
    if (ev->kind != EV_MESSAGE) {
        meta_json(w, ev);
        return;
    }
    store_json_message_head(w, ev->room_id, ev->seq, ev->sender);
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

void store__user_created_json(struct jsonw *w, char id[32], int64_t user, const char *username,
                              int64_t ts)
{
    snprintf(id, 32, "uc_%lld", (long long)user);
    jsonw_lit(w, "{\"type\":\"user.created\",\"user\":");
    jsonw_id(w, 'u', user);
    jsonw_key(w, "username", 0);
    jsonw_str(w, username, strlen(username));
    jsonw_key(w, "ts", 0);
    jsonw_int(w, ts);
    jsonw_lit(w, "}");
}

void store__room_created_json(struct jsonw *w, char id[32], const struct store_room *r)
{
    snprintf(id, 32, "rc_%lld", (long long)r->id);
    jsonw_lit(w, "{\"type\":\"room.created\",\"room\":");
    jsonw_id(w, 'r', r->id);
    jsonw_key(w, "kind", 0);
    jsonw_lit(w, r->kind == ROOM_DIRECT ? "\"direct\"" : "\"group\"");
    jsonw_key(w, "name", 0);
    jsonw_str(w, r->name, strlen(r->name));
    jsonw_key(w, "topic", 0);
    jsonw_str(w, r->topic, strlen(r->topic));
    jsonw_key(w, "by", 0);
    jsonw_id(w, 'u', r->created_by);
    jsonw_key(w, "ts", 0);
    jsonw_int(w, r->created_at);
    jsonw_lit(w, "}");
}

size_t store__log_event_id(char *buf, int kind, int64_t room, int64_t seq)
{
    int n = snprintf(buf, 48, "%c_%lld_%lld", kind == EV_MESSAGE ? 'm' : 'e', (long long)room,
                     (long long)seq);
    return n > 0 ? (size_t)n : 0;
}

const char *store__log_event_type(int kind)
{
    static const char *const types[] = {
        [EV_MESSAGE] = "message", [EV_MEMBER] = "member", [EV_ROOM] = "room",
        [EV_EDIT] = "edit",       [EV_DELETE] = "delete", [EV_REACTION] = "reaction"};
    return kind >= EV_MESSAGE && kind <= EV_REACTION && types[kind] ? types[kind] : "room";
}
