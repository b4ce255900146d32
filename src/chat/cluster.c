#include "util/clock.h"
#include "chat/cluster.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/people.h"
#include "chat/rooms.h"
#include "chat/wire.h"
#include "util/imap.h"
#include "util/log.h"
#include "util/status.h"

#define MSG_MAX         (256 << 10) /* bytes of one bus message before it is sent */
#define SESSION_OVERLAP 10000       /* ms re-read before the previous pass (late commits) */
#define SESSION_KEEP    600000      /* ms an ended session stays known as handled */

struct croom {
    uint32_t threads; /* I/O threads with local subscribers */
    int64_t seen;     /* highest seq this node delivered or was told of */
};

struct cluster {
    struct cluster_cfg cfg;
    struct bus *bus;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct imap rooms;    /* room -> croom, under mu */
    struct imap sessions; /* ended sid -> (void *)(intptr_t)at_ms handled, under mu */
    pthread_t thread;
    int running, stop;
    int64_t sessions_since; /* ms: next pass reads sessions ended from here (minus overlap) */
    _Atomic uint64_t forwarded, received, decode_errors, heads_fixed, sessions_fixed;
};

struct cluster *cluster_new(const struct cluster_cfg *cfg)
{
    struct cluster *cl = xcalloc(1, sizeof(*cl));
    cl->cfg = *cfg;
    if (cl->cfg.reconcile_ms < 100) cl->cfg.reconcile_ms = 100;
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    imap_init(&cl->rooms);
    imap_init(&cl->sessions);
    cl->sessions_since = clock_unix_ms();
    return cl;
}

/* Under mu: the room's seq is known up to seq. */
static void seen_locked(struct cluster *cl, int64_t room, int64_t seq)
{
    struct croom *r = imap_get(&cl->rooms, room);
    if (r && seq > r->seen) r->seen = seq;
}

static void session_handled_locked(struct cluster *cl, int64_t sid, int64_t at_ms)
{
    imap_put(&cl->sessions, sid, (void *)(intptr_t)at_ms);
}

/* What a batch tells the node, whichever way it came: the rooms' seqs it has seen, the sessions
 * it has ended (the reconciliation then leaves both alone). */
static void note_batch(struct cluster *cl, const struct fan_batch *b)
{
    pthread_mutex_lock(&cl->mu);
    for (uint32_t i = 0; i < b->n; i++) {
        const struct fan_ev *ev = &b->ev[i];
        if (ev->kind == FAN_LOG) seen_locked(cl, ev->room, ev->seq);
        if (ev->kind == FAN_SESSION_END) session_handled_locked(cl, ev->seq, clock_unix_ms());
    }
    pthread_mutex_unlock(&cl->mu);
}

/* Tracing: a batch that carries a trace context (the fanout's span) is published under a
 * producer span whose context rides in each record (wire.h); the receiving node's consumer span
 * is its child. */
void cluster_forward(void *ud, const struct fan_batch *b)
{
    struct cluster *cl = ud;
    struct jsonw w;
    int64_t chan = -1;
    int any = 0, nmsg = 0;
    struct trace_span *span = NULL;
    const struct trace_ctx *tc = NULL;

    if (trace_enabled() && b->trace.valid) {
        span = trace_span_start("bus publish", TRACE_PRODUCER, &b->trace);
        trace_attr_str(span, "messaging.system", cl->bus->ops->name, strlen(cl->bus->ops->name));
        trace_attr_int(span, "chatd.events", b->n);
        tc = trace_span_ctx(span);
    }
    jsonw_init(&w, 512);
    note_batch(cl, b);
    for (uint32_t i = 0; i <= b->n; i++) {
        const struct fan_ev *ev = i < b->n ? &b->ev[i] : NULL;
        int64_t c = ev ? wire_channel(ev) : -1;
        if (ev && c < 0) continue;
        /* A message per run of one channel, and never larger than MSG_MAX. */
        if (any && (!ev || c != chan || jsonw_text_len(&w) >= MSG_MAX)) {
            cl->bus->ops->publish(cl->bus, chan, jsonw_text(&w), jsonw_text_len(&w));
            atomic_fetch_add(&cl->forwarded, 1);
            nmsg++;
            w.len = JSONW_HEADROOM;
            any = 0;
        }
        if (!ev) break;
        chan = c;
        wire_encode(&w, ev, tc);
        any = 1;
    }
    jsonw_free(&w);
    if (span) {
        trace_attr_int(span, "chatd.bus_messages", nmsg);
        trace_span_end(span);
    }
}

