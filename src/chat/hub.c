/* hub.c - see hub.h. Everything here runs on one I/O thread, except fetch_work (thread pool). */
#include "util/clock.h"
#include "chat/hub.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/events.h"
#include "util/imap.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/status.h"

enum sub_state {
    SUB_HOLD = 0, /* before the client's first request: live events buffered */
    SUB_LIVE,     /* live events delivered as they come */
    SUB_SYNC,     /* replaying from storage; live events buffered */
    SUB_PAGED,    /* replay hit sync_max: live events dropped until the client syncs again */
};

struct pend {
    int64_t seq;
    struct rbuf *frame;
};

struct sync_req;

struct hub_sub {
    struct hub_room *room;
    struct hub_conn *hc;
    int64_t next_seq;  /* next seq this connection must receive for the room */
    uint32_t room_idx; /* position in room->subs */
    uint8_t state;     /* enum sub_state */
    uint8_t fetching;  /* a storage read is in flight */
    uint8_t dead;      /* unsubscribed while fetching: freed when the read returns */
    uint8_t lost;      /* buffered events were dropped (overflow): fetch before going live */
    uint32_t npend, cappend;
    struct pend *pend;
    struct sync_req *req; /* the sync request this replay answers, if any */
    uint32_t replayed;    /* rows replayed for req */
    uint32_t nacks;
    struct pend *acks;   /* acks of this connection's own sends, waiting for their place */
    int64_t leaving_seq; /* the user left at this seq: unsubscribe once it is delivered */
};

struct hub_room {
    int64_t id;
    int64_t last_seq;     /* highest seq seen on this thread (load or live) */
    int64_t member_count; /* from the last load or member event */
    struct hub_sub **subs;
    uint32_t n, cap;
};

struct hub_conn {
    struct conn *c;
    int64_t user;
    int64_t sid; /* login session of its access token (0: none) */
    struct hub_sub **subs;
    uint32_t n, cap;
    uint8_t loaded : 1, released : 1, came_online : 1;
    uint8_t req_paused : 1; /* not read: max_inflight requests unanswered */
    uint16_t requests;      /* requests in flight (hub_request_begin) */
    uint32_t stamp;         /* presence de-duplication */
    struct hub_conn *user_next;
};

struct hub_user {
    int64_t id;
    struct hub_conn *conns;
};

struct typing_ent {
    struct hub_conn *hc;
    int64_t room;
    uint32_t expires;
};

struct hub {
    struct net_io *io;
    struct imap rooms; /* id -> hub_room with local subscribers */
    struct imap users; /* id -> hub_user with local connections */
    uint32_t stamp;
    struct typing_ent *typing;
    uint32_t ntyping, captyping;
    struct store_job *jhead, *jtail; /* write jobs of this loop iteration */
    size_t jn;                       /* how many */
    _Atomic uint64_t deliveries;     /* tl_deliveries as of the last loop end (for /metrics) */
};

/* Frames this thread queued to connections: a plain counter on the delivery path, published
 * into the hub once per loop iteration (hub_loop_end), so no atomic per recipient. */
static __thread uint64_t tl_deliveries;
static _Atomic uint64_t sync_requests, replayed_entries;

struct sync_req {
    struct hub_conn *hc;
    json_t *id;
    json_t *rooms; /* result object */
    uint32_t outstanding;
};

static struct hub_env env;

void hub_env_set(const struct hub_env *e)
{
    env = *e;
}

/* Requests of every connection awaiting their answer (hub_request_begin .. request_done). */
static _Atomic uint64_t inflight_total;

static struct hub *hub_of(struct net_io *io)
{
    return io->app;
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
    struct hub *h = hub_of(io);
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
    struct hub *h = hub_of(io);
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
    struct hub *h = hub_of(io);
    atomic_store_explicit(&h->deliveries, tl_deliveries, memory_order_relaxed);
    if (!h->jhead) return;
    store_submit_list(env.db, h->jhead, h->jtail, h->jn);
    h->jhead = h->jtail = NULL;
    h->jn = 0;
}

/* ---- small helpers ---- */

static void send_frame(struct hub_conn *hc, struct rbuf *f)
{
    if (!conn_alive(hc->c)) return;
    conn_send(hc->c, f);
    tl_deliveries++;
}

