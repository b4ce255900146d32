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
    jsonw_lit(w, ev->kind == EV_MEMBER ? "{\"type\":\"member\",\"room\":"
                                       : "{\"type\":\"room\",\"room\":");
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

void store_event_json(struct jsonw *w, const struct store_event *ev)
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
    store_json_user_ref(w, ev->sender);
    jsonw_key(w, "body", 0);
    jsonw_str(w, ev->body, ev->body_len);
    jsonw_key(w, "ts", 0);
    jsonw_int(w, ev->ts);
    jsonw_key(w, "client_msg_id", 0);
    if (ev->client_msg_id)
        jsonw_str(w, ev->client_msg_id, ev->cmid_len);
    else
        jsonw_lit(w, "null");
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
    return kind == EV_MESSAGE ? "message" : kind == EV_MEMBER ? "member" : "room";
}