void cluster_bus_recv(void *ud, int64_t room, const uint8_t *data, size_t len)
{
    struct cluster *cl = ud;
    struct fan_batch *b = fan_batch_new();

    atomic_fetch_add(&cl->received, 1);
    if (wire_decode(data, len, b) != CD_OK) {
        atomic_fetch_add(&cl->decode_errors, 1);
        log_warn("malformed bus message dropped", "\"channel\":%lld,\"bytes\":%zu", (long long)room,
                 len);
    }
    note_batch(cl, b);
    for (uint32_t i = 0; i < b->n; i++) {
        const struct fan_ev *ev = &b->ev[i];
        if (ev->kind == FAN_SESSION_END && cl->cfg.on_session_end)
            cl->cfg.on_session_end(cl->cfg.ud, ev->seq, clock_unix_ms());
        if (ev->kind == FAN_BLOCK && ev->member == 2) people_blocks_forget_user(ev->user);
        if (ev->kind == FAN_BLOCK && ev->member < 2)
            people_blocks_note(ev->user, ev->seq, ev->member == 1);
        /* Before the hub delivers it: once the user's sockets see the removal, this node's
         * writer no longer takes their sends. */
        if (ev->kind == FAN_LOG && ev->member == FAN_M_LEAVE)
            chat_member_cache_forget(ev->room, ev->user);
        /* Committed elsewhere: this node's next batch into the room numbers from there. */
        if (ev->kind == FAN_LOG &&
            (i + 1 == b->n || b->ev[i + 1].room != ev->room || b->ev[i + 1].kind != FAN_LOG))
            store_note_head(cl->cfg.db, ev->room, ev->seq);
    }
    if (b->n == 0) {
        fan_batch_unref(b);
        return;
    }
    if (trace_enabled() && b->trace.valid) {
        struct trace_span *span = trace_span_start("bus receive", TRACE_CONSUMER, &b->trace);
        trace_attr_str(span, "messaging.system", cl->bus->ops->name, strlen(cl->bus->ops->name));
        trace_attr_int(span, "chatd.events", b->n);
        trace_attr_int(span, "chatd.channel", room);
        trace_attr_int(span, "chatd.bytes", (int64_t)len);
        b->trace = *trace_span_ctx(span);
        fanout_deliver_local(cl->cfg.fanout, b); /* b is the I/O threads' from here */
        trace_span_end(span);
        return;
    }
    fanout_deliver_local(cl->cfg.fanout, b);
}

void cluster_interest(struct cluster *cl, int64_t room, int on)
{
    struct croom *r;
    pthread_mutex_lock(&cl->mu);
    r = imap_get(&cl->rooms, room);
    if (on) {
        if (!r) {
            r = xcalloc(1, sizeof(*r));
            imap_put(&cl->rooms, room, r);
            if (cl->bus) cl->bus->ops->interest(cl->bus, room, 1);
        }
        r->threads++;
    } else if (r && --r->threads == 0) {
        imap_del(&cl->rooms, room);
        free(r);
        if (cl->bus) cl->bus->ops->interest(cl->bus, room, 0);
    }
    pthread_mutex_unlock(&cl->mu);
}

/* ---- reconciliation ---- */

#define AHEAD_CHUNK 5000 /* rooms per rooms_ahead call (bounds the statement's size) */

struct ahead {
    struct cluster *cl;
    struct fan_batch *b;
};

/* rooms_ahead: a followed room's log is ahead of what this node delivered; its subscribers read
 * the rest from storage. */
static int ahead_row(void *ud, int64_t room, int64_t last_seq)
{
    struct ahead *a = ud;
    pthread_mutex_lock(&a->cl->mu);
    seen_locked(a->cl, room, last_seq);
    pthread_mutex_unlock(&a->cl->mu);
    if (!a->b) a->b = fan_batch_new();
    fan_batch_add(a->b, &(struct fan_ev){.kind = FAN_HEAD, .room = room, .seq = last_seq});
    atomic_fetch_add(&a->cl->heads_fixed, 1);
    return 0;
}

static int session_row(void *ud, int64_t sid, int64_t at_ms)
{
    struct cluster *cl = ud;
    int known;
    pthread_mutex_lock(&cl->mu);
    known = imap_get(&cl->sessions, sid) != NULL;
    if (!known) session_handled_locked(cl, sid, at_ms);
    pthread_mutex_unlock(&cl->mu);
    if (!known) {
        struct fan_ev ev = {.kind = FAN_SESSION_END, .user = 0, .seq = sid};
        struct fan_batch *b = fan_batch_new();
        if (cl->cfg.on_session_end) cl->cfg.on_session_end(cl->cfg.ud, sid, at_ms);
        fan_batch_add(b, &ev);
        fanout_deliver_local(cl->cfg.fanout, b);
        atomic_fetch_add(&cl->sessions_fixed, 1);
    }
    return 0;
}