static void send_json(struct hub_conn *hc, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    if (text && conn_alive(hc->c)) conn_ws_text(hc->c, text, strlen(text));
    free(text);
    json_decref(o);
}

static struct hub_sub *find_sub(struct hub_conn *hc, int64_t room)
{
    for (uint32_t i = 0; i < hc->n; i++)
        if (hc->subs[i]->room->id == room) return hc->subs[i];
    return NULL;
}

static struct hub_room *room_get(struct hub *h, int64_t id, int create)
{
    struct hub_room *r = imap_get(&h->rooms, id);
    if (!r && create) {
        r = xcalloc(1, sizeof(*r));
        r->id = id;
        imap_put(&h->rooms, id, r);
        if (env.interest) env.interest(env.interest_ud, id, 1);
    }
    return r;
}

static void pend_clear(struct hub_sub *s)
{
    for (uint32_t i = 0; i < s->npend; i++)
        rbuf_unref(s->pend[i].frame);
    free(s->pend);
    s->pend = NULL;
    s->npend = s->cappend = 0;
}

static void pend_push(struct hub_sub *s, int64_t seq, struct rbuf *f)
{
    if (s->npend >= env.pending_max) {
        pend_clear(s);
        s->lost = 1;
    }
    if (s->npend == s->cappend) {
        s->cappend = s->cappend ? s->cappend * 2 : 8;
        s->pend = xrealloc(s->pend, s->cappend * sizeof(*s->pend));
    }
    s->pend[s->npend].seq = seq;
    s->pend[s->npend].frame = rbuf_ref(f);
    s->npend++;
}

/* ---- sync requests ---- */

static void req_finish_room(struct hub_sub *s, int has_more)
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
        send_json(req->hc, o);
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
    f->frames[f->n] = events_log_frame(ev);
    f->n++;
    return 0;
}

static void fetch_work(uv_work_t *w)
{
    struct fetch *f = w->data;
    struct store_conn *sc = store_reader(env.db);
    f->rc = sc ? env.db->ops->events_page(sc, f->room, f->after, 0, (int)f->limit, 0, fetch_row, f)
               : CD_E_IO;
}

static void acks_clear(struct hub_sub *s, int send)
{
    for (uint32_t i = 0; i < s->nacks; i++) {
        if (send) send_frame(s->hc, s->acks[i].frame); /* late rather than lost */
        rbuf_unref(s->acks[i].frame);
    }
    free(s->acks);
    s->acks = NULL;
    s->nacks = 0;
}

static void sub_free(struct hub_sub *s)
{
    pend_clear(s);
    acks_clear(s, 0);
    free(s);
}

static void ack_hold(struct hub_sub *s, int64_t seq, struct rbuf *ack)
{
    s->acks = xrealloc(s->acks, (s->nacks + 1) * sizeof(*s->acks));
    s->acks[s->nacks].seq = seq;
    s->acks[s->nacks].frame = rbuf_ref(ack);
    s->nacks++;
}

/* Send entry seq (== next_seq): the connection's own ack in place of its own message. */
static void sub_emit(struct hub_sub *s, int64_t seq, struct rbuf *f)
{
    for (uint32_t i = 0; i < s->nacks; i++)
        if (s->acks[i].seq == seq) {
            struct rbuf *ack = s->acks[i].frame;
            send_frame(s->hc, ack);
            rbuf_unref(ack);
            s->acks[i] = s->acks[--s->nacks];
            if (!s->nacks) acks_clear(s, 0);
            s->next_seq = seq + 1;
            return;
        }
    send_frame(s->hc, f);
    s->next_seq = seq + 1;
}

static void unsubscribe(struct hub *h, struct hub_sub *s);

/* After the entry that removed the user went out: drop the subscription. Returns 1 if s is
 * gone. */
static int sub_left(struct hub_sub *s)
{
    if (!s->leaving_seq || s->next_seq <= s->leaving_seq) return 0;
    unsubscribe(hub_of(s->hc->c->io), s);
    return 1;
}

static void sub_drain(struct hub_sub *s);
static void fetch_start(struct hub_sub *s);

