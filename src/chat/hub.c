/* hub.c - see hub.h and hub_int.h: the hub's threads and write jobs, rooms and subscriptions,
 * storage reads for replays, sync requests. Everything runs on one I/O thread, except
 * fetch_work (thread pool). */
#include "chat/hub_int.h"

#include <stdlib.h>
#include <string.h>

#include "chat/events.h"
#include "chat/people.h"
#include "util/log.h"
#include "util/status.h"

struct hub_env hub__env;
__thread uint64_t hub__tl_deliveries;
static _Atomic uint64_t sync_requests, replayed_entries;

struct sync_req {
    struct hub_conn *hc;
    json_t *id;
    json_t *rooms; /* result object */
    uint32_t outstanding;
};

void hub_env_set(const struct hub_env *e)
{
    hub__env = *e;
    hub_sub_limits_set(&(struct hub_sub_limits){
        .pending_max = e->pending_max, .sync_page = e->sync_page, .sync_max = e->sync_max});
}

void hub_thread_start(struct net_io *io)
{
    struct hub *h = xcalloc(1, sizeof(*h));
    h->io = io;
    imap_init(&h->rooms);
    imap_init(&h->users);
    io->app = h;
}

void hub_thread_stop(struct net_io *io)
{
    struct hub *h = hub__of(io);
    uint32_t i;
    /* Connections are gone, so rooms and users are empty; free what a crash-free drain left. */
    for (struct imap_ent *e = imap_first(&h->rooms, &i); e; e = imap_next(&h->rooms, e, &i)) {
        struct hub_room *r = e->val;
        free(r->subs);
        free(r);
    }
    for (struct imap_ent *e = imap_first(&h->users, &i); e; e = imap_next(&h->users, e, &i))
        free(e->val);
    imap_free(&h->rooms);
    imap_free(&h->users);
    free(h->typing);
    free(h);
    io->app = NULL;
}

void hub_submit(struct net_io *io, struct store_job *j)
{
    struct hub *h = hub__of(io);
    j->next = NULL;
    if (h->jtail)
        h->jtail->next = j;
    else
        h->jhead = j;
    h->jtail = j;
    h->jn++;
}

void hub_loop_end(struct net_io *io)
{
    struct hub *h = hub__of(io);
    atomic_store_explicit(&h->deliveries, hub__tl_deliveries, memory_order_relaxed);
    if (!h->jhead) return;
    store_submit_list(hub__env.db, h->jhead, h->jtail, h->jn);
    h->jhead = h->jtail = NULL;
    h->jn = 0;
}

/* ---- small helpers ---- */

void hub__send(struct hub_conn *hc, struct rbuf *f)
{
    if (!conn_alive(hc->c)) return;
    conn_send(hc->c, f);
    hub__tl_deliveries++;
}

void hub__send_json(struct hub_conn *hc, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    if (text && conn_alive(hc->c)) conn_ws_text(hc->c, text, strlen(text));
    free(text);
    json_decref(o);
}

struct hub_sub *hub__find_sub(struct hub_conn *hc, int64_t room)
{
    for (uint32_t i = 0; i < hc->n; i++)
        if (hc->subs[i]->room->id == room) return hc->subs[i];
    return NULL;
}

struct hub_room *hub__room_get(struct hub *h, int64_t id, int create)
{
    struct hub_room *r = imap_get(&h->rooms, id);
    if (!r && create) {
        r = xcalloc(1, sizeof(*r));
        r->id = id;
        imap_put(&h->rooms, id, r);
        if (hub__env.interest) hub__env.interest(hub__env.interest_ud, id, 1);
    }
    return r;
}

/* ---- sync requests ---- */

void hub__synced(struct hub_sub *s, int has_more)
{
    struct sync_req *req = s->req;
    char rid[32];
    if (!req) return;
    s->req = NULL;
    snprintf(rid, sizeof(rid), "r_%lld", (long long)s->room->id);
    json_object_set_new(
        req->rooms, rid,
        json_pack("{s:I,s:b}", "last_seq", (json_int_t)(s->next_seq - 1), "has_more", has_more));
    if (--req->outstanding == 0) {
        json_t *o = json_pack("{s:s,s:o}", "type", "synced", "rooms", req->rooms);
        if (req->id) json_object_set(o, "id", req->id);
        hub__send_json(req->hc, o);
        json_decref(req->id);
        free(req);
    }
}

