/* fanout.h - chat events on their way from the writer (or an I/O thread) to connections.
 *
 * An event is encoded once into a refcounted frame; a batch of events (one group commit) is
 * published on the bus as one unit and each I/O thread delivers it to its local subscribers
 * (chat/hub.c). Nothing here is per recipient.
 */
#ifndef CD_FANOUT_H
#define CD_FANOUT_H

#include <stdatomic.h>
#include <stdint.h>

#include "bus/bus.h"
#include "net/net.h"
#include "util/rbuf.h"

enum fan_kind {
    FAN_LOG = 0,     /* a committed room log entry (message, member, room) with its seq */
    FAN_REPLY,       /* a reply frame for one connection (errors, idempotent re-acks) */
    FAN_LOADED,      /* a connection's room list, read in commit order (subscription start) */
    FAN_TYPING,      /* ephemeral typing frame for a room, not to the typing user */
    FAN_PRESENCE,    /* presence frame for the members of `rooms` */
    FAN_USER,        /* a frame for every connection of `user` (read markers), except origin */
    FAN_SESSION_END, /* close every connection of `user` opened with session `seq` */
};

enum fan_member { FAN_M_NONE = 0, FAN_M_JOIN, FAN_M_LEAVE };

struct fan_ev {
    uint8_t kind;    /* enum fan_kind */
    uint8_t member;  /* FAN_LOG of a member event: enum fan_member */
    uint8_t request; /* answers one of origin's requests in flight (hub_request_begin) */
    int64_t room, seq;
    int64_t user;         /* member event subject, typing/presence user, FAN_USER target */
    int64_t member_count; /* after a member event */
    struct rbuf *frame;   /* shared frame (owned reference), NULL if none */
    struct conn *origin;  /* connection that asked (held with conn_hold), or NULL */
    struct net_io *origin_io;
    struct rbuf *reply; /* frame for the origin only (ack, error), owned, or NULL */
    int64_t *rooms;     /* FAN_LOADED: triples (room, last_seq, member_count); FAN_PRESENCE:
                           room ids. malloc'ed, owned */
    uint32_t nrooms;
};

struct fan_batch {
    atomic_uint refs; /* one per receiving thread */
    uint32_t n, cap;
    struct fan_ev *ev;
};

struct fan_batch *fan_batch_new(void);
/* Append a copy of ev (ownership of its references moves into the batch). */
void fan_batch_add(struct fan_batch *b, const struct fan_ev *ev);
/* Drop one reference; the last one releases every frame and array. */
void fan_batch_unref(struct fan_batch *b);

/* The writer side: events of committed jobs accumulate and leave once per group commit. */
struct fanout {
    struct bus *bus;
    struct fan_batch *cur; /* writer thread only */
};

/* Writer thread: add ev to the batch of the current group commit. */
void fanout_add(struct fanout *f, const struct fan_ev *ev);
/* Writer thread (store batch_done hook): publish the current batch, if any. */
void fanout_flush(void *fanout);
/* Any thread: publish a batch holding just ev (typing, presence). */
void fanout_publish_one(struct fanout *f, const struct fan_ev *ev);

/* The in-process bus: every batch goes to every I/O thread of srv, delivered by `deliver` on
 * that thread. */
void bus_local_init(struct bus *bus, struct net_server *srv,
                    void (*deliver)(struct net_io *io, struct fan_batch *b));
void bus_local_free(struct bus *bus);

#endif