static void fetch_done(uv_work_t *w, int status)
{
    struct fetch *f = w->data;
    struct hub_sub *s = f->sub;
    uint32_t i;
    (void)status;

    s->fetching = 0;
    if (s->dead || !conn_alive(f->c)) {
        if (s->dead) sub_free(s);
        goto out;
    }
    if (f->rc != CD_OK) {
        log_warn("replay read failed", "\"room\":%lld", (long long)f->room);
        s->state = SUB_PAGED; /* the client will retry with sync */
        req_finish_room(s, 1);
        goto out;
    }
    for (i = 0; i < f->n; i++)
        if (f->seqs[i] == s->next_seq && (!s->leaving_seq || f->seqs[i] <= s->leaving_seq)) {
            sub_emit(s, f->seqs[i], f->frames[i]);
            s->replayed++;
        }
    atomic_fetch_add_explicit(&replayed_entries, f->n, memory_order_relaxed);
    if (f->n && f->seqs[f->n - 1] > s->room->last_seq) s->room->last_seq = f->seqs[f->n - 1];
    if (sub_left(s)) goto out;
    if (f->n == f->limit) {
        if (s->req && s->replayed >= env.sync_max) {
            s->state = SUB_PAGED;
            pend_clear(s);
            s->lost = 0;
            req_finish_room(s, 1);
        } else {
            fetch_start(s);
        }
        goto out;
    }
    sub_drain(s);
out:
    for (i = 0; i < f->n; i++)
        rbuf_unref(f->frames[i]);
    free(f->frames);
    free(f->seqs);
    conn_release(f->c);
    free(f);
}

static void fetch_start(struct hub_sub *s)
{
    struct fetch *f;
    if (s->fetching) return;
    f = xcalloc(1, sizeof(*f));
    f->w.data = f;
    f->sub = s;
    f->c = s->hc->c;
    f->room = s->room->id;
    f->after = s->next_seq - 1;
    f->limit = env.sync_page;
    /* A replay for a sync stops at sync_max rows (fetch_done pages on a full read). */
    if (s->req && env.sync_max - s->replayed < f->limit) f->limit = env.sync_max - s->replayed;
    s->fetching = 1;
    s->lost = 0;
    s->state = SUB_SYNC;
    conn_hold(f->c);
    uv_queue_work(&f->c->io->loop, &f->w, fetch_work, fetch_done);
}

/* Merge buffered live events after a replay; go live, or fetch again on a gap. */
static void sub_drain(struct hub_sub *s)
{
    uint32_t i = 0;
    for (; i < s->npend; i++) {
        struct pend *p = &s->pend[i];
        if (p->seq < s->next_seq) continue;
        if (p->seq > s->next_seq) break; /* gap: storage has what is missing */
        sub_emit(s, p->seq, p->frame);
    }
    if (i > 0) {
        for (uint32_t k = 0; k < i; k++)
            rbuf_unref(s->pend[k].frame);
        memmove(s->pend, s->pend + i, (s->npend - i) * sizeof(*s->pend));
        s->npend -= i;
    }
    if (sub_left(s)) return;
    if (s->npend || s->lost) {
        fetch_start(s);
        return;
    }
    pend_clear(s);
    s->state = SUB_LIVE;
    req_finish_room(s, 0);
}

/* ---- subscriptions ---- */

static struct hub_sub *subscribe(struct hub *h, struct hub_conn *hc, int64_t room_id,
                                 int64_t next_seq, int64_t last_seq, int64_t member_count)
{
    struct hub_room *r = room_get(h, room_id, 1);
    struct hub_sub *s = find_sub(hc, room_id);

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

static void unsubscribe(struct hub *h, struct hub_sub *s)
{
    struct hub_room *r = s->room;
    struct hub_conn *hc = s->hc;

    r->subs[s->room_idx] = r->subs[--r->n];
    r->subs[s->room_idx]->room_idx = s->room_idx;
    for (uint32_t i = 0; i < hc->n; i++)
        if (hc->subs[i] == s) {
            hc->subs[i] = hc->subs[--hc->n];
            break;
        }
    if (s->req) req_finish_room(s, 0);
    acks_clear(s, 1);
    if (r->n == 0) {
        imap_del(&h->rooms, r->id);
        if (env.interest) env.interest(env.interest_ud, r->id, 0);
        free(r->subs);
        free(r);
        s->room = NULL;
    }
    if (s->fetching) {
        s->dead = 1;
        pend_clear(s);
    } else {
        sub_free(s);
    }
}

/* One live event for one subscription. */
static void sub_deliver(struct hub_sub *s, int64_t seq, struct rbuf *f)
{
    if (s->leaving_seq && seq > s->leaving_seq) return; /* after the user left */
    switch (s->state) {
    case SUB_LIVE:
        if (seq == s->next_seq) {
            sub_emit(s, seq, f);
        } else if (seq > s->next_seq) {
            pend_push(s, seq, f);
            fetch_start(s); /* a gap: fill it from storage */
        }
        break;
    case SUB_HOLD:
    case SUB_SYNC:
        if (seq >= s->next_seq) pend_push(s, seq, f);
        break;
    default: /* SUB_PAGED: the client pages on with sync */
        break;
    }
}

/* ---- presence ---- */

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
    fanout_publish_one(env.fanout, &ev);
}

