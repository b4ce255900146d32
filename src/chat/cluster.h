/* cluster.h - a node among several: what this node commits goes to the bus for the others,
 * what the others commit comes from the bus to this node's connections, and what the bus
 * loses is found again in storage.
 *
 * Interest: the hub reports rooms that gain their first or lose their last local subscriber on
 * an I/O thread; the cluster counts them over threads and subscribes the node to a room's
 * channel while any thread has one.
 *
 * Reconciliation (the bus is at-most-once): every `reconcile_ms` a thread reads the head (last
 * seq) of every room of interest from storage and, where it is past what the node saw, hands
 * the I/O threads a FAN_HEAD so their subscribers fill the gap from storage: a lost last
 * message of a quiet room reaches its online members within about reconcile_ms plus one read.
 * The same pass reads the sessions ended since the previous pass, so a logout whose bus
 * message was lost still closes its sockets here and refuses its tokens. */
#ifndef CD_CLUSTER_H
#define CD_CLUSTER_H

#include <stdint.h>

#include "bus/bus.h"
#include "chat/fanout.h"
#include "store/store.h"

struct cluster;

struct cluster_cfg {
    struct fanout *fanout;
    struct store_db *db;
    uint32_t reconcile_ms; /* >= 100 */
    /* Another node ended session sid (the user is 0 when only storage told): refuse its tokens.
     * Runs on a bus or cluster thread. */
    void (*on_session_end)(void *ud, int64_t sid, int64_t at_ms);
    void *ud;
};

/* A cluster without a bus yet: open the bus with cluster_bus_recv and this as its ud, then
 * cluster_start. */
struct cluster *cluster_new(const struct cluster_cfg *cfg);
/* Start forwarding (sets the fanout's forward hook) and the reconciliation thread. CD_OK. */
int cluster_start(struct cluster *cl, struct bus *bus);
/* Stop the reconciliation thread (no storage reads afterwards); forwarding goes on. Blocks.
 * NULL is a no-op. */
void cluster_quiesce(struct cluster *cl);
/* Stop the thread and the forwarding, close the bus. After the writer stopped. Blocks. NULL is
 * a no-op. */
void cluster_free(struct cluster *cl);

/* The bus's receive callback (bus/bus.h): decode, note the seqs seen, deliver locally. */
void cluster_bus_recv(void *ud, int64_t room, const uint8_t *data, size_t len);
/* The fanout's forward hook: serialize what crosses nodes, one bus message per run of one
 * channel. Any thread; never blocks on the network. */
void cluster_forward(void *ud, const struct fan_batch *b);
/* An I/O thread's hub gained (on = 1) or lost its last local subscriber of room. */
void cluster_interest(struct cluster *cl, int64_t room, int on);

struct cluster_stats {
    uint64_t forwarded, received, decode_errors, heads_fixed, sessions_fixed;
    struct bus_stats bus;
    int connected;
};
void cluster_stats(struct cluster *cl, struct cluster_stats *out);

#endif