/* ---- replay from storage ---- */

struct fetch {
    uv_work_t w;
    struct hub_sub *sub;
    struct conn *c;
    int64_t room, after;
    uint32_t limit, n, cap;
    int rc;
    int64_t *seqs;
    struct rbuf **frames;
    struct people_blocklist blocked; /* the user's blocks: their messages get "blocked":true */
};

static int fetch_row(void *ud, const struct store_event *ev)
{
    struct fetch *f = ud;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->seqs = xrealloc(f->seqs, f->cap * sizeof(*f->seqs));
        f->frames = xrealloc(f->frames, f->cap * sizeof(*f->frames));
    }
    f->seqs[f->n] = ev->seq;
    f->frames[f->n] = events_log_frame_mark(ev, people_blocklist_marks(&f->blocked, ev));
    f->n++;
    return 0;
}

static void fetch_work(uv_work_t *w)
{
    struct fetch *f = w->data;
    struct store_conn *sc = store_reader(hub__env.db);
    if (!sc) {
        f->rc = CD_E_IO;
        return;
    }
    /* A replay is for one connection: messages of users it blocks are marked (one indexed read
     * of the user's blocks per page; on failure nothing is marked). Live frames are shared by
     * every receiver and carry no mark. */
    people_blocklist_read(hub__env.db->ops, sc, f->c->user_id, &f->blocked);
    /* Messages come with their current state (text, deleted, reactions with "me"), so a replay
     * is right even when the edits, deletes and reactions that follow are applied on top. */
    f->rc = hub__env.db->ops->messages_page(sc, f->room, f->after, 0, (int)f->limit, 0,
                                            f->c->user_id, 0, fetch_row, f);
    people_blocklist_free(&f->blocked);
}

static void fetch_done(uv_work_t *w, int status)
{
    struct fetch *f = w->data;
    struct hub_sub *s = f->sub;
    (void)status;

    if (s->dead) {
        hub_sub_free(s);
    } else if (conn_alive(f->c)) {
        if (f->rc != CD_OK) log_warn("replay read failed", "\"room\":%lld", (long long)f->room);
        atomic_fetch_add_explicit(&replayed_entries, f->n, memory_order_relaxed);
        if (f->rc == CD_OK && f->n && f->seqs[f->n - 1] > s->room->last_seq)
            s->room->last_seq = f->seqs[f->n - 1];
        hub_sub_fetched(s, f->rc, f->seqs, f->frames, f->n, f->limit);
    } else {
        s->fetching = 0;
    }
    for (uint32_t i = 0; i < f->n; i++)
        rbuf_unref(f->frames[i]);
    free(f->frames);
    free(f->seqs);
    conn_release(f->c);
    free(f);
}

void hub__read(struct hub_sub *s, int64_t after, uint32_t limit)
{
    struct fetch *f = xcalloc(1, sizeof(*f));
    f->w.data = f;
    f->sub = s;
    f->c = s->hc->c;
    f->room = s->room->id;
    f->after = after;
    f->limit = limit;
    conn_hold(f->c);
    uv_queue_work(&f->c->io->loop, &f->w, fetch_work, fetch_done);
}

/* ---- subscriptions ---- */

struct hub_sub *hub__subscribe(struct hub *h, struct hub_conn *hc, int64_t room_id,
                               int64_t next_seq, int64_t last_seq, int64_t member_count)
{
    struct hub_room *r = hub__room_get(h, room_id, 1);
    struct hub_sub *s = hub__find_sub(hc, room_id);

    if (last_seq > r->last_seq) r->last_seq = last_seq;
    if (member_count) r->member_count = member_count;
    if (s) return s;
    s = xcalloc(1, sizeof(*s));
    s->room = r;
    s->hc = hc;
    s->next_seq = next_seq;
    s->state = hc->released ? SUB_LIVE : SUB_HOLD;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->subs = xrealloc(r->subs, r->cap * sizeof(*r->subs));
    }
    s->room_idx = r->n;
    r->subs[r->n++] = s;
    if (hc->n == hc->cap) {
        hc->cap = hc->cap ? hc->cap * 2 : 4;
        hc->subs = xrealloc(hc->subs, hc->cap * sizeof(*hc->subs));
    }
    hc->subs[hc->n++] = s;
    return s;
}