/* The rooms of hc that get its presence (small enough), in a new array; *n = count. */
static int64_t *presence_rooms(struct hub_conn *hc, uint32_t *n)
{
    int64_t *rooms = xmalloc((hc->n ? hc->n : 1) * sizeof(int64_t));
    *n = 0;
    for (uint32_t i = 0; i < hc->n; i++)
        if (hc->subs[i]->room->member_count <= env.presence_max_room)
            rooms[(*n)++] = hc->subs[i]->room->id;
    return rooms;
}

static void publish_presence(struct hub_conn *hc, const char *status, int64_t last_seen)
{
    uint32_t n;
    int64_t *rooms = presence_rooms(hc, &n);
    hub_publish_presence(hc->user, status, last_seen, rooms, n);
    free(rooms);
}

/* ---- connection lifecycle ---- */

struct load_job {
    struct store_job job;
    struct conn *c;
    int64_t user;
    int64_t *rooms;
    uint32_t n, cap;
};

static int load_row(void *ud, const struct store_room *r, const struct store_member *m)
{
    struct load_job *lj = ud;
    (void)m;
    if (lj->n + 3 > lj->cap) {
        lj->cap = lj->cap ? lj->cap * 2 : 48;
        lj->rooms = xrealloc(lj->rooms, lj->cap * sizeof(int64_t));
    }
    lj->rooms[lj->n++] = r->id;
    lj->rooms[lj->n++] = r->last_seq;
    lj->rooms[lj->n++] = r->member_count;
    return 0;
}

static int load_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct load_job *lj = (struct load_job *)j;
    return ops->rooms_of_user(sc, lj->user, 0, -1, load_row, lj);
}

/* Writer thread, in commit order: the room list travels with the batch, so every event
 * committed after this snapshot reaches the thread after it. */
static void load_done(struct store_job *j)
{
    struct load_job *lj = (struct load_job *)j;
    struct fan_ev ev = {.kind = FAN_LOADED, .origin = lj->c, .origin_io = lj->c->io};
    if (j->status == CD_OK) {
        ev.rooms = lj->rooms;
        ev.nrooms = lj->n;
    } else {
        free(lj->rooms);
    }
    fanout_add(env.fanout, &ev);
    free(lj);
}

void hub_conn_open(struct conn *c, int64_t user, int64_t sid, int came_online)
{
    struct hub *h = hub_of(c->io);
    struct hub_conn *hc = xcalloc(1, sizeof(*hc));
    struct hub_user *u = imap_get(&h->users, user);
    struct load_job *lj = xcalloc(1, sizeof(*lj));

    hc->c = c;
    hc->user = user;
    hc->sid = sid;
    hc->came_online = came_online != 0;
    c->app = hc;
    if (!u) {
        u = xcalloc(1, sizeof(*u));
        u->id = user;
        imap_put(&h->users, user, u);
    }
    hc->user_next = u->conns;
    u->conns = hc;
    conn_pause(c); /* requests wait until the rooms are subscribed (even ones already read) */
    lj->c = c;
    lj->user = user;
    lj->job.exec = load_exec;
    lj->job.done = load_done;
    conn_hold(c);
    hub_submit(c->io, &lj->job);
}

void hub_conn_set_sid(struct conn *c, int64_t sid)
{
    struct hub_conn *hc = c->app;
    if (hc) hc->sid = sid;
}

