/* hub_presence.c - see hub.h and hub_int.h: presence events for a user's small rooms, and
 * typing indicators with their expiry. */
#include "chat/hub_int.h"

#include <stdlib.h>
#include <string.h>

#include "chat/events.h"
#include "util/jsonw.h"

void hub_publish_presence(int64_t user, const char *status, int64_t last_seen, const int64_t *rooms,
                          uint32_t nrooms)
{
    struct fan_ev ev = {.kind = FAN_PRESENCE, .user = user};
    struct jsonw w;

    if (!nrooms) return;
    ev.rooms = xmalloc(nrooms * sizeof(int64_t));
    memcpy(ev.rooms, rooms, nrooms * sizeof(int64_t));
    ev.nrooms = nrooms;
    jsonw_init(&w, 128);
    jsonw_lit(&w, "{\"type\":\"presence\",\"user\":");
    jsonw_id(&w, 'u', user);
    jsonw_key(&w, "status", 0);
    jsonw_str(&w, status, strlen(status));
    jsonw_key(&w, "last_seen", 0);
    if (last_seen)
        jsonw_int(&w, last_seen);
    else
        jsonw_lit(&w, "null");
    jsonw_lit(&w, "}");
    ev.frame = events_frame(&w);
    jsonw_free(&w);
    fanout_publish_one(hub__env.fanout, &ev);
}

int64_t *hub__presence_rooms(struct hub_conn *hc, uint32_t *n)
{
    int64_t *rooms = xmalloc((hc->n ? hc->n : 1) * sizeof(int64_t));
    *n = 0;
    for (uint32_t i = 0; i < hc->n; i++)
        if (hc->subs[i]->room->member_count <= hub__env.presence_max_room)
            rooms[(*n)++] = hc->subs[i]->room->id;
    return rooms;
}

void hub__publish_presence(struct hub_conn *hc, const char *status, int64_t last_seen)
{
    uint32_t n;
    int64_t *rooms = hub__presence_rooms(hc, &n);
    hub_publish_presence(hc->user, status, last_seen, rooms, n);
    free(rooms);
}

/* ---- typing ---- */

static void publish_typing(int64_t room, int64_t user, int on)
{
    struct fan_ev ev = {.kind = FAN_TYPING, .room = room, .user = user};
    struct jsonw w;
    jsonw_init(&w, 128);
    jsonw_lit(&w, "{\"type\":\"typing\",\"room\":");
    jsonw_id(&w, 'r', room);
    jsonw_key(&w, "user", 0);
    jsonw_id(&w, 'u', user);
    jsonw_key(&w, "typing", 0);
    jsonw_lit(&w, on ? "true" : "false");
    jsonw_key(&w, "expires_ms", 0);
    jsonw_int(&w, on ? (int64_t)hub__env.typing_ttl_s * 1000 : 0);
    jsonw_lit(&w, "}");
    ev.frame = events_frame(&w);
    jsonw_free(&w);
    fanout_publish_one(hub__env.fanout, &ev);
}

void hub_typing(struct conn *c, int64_t room)
{
    struct hub_conn *hc = c->app;
    struct hub *h = hub__of(c->io);
    uint32_t expires = c->io->now_s + hub__env.typing_ttl_s;

    publish_typing(room, hc->user, 1);
    for (uint32_t i = 0; i < h->ntyping; i++)
        if (h->typing[i].hc == hc && h->typing[i].room == room) {
            h->typing[i].expires = expires;
            return;
        }
    if (h->ntyping == h->captyping) {
        h->captyping = h->captyping ? h->captyping * 2 : 16;
        h->typing = xrealloc(h->typing, h->captyping * sizeof(*h->typing));
    }
    h->typing[h->ntyping++] = (struct typing_ent){hc, room, expires};
}

void hub__typing_drop(struct hub *h, struct hub_conn *hc, int publish)
{
    for (uint32_t i = 0; i < h->ntyping;) {
        if (h->typing[i].hc == hc) {
            if (publish) publish_typing(h->typing[i].room, hc->user, 0);
            h->typing[i] = h->typing[--h->ntyping];
        } else {
            i++;
        }
    }
}

void hub_tick(struct net_io *io)
{
    struct hub *h = hub__of(io);
    for (uint32_t i = 0; i < h->ntyping;) {
        if (h->typing[i].expires <= io->now_s) {
            publish_typing(h->typing[i].room, h->typing[i].hc->user, 0);
            h->typing[i] = h->typing[--h->ntyping];
        } else {
            i++;
        }
    }
}