static void reconcile_pass(struct cluster *cl)
{
    struct store_conn *sc = store_reader(cl->cfg.db);
    const struct store_ops *ops = cl->cfg.db->ops;
    struct ahead a = {.cl = cl};
    int64_t *ids = NULL, *seen = NULL;
    struct imap_ent *e;
    uint32_t n = 0, i;
    int64_t now = clock_unix_ms(), since;

    if (!sc) return;
    pthread_mutex_lock(&cl->mu);
    if (cl->rooms.n) {
        ids = xmalloc(cl->rooms.n * sizeof(*ids));
        seen = xmalloc(cl->rooms.n * sizeof(*seen));
    }
    for (e = imap_first(&cl->rooms, &i); e; e = imap_next(&cl->rooms, e, &i)) {
        ids[n] = e->key;
        seen[n++] = ((struct croom *)e->val)->seen;
    }
    pthread_mutex_unlock(&cl->mu);
    /* The followed rooms' heads, a few thousand per round trip: whatever the node follows, a
     * pass costs n / AHEAD_CHUNK statements, and only lagging rooms come back. */
    for (i = 0; i < n; i += AHEAD_CHUNK) {
        size_t k = n - i < AHEAD_CHUNK ? n - i : AHEAD_CHUNK;
        if (ops->rooms_ahead(sc, ids + i, seen + i, k, ahead_row, &a) != CD_OK) break;
    }
    free(ids);
    free(seen);
    if (a.b) fanout_deliver_local(cl->cfg.fanout, a.b);

    since = cl->sessions_since - SESSION_OVERLAP;
    if (ops->sessions_revoked_since(sc, since, session_row, cl) == CD_OK) cl->sessions_since = now;
    pthread_mutex_lock(&cl->mu); /* forget sessions handled long ago */
    for (e = imap_first(&cl->sessions, &i); e;) {
        struct imap_ent *next = imap_next(&cl->sessions, e, &i);
        if ((int64_t)(intptr_t)e->val < now - SESSION_KEEP) imap_del(&cl->sessions, e->key);
        e = next;
    }
    pthread_mutex_unlock(&cl->mu);
}

static void *reconcile_main(void *arg)
{
    struct cluster *cl = arg;
    pthread_mutex_lock(&cl->mu);
    while (!cl->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += cl->cfg.reconcile_ms / 1000;
        ts.tv_nsec += (long)(cl->cfg.reconcile_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
        if (cl->stop) break;
        pthread_mutex_unlock(&cl->mu);
        reconcile_pass(cl);
        pthread_mutex_lock(&cl->mu);
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

int cluster_start(struct cluster *cl, struct bus *bus)
{
    struct imap_ent *e;
    uint32_t i;
    pthread_mutex_lock(&cl->mu);
    cl->bus = bus;
    for (e = imap_first(&cl->rooms, &i); e; e = imap_next(&cl->rooms, e, &i))
        bus->ops->interest(bus, e->key, 1);
    pthread_mutex_unlock(&cl->mu);
    cl->cfg.fanout->forward = cluster_forward;
    cl->cfg.fanout->forward_ud = cl;
    if (pthread_create(&cl->thread, NULL, reconcile_main, cl) != 0) return CD_E_IO;
    cl->running = 1;
    return CD_OK;
}

void cluster_quiesce(struct cluster *cl)
{
    if (!cl || !cl->running) return;
    pthread_mutex_lock(&cl->mu);
    cl->stop = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    pthread_join(cl->thread, NULL);
    cl->running = 0;
}

void cluster_free(struct cluster *cl)
{
    struct imap_ent *e;
    uint32_t i;
    if (!cl) return;
    cluster_quiesce(cl);
    if (cl->bus) cl->bus->ops->close(cl->bus);
    cl->cfg.fanout->forward = NULL;
    for (e = imap_first(&cl->rooms, &i); e; e = imap_next(&cl->rooms, e, &i))
        free(e->val);
    imap_free(&cl->rooms);
    imap_free(&cl->sessions);
    pthread_cond_destroy(&cl->cv);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}

void cluster_stats(struct cluster *cl, struct cluster_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->forwarded = atomic_load(&cl->forwarded);
    out->received = atomic_load(&cl->received);
    out->decode_errors = atomic_load(&cl->decode_errors);
    out->heads_fixed = atomic_load(&cl->heads_fixed);
    out->sessions_fixed = atomic_load(&cl->sessions_fixed);
    if (cl->bus) {
        cl->bus->ops->stats(cl->bus, &out->bus);
        out->connected = cl->bus->ops->connected(cl->bus);
    }
}