static void conn_loaded(struct hub *h, struct hub_conn *hc, const int64_t *rooms, uint32_t n)
{
    for (uint32_t i = 0; i + 2 < n; i += 3)
        subscribe(h, hc, rooms[i], rooms[i + 1] + 1, rooms[i + 1], rooms[i + 2]);
    hc->loaded = 1;
    if (hc->came_online && env.gpresence) { /* announced once Redis holds the user */
        uint32_t np;
        int64_t *pr = presence_rooms(hc, &np);
        presence_redis_connect(env.gpresence, hc->user, pr, np);
        free(pr);
    } else if (hc->came_online) {
        publish_presence(hc, "online", 0);
    }
    if (env.on_ready) env.on_ready(hc->c, hc->n);
}

static void typing_remove_conn(struct hub *h, struct hub_conn *hc, int publish);

struct seen_job {
    struct store_job job;
    int64_t user, ms;
};

static int seen_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct seen_job *sj = (struct seen_job *)j;
    return ops->user_set_last_seen(sc, sj->user, sj->ms);
}

static void seen_done(struct store_job *j)
{
    free(j);
}

/* Persist last_seen (fire and forget: presence itself lives in memory). */
static void save_last_seen(int64_t user, int64_t ms)
{
    struct seen_job *sj = xcalloc(1, sizeof(*sj));
    sj->user = user;
    sj->ms = ms;
    sj->job.exec = seen_exec;
    sj->job.done = seen_done;
    store_submit(env.db, &sj->job);
}

void hub_conn_close(struct conn *c)
{
    struct hub_conn *hc = c->app;
    struct hub *h;
    struct hub_user *u;
    int64_t now = 0;

    if (!hc) return;
    h = hub_of(c->io);
    atomic_fetch_sub(&inflight_total, hc->requests); /* their answers find no hub_conn */
    typing_remove_conn(h, hc, 1);
    if (presence_disconnect(env.presence, hc->user, (now = clock_unix_ms())) == 0) {
        save_last_seen(hc->user, now);
        if (env.gpresence) { /* offline only if no other node has the user */
            uint32_t n = 0;
            int64_t *rooms = hc->loaded ? presence_rooms(hc, &n) : NULL;
            presence_redis_disconnect(env.gpresence, hc->user, now, rooms, n);
            free(rooms);
        } else if (hc->loaded) {
            publish_presence(hc, "offline", now);
        }
    }
    while (hc->n)
        unsubscribe(h, hc->subs[hc->n - 1]);
    u = imap_get(&h->users, hc->user);
    if (u) {
        struct hub_conn **p = &u->conns;
        while (*p && *p != hc)
            p = &(*p)->user_next;
        if (*p) *p = hc->user_next;
        if (!u->conns) {
            imap_del(&h->users, hc->user);
            free(u);
        }
    }
    free(hc->subs);
    free(hc);
    c->app = NULL;
}

/* ---- requests ---- */

int hub_is_member(struct conn *c, int64_t room)
{
    struct hub_conn *hc = c->app;
    struct hub_sub *s = hc ? find_sub(hc, room) : NULL;
    return s && !s->leaving_seq;
}

void hub_release(struct conn *c)
{
    struct hub_conn *hc = c->app;
    if (!hc || hc->released) return;
    hc->released = 1;
    for (uint32_t i = hc->n; i-- > 0;) { /* backwards: a drain may unsubscribe */
        struct hub_sub *s = hc->subs[i];
        if (s->state == SUB_HOLD) sub_drain(s);
    }
}

static void sync_room(struct hub_sub *s, struct sync_req *req, int64_t last)
{
    if (s->req) req_finish_room(s, 0); /* superseded by this request */
    if (last > s->room->last_seq) last = s->room->last_seq;
    s->next_seq = last + 1;
    s->replayed = 0;
    s->req = req;
    req->outstanding++;
    if (s->fetching) {
        s->state = SUB_SYNC; /* the read in flight continues from the new position */
        return;
    }
    if (s->state == SUB_PAGED) pend_clear(s);
    s->state = SUB_SYNC;
    if (s->next_seq > s->room->last_seq)
        sub_drain(s); /* nothing in storage beyond the buffer */
    else
        fetch_start(s);
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
        if (room > 0) s = find_sub(hc, room);
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
        send_json(hc, o);
        json_decref(req->id);
        free(req);
    }
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
    jsonw_int(&w, on ? (int64_t)env.typing_ttl_s * 1000 : 0);
    jsonw_lit(&w, "}");
    ev.frame = events_frame(&w);
    jsonw_free(&w);
    fanout_publish_one(env.fanout, &ev);
}