void hub__unsubscribe(struct hub_sub *s)
{
    struct hub *h = hub__of(s->hc->c->io);
    struct hub_room *r = s->room;
    struct hub_conn *hc = s->hc;

    r->subs[s->room_idx] = r->subs[--r->n];
    r->subs[s->room_idx]->room_idx = s->room_idx;
    for (uint32_t i = 0; i < hc->n; i++)
        if (hc->subs[i] == s) {
            hc->subs[i] = hc->subs[--hc->n];
            break;
        }
    if (s->req) hub__synced(s, 0);
    hub_sub_acks_clear(s, 1);
    if (r->n == 0) {
        imap_del(&h->rooms, r->id);
        if (hub__env.interest) hub__env.interest(hub__env.interest_ud, r->id, 0);
        free(r->subs);
        free(r);
        s->room = NULL;
    }
    if (s->fetching) {
        s->dead = 1;
        hub_sub_pend_clear(s);
    } else {
        hub_sub_free(s);
    }
}

/* ---- requests ---- */

int hub_is_member(struct conn *c, int64_t room)
{
    struct hub_conn *hc = c->app;
    struct hub_sub *s = hc ? hub__find_sub(hc, room) : NULL;
    return s && !s->leaving_seq;
}

void hub_release(struct conn *c)
{
    struct hub_conn *hc = c->app;
    if (!hc || hc->released) return;
    hc->released = 1;
    for (uint32_t i = hc->n; i-- > 0;) { /* backwards: a drain may unsubscribe */
        struct hub_sub *s = hc->subs[i];
        if (s->state == SUB_HOLD) hub_sub_drain(s);
    }
}

static void sync_room(struct hub_sub *s, struct sync_req *req, int64_t last)
{
    if (s->req) hub__synced(s, 0); /* superseded by this request */
    if (last > s->room->last_seq) last = s->room->last_seq;
    s->next_seq = last + 1;
    s->replayed = 0;
    s->req = req;
    req->outstanding++;
    if (s->fetching) {
        s->state = SUB_SYNC; /* the read in flight continues from the new position */
        return;
    }
    if (s->state == SUB_PAGED) hub_sub_pend_clear(s);
    s->state = SUB_SYNC;
    if (s->next_seq > s->room->last_seq)
        hub_sub_drain(s); /* nothing in storage beyond the buffer */
    else
        hub_sub_fetch(s);
}

void hub_sync(struct conn *c, json_t *id, json_t *rooms)
{
    struct hub_conn *hc = c->app;
    struct sync_req *req;
    const char *key;
    json_t *val;

    if (!hc) return;
    atomic_fetch_add_explicit(&sync_requests, 1, memory_order_relaxed);
    req = xcalloc(1, sizeof(*req));
    req->hc = hc;
    req->id = id ? json_incref(id) : NULL;
    req->rooms = json_object();
    req->outstanding = 1; /* held until every room is started */
    json_object_foreach(rooms, key, val)
    {
        int64_t room = 0;
        struct hub_sub *s = NULL;
        size_t klen = strlen(key);
        if (klen > 2 && key[0] == 'r' && key[1] == '_') room = strtoll(key + 2, NULL, 10);
        if (room > 0) s = hub__find_sub(hc, room);
        if (!s || !json_is_integer(val) || json_integer_value(val) < 0) {
            json_object_set_new(req->rooms, key,
                                json_pack("{s:s}", "error", !s ? "not_member" : "invalid_field"));
            continue;
        }
        sync_room(s, req, json_integer_value(val));
    }
    hub_release(c);
    if (--req->outstanding == 0) {
        json_t *o = json_pack("{s:s,s:o}", "type", "synced", "rooms", req->rooms);
        if (req->id) json_object_set(o, "id", req->id);
        hub__send_json(hc, o);
        json_decref(req->id);
        free(req);
    }
}

void hub_stats(struct net_server *srv, struct hub_stats *out)
{
    out->deliveries = 0;
    for (int i = 0; i < srv->nio; i++) {
        struct hub *h = srv->io[i].app;
        if (h) out->deliveries += atomic_load_explicit(&h->deliveries, memory_order_relaxed);
    }
    out->sync_requests = atomic_load_explicit(&sync_requests, memory_order_relaxed);
    out->replayed_entries = atomic_load_explicit(&replayed_entries, memory_order_relaxed);
}
