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

#include "net/net.h"
#include "trace/trace.h"
#include "util/hist.h"
#include "util/rbuf.h"

enum fan_kind {
    FAN_LOG = 0,     /* a committed room log entry (message, member, room) with its seq */
    FAN_REPLY,       /* a reply frame for one connection (errors, idempotent re-acks) */
    FAN_LOADED,      /* a connection's room list, read in commit order (subscription start) */
    FAN_TYPING,      /* ephemeral typing frame for a room, not to the typing user */
    FAN_PRESENCE,    /* presence frame for the members of `rooms` */
    FAN_USER,        /* a frame for every connection of `user` (read markers), except origin */
    FAN_SESSION_END, /* close every connection of `user` (0: of anyone) opened with session
                        `seq` */
    FAN_HEAD,        /* room's log reaches `seq` in storage (cluster reconciliation): live
                        subscribers behind it fill the gap from storage */
    FAN_RECEIPT,     /* a read receipt of `user` for a room: to its other users' connections
                        (not a log entry; delivered like typing) */
    FAN_BLOCK,       /* `user` blocked (member 1) or unblocked (0) user `seq`, or every pair of
                        `user` is gone (member 2, account deletion): other nodes' presence
                        filters follow (chat/people.h); nothing to deliver */
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
    struct trace_ctx trace; /* tracing: the span that published it (valid 0: none) */
};

struct fan_batch *fan_batch_new(void);
/* Append a copy of ev (ownership of its references moves into the batch). */
void fan_batch_add(struct fan_batch *b, const struct fan_ev *ev);
/* Drop one reference; the last one releases every frame and array. */
void fan_batch_unref(struct fan_batch *b);

/* The writer side: events of committed jobs accumulate and leave once per group commit.
 * Delivery to this node's connections is in-process: one task per I/O thread, each holding a
 * reference to the same batch. When the node is part of a cluster, `forward` first sees every
 * published batch (chat/cluster.c serializes what crosses nodes onto the bus). */
struct fanout {
    struct net_server *srv;
    void (*deliver)(struct net_io *io, struct fan_batch *b); /* runs on each I/O thread */
    void (*forward)(void *ud, const struct fan_batch *b);    /* NULL on a single node */
    void *forward_ud;
    struct fan_batch *cur; /* writer thread only */
    struct hist latency;   /* publish to the end of one I/O thread's delivery, per thread */
};

void fanout_init(struct fanout *f, struct net_server *srv,
                 void (*deliver)(struct net_io *io, struct fan_batch *b));
/* Writer thread: add ev to the batch of the current group commit. */
void fanout_add(struct fanout *f, const struct fan_ev *ev);
/* Writer thread (store batch_done hook): publish the current batch, if any. */
void fanout_flush(void *fanout);
/* Any thread: publish a batch holding just ev (typing, presence). */
void fanout_publish_one(struct fanout *f, const struct fan_ev *ev);
/* Any thread: deliver b to this node's connections only (takes the caller's reference): events
 * that came from another node, or that concern this node alone. */
void fanout_deliver_local(struct fanout *f, struct fan_batch *b);

#endif