void hub_typing(struct conn *c, int64_t room)
{
    struct hub_conn *hc = c->app;
    struct hub *h = hub_of(c->io);
    uint32_t expires = c->io->now_s + env.typing_ttl_s;

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

static void typing_remove_conn(struct hub *h, struct hub_conn *hc, int publish)
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
    struct hub *h = hub_of(io);
    for (uint32_t i = 0; i < h->ntyping;) {
        if (h->typing[i].expires <= io->now_s) {
            publish_typing(h->typing[i].room, h->typing[i].hc->user, 0);
            h->typing[i] = h->typing[--h->ntyping];
        } else {
            i++;
        }
    }
}

/* ---- delivery ---- */

static struct hub_conn *origin_here(struct net_io *io, const struct fan_ev *ev)
{
    if (!ev->origin || ev->origin_io != io) return NULL;
    return ev->origin->app;
}

/* One log entry for one subscription; the origin connection gets its ack in the message's
 * place. Returns 1 when s belongs to the origin (the ack is handled). */
static int sub_entry(struct hub_sub *s, const struct fan_ev *ev, struct hub_conn *origin)
{
    if (origin && s->hc == origin && ev->reply) {
        if (ev->seq < s->next_seq) {
            /* The entry already went out as a message, read from storage by a replay or a gap
             * fill that ran between the commit and this delivery (frequent in a cluster, where
             * other nodes' entries reveal gaps all the time). The ack still answers the
             * request; held, it would wait for a seq the stream has passed, forever. */
            send_frame(s->hc, ev->reply);
            return 1;
        }
        if (s->state == SUB_LIVE && ev->seq == s->next_seq) {
            send_frame(s->hc, ev->reply);
            s->next_seq++;
            return 1;
        }
        ack_hold(s, ev->seq, ev->reply); /* replaying or held: goes out at its seq */
        sub_deliver(s, ev->seq, ev->frame);
        return 1;
    }
    sub_deliver(s, ev->seq, ev->frame);
    return 0;
}

static void deliver_log(struct hub *h, const struct fan_ev *ev)
{
    struct hub_room *r;
    struct hub_user *u = NULL;
    struct hub_conn *origin = origin_here(h->io, ev);
    int replied = 0;

    if (ev->member == FAN_M_JOIN && (u = imap_get(&h->users, ev->user)))
        for (struct hub_conn *hc = u->conns; hc; hc = hc->user_next)
            if (conn_alive(hc->c)) subscribe(h, hc, ev->room, ev->seq, 0, ev->member_count);
    r = room_get(h, ev->room, 0);
    if (r) {
        if (ev->seq > r->last_seq) r->last_seq = ev->seq;
        if (ev->member) r->member_count = ev->member_count;
        for (uint32_t i = 0; i < r->n; i++)
            replied |= sub_entry(r->subs[i], ev, origin);
    }
    if (origin && ev->reply && !replied) send_frame(origin, ev->reply);
    if (ev->member == FAN_M_LEAVE && (u = imap_get(&h->users, ev->user)))
        for (struct hub_conn *hc = u->conns; hc; hc = hc->user_next) {
            struct hub_sub *s = find_sub(hc, ev->room);
            if (!s) continue;
            /* Delivered already: drop now. Still replaying or held: the connection first gets
             * everything up to and including this entry, then the subscription ends. */
            s->leaving_seq = ev->seq;
            sub_left(s);
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
    struct hub_room *r = room_get(h, ev[0].room, 0);
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
                send_frame(s->hc, all);
                tl_deliveries += n - 1; /* n entries in one frame */
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
        if (o && ev[k].reply && (!r || !find_sub(o, ev[k].room))) send_frame(o, ev[k].reply);
    }
}

