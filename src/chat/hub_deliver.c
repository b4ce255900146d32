/* hub_deliver.c - see hub.h and hub_int.h: a committed batch (chat/fanout.h) delivered to this
 * thread's connections. Log entries go to each subscription's stream (hub_sub.c), or, for a
 * run of one room's messages, as one shared frame to every subscriber that is exactly at the
 * run's start; replies go to their origin only. */
#include "chat/hub_int.h"
#include "chat/people.h"

#include <string.h>

#include "util/status.h"

static struct hub_conn *origin_here(struct net_io *io, const struct fan_ev *ev)
{
    if (!ev->origin || ev->origin_io != io) return NULL;
    return ev->origin->app;
}

/* One log entry for one subscription; the origin connection gets its ack in the message's
 * place. Returns 1 when s belongs to the origin (the ack is handled). */
static int sub_entry(struct hub_sub *s, const struct fan_ev *ev, struct hub_conn *origin)
{
    return hub_sub_entry(s, ev->seq, ev->frame, origin && s->hc == origin ? ev->reply : NULL);
}

static void deliver_log(struct hub *h, const struct fan_ev *ev)
{
    struct hub_room *r;
    struct hub_user *u = NULL;
    struct hub_conn *origin = origin_here(h->io, ev);
    int replied = 0;

    if (ev->member == FAN_M_JOIN && (u = imap_get(&h->users, ev->user)))
        for (struct hub_conn *hc = u->conns; hc; hc = hc->user_next)
            if (conn_alive(hc->c)) hub__subscribe(h, hc, ev->room, ev->seq, 0, ev->member_count);
    r = hub__room_get(h, ev->room, 0);
    if (r) {
        if (ev->seq > r->last_seq) r->last_seq = ev->seq;
        if (ev->member) r->member_count = ev->member_count;
        for (uint32_t i = 0; i < r->n; i++)
            replied |= sub_entry(r->subs[i], ev, origin);
    }
    if (origin && ev->reply && !replied) hub__send(origin, ev->reply);
    if (ev->member == FAN_M_LEAVE && (u = imap_get(&h->users, ev->user)))
        for (struct hub_conn *hc = u->conns; hc; hc = hc->user_next) {
            struct hub_sub *s = hub__find_sub(hc, ev->room);
            if (!s) continue;
            /* Delivered already: drop now. Still replaying or held: the connection first gets
             * everything up to and including this entry, then the subscription ends. */
            s->leaving_seq = ev->seq;
            hub_sub_left(s);
        }
}

/* Length of the run of entries starting at ev[0]: messages of one room with consecutive seqs
 * and no membership change (those change who receives what). */
static uint32_t run_length(const struct fan_ev *ev, uint32_t left)
{
    uint32_t n = 1;
    if (ev[0].kind != FAN_LOG || ev[0].member) return 1;
    while (n < left && ev[n].kind == FAN_LOG && !ev[n].member && ev[n].room == ev[0].room &&
           ev[n].seq == ev[0].seq + n)
        n++;
    return n;
}

/* A run of n >= 2 entries of one room (one group commit's worth). The frames are concatenated
 * once, and every live subscriber that is exactly at the run's first seq gets ONE reference to
 * the whole run: under load the per-recipient cost is per batch, not per message (as the
 * fastest WebSocket servers do per topic). Others take the entries one by one. */
static void deliver_run(struct hub *h, const struct fan_ev *ev, uint32_t n)
{
    struct hub_room *r = hub__room_get(h, ev[0].room, 0);
    struct rbuf *all;
    size_t len = 0;
    uint32_t stamp = ++h->stamp;

    for (uint32_t k = 0; k < n; k++) {
        struct hub_conn *o = origin_here(h->io, &ev[k]);
        if (o) o->stamp = stamp; /* origins take the per-entry path (their acks) */
        len += ev[k].frame->len;
    }
    if (r) {
        if (ev[n - 1].seq > r->last_seq) r->last_seq = ev[n - 1].seq;
        all = rbuf_new(len);
        len = 0;
        for (uint32_t k = 0; k < n; k++) {
            memcpy(all->data + len, ev[k].frame->data, ev[k].frame->len);
            len += ev[k].frame->len;
        }
        for (uint32_t i = 0; i < r->n; i++) {
            struct hub_sub *s = r->subs[i];
            if (s->state == SUB_LIVE && s->next_seq == ev[0].seq && !s->nacks && !s->leaving_seq &&
                s->hc->stamp != stamp) {
                hub__send(s->hc, all);
                hub__tl_deliveries += n - 1; /* n entries in one frame */
                s->next_seq += n;
                continue;
            }
            for (uint32_t k = 0; k < n; k++)
                sub_entry(s, &ev[k], origin_here(h->io, &ev[k]));
        }
        rbuf_unref(all);
    }
    for (uint32_t k = 0; k < n; k++) { /* origins that are not (or no longer) in the room */
        struct hub_conn *o = origin_here(h->io, &ev[k]);
        if (o && ev[k].reply && (!r || !hub__find_sub(o, ev[k].room))) hub__send(o, ev[k].reply);
    }
}

