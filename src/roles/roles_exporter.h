/* roles_exporter.h - the `exporter` role: every outbox event produced to Kafka with librdkafka's
 * idempotent producer (enable.idempotence=true: no duplicates or reordering from the producer's
 * own retries), keyed by room id so a room's events keep their order within one partition. Runs
 * as the outbox consumer "exporter": its position advances past the leading events of a batch
 * that have a successful delivery report. After a failure (broker down, timeout, an error) the
 * producer is destroyed and a new one produces again from the first event not delivered
 * (enable.gapless.guarantee: nothing later of that partition is written after the failure), so
 * a room's events are in its partition in commit order; a consumer of the topic sees each event
 * at least once and may see a duplicate after its first copy (the event id is in the message
 * headers to dedupe on). */
#ifndef CD_ROLES_EXPORTER_H
#define CD_ROLES_EXPORTER_H

#include <stdint.h>

#include "store/store.h"

struct roles_exporter_cfg {
    const char *brokers; /* bootstrap.servers, required */
    const char *topic;   /* e.g. "chatd.events" */
    int batch;           /* events per batch (outbox page) */
    int64_t poll_ms;     /* outbox poll interval when idle */
    int64_t timeout_ms;  /* a batch's delivery reports must arrive within this */
};

struct roles_exporter;

/* Create the producer and start the consumer thread. CD_OK, or CD_E_INVALID_FIELD (a bad
 * librdkafka setting) / CD_E_NOMEM / CD_E_INTERNAL, logged. Does not block on the brokers: an
 * unreachable cluster only delays the batches. */
int roles_exporter_start(struct store_db *db, const struct roles_exporter_cfg *cfg,
                         struct roles_exporter **out);
/* Stop the consumer (its current batch ends first: one still waiting for delivery reports is
 * purged and handed again after a restart), destroy the producer. Blocks about a second at most
 * beyond a produce call in progress. NULL is fine. */
void roles_exporter_stop(struct roles_exporter *ex);

/* Counters for /metrics, since the process started (any thread). */
struct roles_exporter_stats {
    uint64_t produced; /* messages with a successful delivery report */
    uint64_t failures; /* messages with a failed report (an error, or purged at the deadline) */
    uint64_t restarts; /* producers destroyed after a failure (the next batch makes a new one) */
};
/* Fills *out; returns 1 while an exporter runs in this process, else 0. Any thread. */
int roles_exporter_stats(struct roles_exporter_stats *out);

#endif
