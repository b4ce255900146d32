/* bus.h - where committed chat events go to reach every I/O thread of every node.
 *
 * A bus publishes batches of fanout events (struct fan_batch, chat/fanout.h) in order. The
 * in-process bus (bus_local.c) hands one reference of the batch to each local I/O thread's inbox;
 * a NATS bus will later also forward batches to other nodes. One small vtable, as the store. */
#ifndef CD_BUS_H
#define CD_BUS_H

struct bus;
struct fan_batch;

struct bus_ops {
    const char *name;
    /* Publish b (takes ownership of the caller's reference). Order between calls from one thread
     * is preserved for every receiver. Never blocks. */
    void (*publish)(struct bus *bus, struct fan_batch *b);
};

struct bus {
    const struct bus_ops *ops;
    void *impl;
};

#endif
