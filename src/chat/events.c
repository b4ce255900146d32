#include "chat/events.h"

#include <string.h>

#include "net/ws_codec.h"
#include "store/store_json.h"

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

void events_log_json(struct jsonw *w, const struct store_event *ev)
{
    store_event_json(w, ev);
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

void events_log_json_mark(struct jsonw *w, const struct store_event *ev, int blocked)
{
    store_event_json(w, ev);
    if (blocked) {
        w->len--; /* reopen the object */
        jsonw_lit(w, ",\"blocked\":true}");
    }
}

struct rbuf *events_log_frame_mark(const struct store_event *ev, int blocked)
{
    struct jsonw w;
    struct rbuf *b;
    jsonw_init(&w, 192 + ev->body_len + ev->body_len / 8 + ev->extra_len);
    events_log_json_mark(&w, ev, blocked);
    b = events_frame(&w);
    jsonw_free(&w);
    return b;
}

struct rbuf *events_log_frame(const struct store_event *ev)
{
    return events_log_frame_mark(ev, 0);
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
    store_json_user_ref(w, by);
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
