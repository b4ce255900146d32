/* roles_relay.h - the `relay` role (cluster mode): every outbox event published to a NATS
 * JetStream stream, created if missing (subjects chatd.events.>, file storage, replicated). Each
 * message is published on chatd.events.<type>.<room id> (type with '.' as '_') with the header
 * Nats-Msg-Id = the event id, so a batch published again after a crash or a failed acknowledgement
 * is stored once (the stream's duplicate window, 10 minutes for a stream the relay creates). Runs
 * as the outbox consumer "relay": its position advances past the events JetStream acknowledged,
 * a prefix of each batch. Messages are chained with Nats-Expected-Last-Sequence, so the stream
 * never stores an event after one that failed before it: a room's events are in the stream in
 * commit order, each first copy after the previous one (docs/INTEGRATIONS.md, "JetStream").
 * The relay must be the stream's only publisher. */
#ifndef CD_ROLES_RELAY_H
#define CD_ROLES_RELAY_H

#include <stdint.h>

#include "store/store.h"

struct roles_relay_cfg {
    const char *nats_url; /* comma-separated nats://host:port, required */
    const char *stream;   /* e.g. "CHATD_EVENTS" */
    int replicas;         /* for a stream it creates; 0 = the servers known, at most 3 */
    int batch;            /* events per batch (outbox page) */
    int64_t poll_ms;      /* outbox poll interval when idle */
    int64_t timeout_ms;   /* a batch's acknowledgements must arrive within this */
};

struct roles_relay;

/* Connect (in the background: an unreachable NATS only delays the batches) and start the
 * consumer thread. CD_OK, or CD_E_INVALID_FIELD (no server in nats_url) / CD_E_IO, logged. */
int roles_relay_start(struct store_db *db, const struct roles_relay_cfg *cfg,
                      struct roles_relay **out);
/* Stop the consumer (its current batch ends first), close the connection. NULL is fine. */
void roles_relay_stop(struct roles_relay *r);

/* Counters for /metrics, since the process started (any thread). */
struct roles_relay_stats {
    uint64_t published;  /* events the stream stored */
    uint64_t duplicates; /* events the stream acknowledged as already stored */
    uint64_t failures;   /* events of a batch not acknowledged (refused, timed out, or after
                          * one that was: handed again) */
};
/* Fills *out; returns 1 while a relay runs in this process, else 0. Any thread. */
int roles_relay_stats(struct roles_relay_stats *out);

#endif
