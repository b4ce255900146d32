/* bus.h - events crossing from one chatd node to the others.
 *
 * A node delivers what it commits to its own connections in-process (chat/fanout.c); the bus
 * carries the same events to the other nodes. Its payload is a serialized event (chat/wire.h:
 * room, seq, kind and the committed fields), never a pointer, a connection or a frame; each
 * node encodes the frames once on arrival. Replies to one connection never ride the bus.
 *
 * Channels: one per room (a node receives a room only while it has interest in it: some local
 * connection is subscribed) and one control channel (room 0) that every node receives
 * (presence, read markers of a user, ended sessions).
 *
 * What a bus guarantees: messages of one publisher on one channel arrive in publish order; a
 * node never receives its own messages. What it does NOT guarantee: delivery (core NATS is
 * at-most-once: a message published while a link is down, or dropped by a slow consumer, is
 * gone). Receivers order room entries by seq and fill gaps from storage (chat/hub.c), and the
 * cluster layer (chat/cluster.c) periodically compares each room's head in storage with what it
 * saw, so a lost last message still arrives within a bound.
 *
 * Two implementations: bus_local (nodes inside one process: for tests, and a single node,
 * where nobody else listens and publishing costs nothing) and bus_nats (core NATS via libnats).
 */
#ifndef CD_BUS_H
#define CD_BUS_H

#include <stddef.h>
#include <stdint.h>

struct bus;

/* A message from another node, on room's channel (0 = control). Runs on a thread of the bus
 * (never an I/O thread); data is valid during the call only. */
typedef void (*bus_recv_fn)(void *ud, int64_t room, const uint8_t *data, size_t len);

struct bus_stats {
    uint64_t published, publish_failed, received, interest_rooms;
};

struct bus_ops {
    const char *name;
    /* Publish data on room's channel (0 = control). Any thread; never waits for the network
     * (the client buffers). CD_OK, or CD_E_UNAVAILABLE when the message was dropped (not
     * connected and nothing buffers it). */
    int (*publish)(struct bus *b, int64_t room, const void *data, size_t len);
    /* Start (on = 1) or stop receiving room's channel. Any thread; the caller serializes the
     * calls for one room and pairs them. CD_OK or CD_E_UNAVAILABLE. */
    int (*interest)(struct bus *b, int64_t room, int on);
    /* 1 while the bus is connected to its broker (always 1 for bus_local). */
    int (*connected)(struct bus *b);
    void (*stats)(struct bus *b, struct bus_stats *out);
    /* Stop receiving and release everything; no callback runs after it returns. Blocks. */
    void (*close)(struct bus *b);
};

struct bus {
    const struct bus_ops *ops; /* read-only */
    bus_recv_fn recv;          /* read-only: set at open */
    void *ud;
};

/* A bus joining every bus_local of the same `group` name in this process. CD_OK. */
int bus_local_open(struct bus **out, const char *group, bus_recv_fn recv, void *ud);
/* A core NATS bus. urls: one or more comma-separated nats://host:port; node: a name for the
 * connection. Connects in the background and reconnects forever; returns CD_OK, or
 * CD_E_INVALID_FIELD for an unusable URL list, CD_E_IO when libnats fails to start. */
int bus_nats_open(struct bus **out, const char *urls, const char *node, bus_recv_fn recv, void *ud);

#endif
