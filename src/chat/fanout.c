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

void fanout_flush(void *fanout)
{
    struct fanout *f = fanout;
    struct fan_batch *b = f->cur;
    if (!b) return;
    f->cur = NULL;
    f->bus->ops->publish(f->bus, b);
}

void fanout_publish_one(struct fanout *f, const struct fan_ev *ev)
{
    struct fan_batch *b = fan_batch_new();
    fan_batch_add(b, ev);
    f->bus->ops->publish(f->bus, b);
}

/* ---- in-process bus ---- */

struct bus_local {
    struct net_server *srv;
    void (*deliver)(struct net_io *io, struct fan_batch *b);
};

struct bus_task {
    struct net_task t;
    struct fan_batch *b;
    struct bus_local *bl;
};

static void bus_task_run(struct net_io *io, struct net_task *t)
{
    struct bus_task *bt = (struct bus_task *)t;
    bt->bl->deliver(io, bt->b);
    fan_batch_unref(bt->b);
    free(bt);
}

static void local_publish(struct bus *bus, struct fan_batch *b)
{
    struct bus_local *bl = bus->impl;
    int n = bl->srv->nio;

    atomic_fetch_add(&b->refs, (unsigned)n - 1); /* the caller's reference goes to thread 0 */
    for (int i = 0; i < n; i++) {
        struct bus_task *bt = xmalloc(sizeof(*bt));
        bt->t.run = bus_task_run;
        bt->b = b;
        bt->bl = bl;
        net_post(&bl->srv->io[i], &bt->t);
    }
}

static const struct bus_ops bus_local_ops = {.name = "local", .publish = local_publish};

void bus_local_init(struct bus *bus, struct net_server *srv,
                    void (*deliver)(struct net_io *io, struct fan_batch *b))
{
    struct bus_local *bl = xcalloc(1, sizeof(*bl));
    bl->srv = srv;
    bl->deliver = deliver;
    bus->ops = &bus_local_ops;
    bus->impl = bl;
}

void bus_local_free(struct bus *bus)
{
    free(bus->impl);
    bus->impl = NULL;
}
