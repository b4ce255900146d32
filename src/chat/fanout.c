#include "chat/fanout.h"

#include <stdlib.h>
#include <string.h>

struct fan_batch *fan_batch_new(void)
{
    struct fan_batch *b = xcalloc(1, sizeof(*b));
    atomic_init(&b->refs, 1);
    return b;
}

void fan_batch_add(struct fan_batch *b, const struct fan_ev *ev)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->ev = xrealloc(b->ev, b->cap * sizeof(*b->ev));
    }
    b->ev[b->n++] = *ev;
}

void fan_batch_unref(struct fan_batch *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    for (uint32_t i = 0; i < b->n; i++) {
        rbuf_unref(b->ev[i].frame);
        rbuf_unref(b->ev[i].reply);
        free(b->ev[i].rooms);
    }
    free(b->ev);
    free(b);
}

void fanout_add(struct fanout *f, const struct fan_ev *ev)
{
    if (!f->cur) f->cur = fan_batch_new();
    fan_batch_add(f->cur, ev);
}

/* To the other nodes first (the forward hook reads b), then to this node's threads (which take
 * the reference). */
static void publish(struct fanout *f, struct fan_batch *b)
{
    if (f->forward) f->forward(f->forward_ud, b);
    fanout_deliver_local(f, b);
}

/* Tracing: the fanout of a group commit is a span under the commit's (trace_current), covering
 * the hand-off to the I/O threads and the bus; the batch carries its context to other nodes. */
void fanout_flush(void *fanout)
{
    struct fanout *f = fanout;
    struct fan_batch *b = f->cur;
    struct trace_span *span = NULL;
    if (!b) return;
    f->cur = NULL;
    if (trace_enabled() && trace_current()) {
        span = trace_span_start("chat.fanout", TRACE_INTERNAL, trace_current());
        trace_attr_int(span, "chatd.events", b->n);
        trace_attr_int(span, "chatd.io_threads", f->srv->nio);
        b->trace = *trace_span_ctx(span);
    }
    publish(f, b); /* b is the I/O threads' from here */
    trace_span_end(span);
}

void fanout_publish_one(struct fanout *f, const struct fan_ev *ev)
{
    struct fan_batch *b = fan_batch_new();
    fan_batch_add(b, ev);
    publish(f, b);
}

/* ---- in-process delivery ---- */

struct deliver_task {
    struct net_task t;
    struct fan_batch *b;
    struct fanout *f;
    uint64_t t0; /* uv_hrtime at publish */
};

static void deliver_task_run(struct net_io *io, struct net_task *t)
{
    struct deliver_task *dt = (struct deliver_task *)t;
    dt->f->deliver(io, dt->b);
    hist_add(&dt->f->latency, (uv_hrtime() - dt->t0) / 1000);
    fan_batch_unref(dt->b);
    free(dt);
}

void fanout_deliver_local(struct fanout *f, struct fan_batch *b)
{
    int n = f->srv->nio;
    uint64_t t0 = uv_hrtime();

    atomic_fetch_add(&b->refs, (unsigned)n - 1); /* the caller's reference goes to thread 0 */
    for (int i = 0; i < n; i++) {
        struct deliver_task *dt = xmalloc(sizeof(*dt));
        dt->t.run = deliver_task_run;
        dt->b = b;
        dt->f = f;
        dt->t0 = t0;
        net_post(&f->srv->io[i], &dt->t);
    }
}

void fanout_init(struct fanout *f, struct net_server *srv,
                 void (*deliver)(struct net_io *io, struct fan_batch *b))
{
    memset(f, 0, sizeof(*f));
    f->srv = srv;
    f->deliver = deliver;
}
