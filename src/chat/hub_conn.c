/* hub_conn.c - see hub.h and hub_int.h: a connection's life in the hub (its rooms loaded in
 * commit order, presence on open and close, last seen), its requests in flight, and the
 * closing of connections whose login session ended. */
#include "chat/hub_int.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util/clock.h"
#include "util/status.h"

/* Requests of every connection awaiting their answer (hub_request_begin .. hub__request_done). */
static _Atomic uint64_t inflight_total;

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
    /* seq carries the load's status: a connection whose rooms could not be read is closed, never
     * left open with none (its sends would all be refused as not_member). */
    struct fan_ev ev = {
        .kind = FAN_LOADED, .origin = lj->c, .origin_io = lj->c->io, .seq = j->status};
    if (j->status == CD_OK) {
        ev.rooms = lj->rooms;
        ev.nrooms = lj->n;
    } else {
        free(lj->rooms);
    }
    fanout_add(hub__env.fanout, &ev);
    free(lj);
}

void hub_conn_open(struct conn *c, int64_t user, int64_t sid, int came_online)
{
    struct hub *h = hub__of(c->io);
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

int64_t hub_conn_sid(struct conn *c)
{
    struct hub_conn *hc = c->app;
    return hc ? hc->sid : 0;
}

void hub__conn_loaded(struct hub *h, struct hub_conn *hc, const int64_t *rooms, uint32_t n)
{
    for (uint32_t i = 0; i + 2 < n; i += 3)
        hub__subscribe(h, hc, rooms[i], rooms[i + 1] + 1, rooms[i + 1], rooms[i + 2]);
    hc->loaded = 1;
    if (hc->came_online && hub__env.gpresence) { /* announced once Redis holds the user */
        uint32_t np;
        int64_t *pr = hub__presence_rooms(hc, &np);
        presence_redis_connect(hub__env.gpresence, hc->user, pr, np);
        free(pr);
    } else if (hc->came_online) {
        hub__publish_presence(hc, "online", 0);
    }
    if (hub__env.on_ready) hub__env.on_ready(hc->c, hc->n);
}

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
    store_submit(hub__env.db, &sj->job);
}

void hub_conn_close(struct conn *c)
{
    struct hub_conn *hc = c->app;
    struct hub *h;
    struct hub_user *u;
    int64_t now = 0;

    if (!hc) return;
    h = hub__of(c->io);
    atomic_fetch_sub(&inflight_total, hc->requests); /* their answers find no hub_conn */
    hub__typing_drop(h, hc, 1);
    if (presence_disconnect(hub__env.presence, hc->user, (now = clock_unix_ms())) == 0) {
        save_last_seen(hc->user, now);
        if (hub__env.gpresence) { /* offline only if no other node has the user */
            uint32_t n = 0;
            int64_t *rooms = hc->loaded ? hub__presence_rooms(hc, &n) : NULL;
            presence_redis_disconnect(hub__env.gpresence, hc->user, now, rooms, n);
            free(rooms);
        } else if (hc->loaded) {
            hub__publish_presence(hc, "offline", now);
        }
    }
    while (hc->n)
        hub__unsubscribe(hc->subs[hc->n - 1]);
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

/* ---- requests in flight ---- */

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
    if (!hc->req_paused &&
        (hc->requests >= hub__env.max_inflight || total >= hub__env.max_inflight_total)) {
        hc->req_paused = 1;
        conn_pause(c);
    }
}

/* The answer to one of hc's requests is queued on it. Reading resumes at half the limit, not
 * at limit - 1: no pause and resume (two epoll_ctl calls) per answer. */
void hub__request_done(struct hub_conn *hc)
{
    if (hc->requests) {
        hc->requests--;
        atomic_fetch_sub(&inflight_total, 1);
    }
    if (hc->req_paused && hc->requests <= hub__env.max_inflight / 2) {
        hc->req_paused = 0;
        conn_resume(hc->c);
    }
}

/* ---- ended sessions ---- */

static void end_session_of(struct hub_user *u, int64_t sid)
{
    for (struct hub_conn *hc = u ? u->conns : NULL; hc; hc = hc->user_next)
        if (hc->sid == sid) conn_ws_close(hc->c, WS_CLOSE_SESSION_ENDED, "session ended");
}

/* Close the connections opened with session sid: of user, or of every user when user is 0
 * (the cluster learnt of the session from storage, without its user; O(local users)). */
void hub__session_end(struct hub *h, int64_t user, int64_t sid)
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