/* The end of ev's delivery on its origin's thread: the origin's hold is dropped, and a request
 * it answered is no longer in flight. */
static void origin_done(struct net_io *io, const struct fan_ev *ev)
{
    if (!ev->origin || ev->origin_io != io) return;
    if (ev->request && ev->origin->app) hub__request_done(ev->origin->app);
    conn_release(ev->origin);
}

void hub_deliver(struct net_io *io, struct fan_batch *b)
{
    struct hub *h = hub__of(io);

    for (uint32_t i = 0; i < b->n; i++) {
        const struct fan_ev *ev = &b->ev[i];
        struct hub_conn *origin = origin_here(io, ev);
        uint32_t run;
        switch (ev->kind) {
        case FAN_LOG:
            run = run_length(ev, b->n - i);
            if (run == 1) {
                deliver_log(h, ev);
                break;
            }
            deliver_run(h, ev, run);
            for (uint32_t k = 0; k < run; k++, i++) /* the run's origins are released here */
                origin_done(io, &b->ev[i]);
            i--;
            continue;
        case FAN_REPLY:
            if (origin && ev->reply) hub__send(origin, ev->reply);
            break;
        case FAN_LOADED:
            if (!origin || !conn_alive(ev->origin)) break;
            if (ev->seq != CD_OK) /* storage did not answer: the client connects again */
                conn_ws_close(ev->origin, WS_CLOSE_TRY_AGAIN, "storage unavailable, retry");
            else
                hub__conn_loaded(h, origin, ev->rooms, ev->nrooms);
            break;
        case FAN_TYPING:
        case FAN_RECEIPT: { /* to the room's other users (the user's own get FAN_USER) */
            struct hub_room *r = hub__room_get(h, ev->room, 0);
            for (uint32_t k = 0; r && k < r->n; k++)
                if (r->subs[k]->hc->user != ev->user && r->subs[k]->state != SUB_HOLD)
                    hub__send(r->subs[k]->hc, ev->frame);
            break;
        }
        case FAN_PRESENCE:
            h->stamp++;
            for (uint32_t j = 0; j < ev->nrooms; j++) {
                struct hub_room *r = hub__room_get(h, ev->rooms[j], 0);
                for (uint32_t k = 0; r && k < r->n; k++) {
                    struct hub_conn *hc = r->subs[k]->hc;
                    if (hc->user == ev->user || hc->stamp == h->stamp) continue;
                    if (people_blocks(ev->user, hc->user)) continue; /* hidden from them */
                    hc->stamp = h->stamp;
                    hub__send(hc, ev->frame);
                }
            }
            break;
        case FAN_USER: {
            struct hub_user *u = imap_get(&h->users, ev->user);
            for (struct hub_conn *hc = u ? u->conns : NULL; hc; hc = hc->user_next)
                if (hc->c != ev->origin) hub__send(hc, ev->frame);
            if (origin && ev->reply) hub__send(origin, ev->reply);
            break;
        }
        case FAN_BLOCK: /* the presence filter (chat/people.h) is node-wide, already noted */
            break;
        case FAN_SESSION_END:
            hub__session_end(h, ev->user, ev->seq);
            break;
        case FAN_HEAD: {
            /* Storage has the room up to ev->seq (cluster reconciliation): live subscribers
             * behind it read the rest, as for a gap revealed by a later entry. */
            struct hub_room *r = hub__room_get(h, ev->room, 0);
            if (!r) break;
            if (ev->seq > r->last_seq) r->last_seq = ev->seq;
            for (uint32_t k = 0; k < r->n; k++) {
                struct hub_sub *s = r->subs[k];
                if (s->state == SUB_LIVE && s->next_seq <= ev->seq && !s->leaving_seq)
                    hub_sub_fetch(s);
            }
            break;
        }
        }
        origin_done(io, ev);
    }
}