void hub_request_begin(struct conn *c)
{
    struct hub_conn *hc = c->app;
    uint64_t total;
    if (!hc) return;
    hc->requests++;
    total = atomic_fetch_add(&inflight_total, 1) + 1;
    /* Node-wide too: with max_inflight_total requests unanswered, each connection that adds one
     * waits for that one's answer, so the total stops growing at about the limit plus one per
     * sending connection. */
    if (!hc->req_paused && (hc->requests >= env.max_inflight || total >= env.max_inflight_total)) {
        hc->req_paused = 1;
        conn_pause(c);
    }
}

/* The answer to one of hc's requests is queued on it. Reading resumes at half the limit, not
 * at limit - 1: no pause and resume (two epoll_ctl calls) per answer. */
static void request_done(struct hub_conn *hc)
{
    if (hc->requests) {
        hc->requests--;
        atomic_fetch_sub(&inflight_total, 1);
    }
    if (hc->req_paused && hc->requests <= env.max_inflight / 2) {
        hc->req_paused = 0;
        conn_resume(hc->c);
    }
}

/* The end of ev's delivery on its origin's thread: the origin's hold is dropped, and a request
 * it answered is no longer in flight. */
static void origin_done(struct net_io *io, const struct fan_ev *ev)
{
    if (!ev->origin || ev->origin_io != io) return;
    if (ev->request && ev->origin->app) request_done(ev->origin->app);
    conn_release(ev->origin);
}

static void end_session_of(struct hub_user *u, int64_t sid)
{
    for (struct hub_conn *hc = u ? u->conns : NULL; hc; hc = hc->user_next)
        if (hc->sid == sid) conn_ws_close(hc->c, WS_CLOSE_SESSION_ENDED, "session ended");
}

/* Close the connections opened with session sid: of user, or of every user when user is 0
 * (the cluster learnt of the session from storage, without its user; O(local users)). */
static void session_end(struct hub *h, int64_t user, int64_t sid)
{
    struct imap_ent *e;
    uint32_t it;
    if (user) {
        end_session_of(imap_get(&h->users, user), sid);
        return;
    }
    for (e = imap_first(&h->users, &it); e; e = imap_next(&h->users, e, &it))
        end_session_of(e->val, sid);
}

void hub_deliver(struct net_io *io, struct fan_batch *b)
{
    struct hub *h = hub_of(io);

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
            if (origin && ev->reply) send_frame(origin, ev->reply);
            break;
        case FAN_LOADED:
            if (origin && conn_alive(ev->origin)) conn_loaded(h, origin, ev->rooms, ev->nrooms);
            break;
        case FAN_TYPING: {
            struct hub_room *r = room_get(h, ev->room, 0);
            for (uint32_t k = 0; r && k < r->n; k++)
                if (r->subs[k]->hc->user != ev->user && r->subs[k]->state != SUB_HOLD)
                    send_frame(r->subs[k]->hc, ev->frame);
            break;
        }
        case FAN_PRESENCE:
            h->stamp++;
            for (uint32_t j = 0; j < ev->nrooms; j++) {
                struct hub_room *r = room_get(h, ev->rooms[j], 0);
                for (uint32_t k = 0; r && k < r->n; k++) {
                    struct hub_conn *hc = r->subs[k]->hc;
                    if (hc->user == ev->user || hc->stamp == h->stamp) continue;
                    hc->stamp = h->stamp;
                    send_frame(hc, ev->frame);
                }
            }
            break;
        case FAN_USER: {
            struct hub_user *u = imap_get(&h->users, ev->user);
            for (struct hub_conn *hc = u ? u->conns : NULL; hc; hc = hc->user_next)
                if (hc->c != ev->origin) send_frame(hc, ev->frame);
            if (origin && ev->reply) send_frame(origin, ev->reply);
            break;
        }
        case FAN_SESSION_END:
            session_end(h, ev->user, ev->seq);
            break;
        case FAN_HEAD: {
            /* Storage has the room up to ev->seq (cluster reconciliation): live subscribers
             * behind it read the rest, as for a gap revealed by a later entry. */
            struct hub_room *r = room_get(h, ev->room, 0);
            if (!r) break;
            if (ev->seq > r->last_seq) r->last_seq = ev->seq;
            for (uint32_t k = 0; k < r->n; k++) {
                struct hub_sub *s = r->subs[k];
                if (s->state == SUB_LIVE && s->next_seq <= ev->seq && !s->leaving_seq)
                    fetch_start(s);
            }
            break;
        }
        }
        origin_done(io, ev);
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
