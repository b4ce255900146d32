/* outbox.h - consumers of the outbox (issue 13): a named position in the global event stream
 * (store_ops.outbox_page), advanced only after the consumer's handler took a batch.
 *
 * Each consumer runs on its own thread with its own read connection: it reads a batch after its
 * saved position, hands it to handle(), and on CD_OK saves the position past the batch (a job on
 * the store's writer: the save rides the next group commit, nothing writes beside the writer)
 * before reading on. Any other return moves the position past the leading events the handler
 * says it took (*taken, 0 by default) and hands the rest again: at once when some were taken,
 * else after a backoff (doubling from backoff_ms up to 30 s). A sink that must keep order
 * (the relay, the exporter) takes a prefix and nothing after its first failure, so what it
 * stores downstream is always a prefix of the outbox followed by nothing it will not re-send
 * in order. Delivery is at least once, in position order (so in per-room order): a process
 * killed between a handled batch and its save hands that batch again after a restart;
 * consumers de-duplicate by the events' stable ids.
 *
 * Wake-ups: outbox_notify() after each local group commit wakes every consumer at once; commits
 * of other nodes (PostgreSQL) are found by polling every poll_ms.
 *
 * A name is one position: run a consumer of a given name in one process at a time (two would
 * each hand every event over; their saves only keep the larger position). Consumers that must
 * run on several nodes at once take a name per node, or split the stream among themselves. */
#ifndef CD_OUTBOX_H
#define CD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/jsonw.h"

#define OUTBOX_NAME_MAX 64

/* A consumer's batch handler (see outbox_consumer_cfg.handle). */
typedef int (*outbox_handle_fn)(void *ud, const struct store_outbox_event *evs, size_t n,
                                size_t *taken);

struct outbox_consumer_cfg {
    const char *name; /* the saved position's key ([A-Za-z0-9_.-], at most OUTBOX_NAME_MAX) */
    /* Consumer thread. The events' strings are valid during the call only. CD_OK: the position
     * moves past the batch (*taken is ignored); anything else: it moves past the first *taken
     * events (0 on entry, at most n) and the rest is handed again. */
    outbox_handle_fn handle;
    void *ud;
    int batch;         /* events per handle() call at most; 0 = 256 */
    int poll_ms;       /* longest wait for events without a local wake-up; 0 = 1000 */
    int backoff_ms;    /* first retry delay after a refused batch; 0 = 500 */
    int64_t start_pos; /* > 0: start after this position when the name has none saved yet */
};

struct outbox_consumer;

/* Starts a consumer (opens its read connection, reads its saved position, starts its thread).
 * CD_OK with *out set; CD_E_INVALID_FIELD for a bad name or no handler; CD_E_IO when the
 * connection or the position cannot be read (logged). The cfg's strings are copied. */
int outbox_consumer_start(struct store_db *db, const struct outbox_consumer_cfg *cfg,
                          struct outbox_consumer **out);
/* Stops the thread (waits for a handle() in progress to return), closes the connection and
 * frees c. The last handled batch's position is saved before it returns. Blocks. NULL: no-op. */
void outbox_consumer_stop(struct outbox_consumer *c);
/* The position after the last batch handled (any thread; a snapshot). */
int64_t outbox_consumer_pos(struct outbox_consumer *c);

/* One consumer's counters for /metrics (a snapshot; head is the outbox's last position as the
 * consumer last read it: after each batch it reads, or each poll while idle). */
struct outbox_consumer_stats {
    const char *name; /* valid during the callback */
    int64_t pos, head;
    uint64_t batches_handled; /* handle() returned CD_OK */
    uint64_t batches_refused; /* anything else (a partly taken batch included) */
};
/* Calls cb for every running consumer of this process, under the registry's lock (cb must not
 * start or stop consumers). Any thread. */
void outbox_consumer_stats_each(void (*cb)(void *ud, const struct outbox_consumer_stats *st),
                                void *ud);

/* Wakes every consumer of db, and counts a generation (outbox_generation): call after each
 * group commit on this node (the store's batch_done). Any thread; never blocks on I/O. */
void outbox_notify(struct store_db *db);
/* A counter bumped by every outbox_notify of this process: a waiter that saw it change knows
 * new events may be there (any thread). */
uint64_t outbox_generation(void);

/* The envelope every sink (GET /v1/server/events, the relay, webhooks, exporters) writes for an
 * event: {"pos":N,"id":"...","type":"...","room":"r_1"|null,"ts":N,"data":{...}}. */
void outbox_event_json(struct jsonw *w, const struct store_outbox_event *ev);

#endif
