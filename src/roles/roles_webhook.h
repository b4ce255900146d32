/* roles_webhook.h - the webhook delivery engine: durable deliveries (store_ops.delivery_*)
 * POSTed to their endpoints by one worker thread with libcurl, retried with exponential backoff
 * and jitter, dead-lettered after the last attempt (replayable through the server API).
 *
 * A request: POST <url>, Content-Type: application/json, the delivery's body, and
 *   X-Chatd-Event-Id: <event id>        (the idempotency id: the same on every retry)
 *   X-Chatd-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   X-Chatd-Attempt: <n, from 1>
 * Before its attempt a row is claimed (store_ops.delivery_claim, a lease on next_at), so workers
 * on several nodes never POST the same row at once, and a worker that dies mid-attempt leaves
 * the row due again when the lease ends.
 * A 2xx answer within timeout_ms is a delivery; anything else is retried. Attempt n + 1 waits
 * min(retry_base_ms * 2^(n-1), retry_max_ms), scaled by a random factor in [0.5, 1.0): with the
 * defaults (10 s, 1 h, 20 attempts) the last retry comes about 9 to 17 hours after the first. */
#ifndef CD_ROLES_WEBHOOK_H
#define CD_ROLES_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Endpoints given by flags, not rows of the webhooks table. */
#define ROLES_WEBHOOK_DEFAULT_ID (-1) /* --webhook-url / --webhook-secret */
#define ROLES_WEBHOOK_NOTIFY_ID  (-2) /* --notify-webhook-url (secret: --webhook-secret) */

struct roles_webhook_cfg {
    const char *url, *secret;            /* default endpoint, NULL/"" = none */
    const char *types;                   /* its event type filter ("*" = all) */
    const char *notify_url;              /* notification endpoint, NULL/"" = none */
    int max_attempts;                    /* then dead (>= 1) */
    int64_t retry_base_ms, retry_max_ms; /* backoff schedule (above) */
    int64_t timeout_ms;                  /* per request, connect included */
    int64_t poll_ms;                     /* how often pending rows are looked for when idle */
    /* Delivered rows are deleted this long after their delivery (--webhook-retention), in
     * batches of ROLES_PRUNE_BATCH rows, one writer job each; pending and dead rows stay (a
     * dead one until it is replayed or deleted through the server API). >= 1000. */
    int64_t retention_ms;
};

#define ROLES_PRUNE_BATCH                                                                          \
    500 /* rows per pruning writer job (short: the writer never waits long)                        \
         */

/* Counters of this process's webhook engine and notifier, for /metrics. Any thread. */
enum roles_stat {
    ROLES_WH_ATTEMPTS,     /* POSTs that ended (2xx, error or timeout) */
    ROLES_WH_SUCCEEDED,    /* ... answered 2xx: delivered */
    ROLES_WH_FAILED,       /* ... that failed (retried later, or dead) */
    ROLES_WH_DEAD,         /* deliveries that became dead letters */
    ROLES_WH_PRUNED,       /* delivered rows deleted after the retention */
    ROLES_NOTE_PRODUCED,   /* notifications produced (logged, queued to the notify endpoint) */
    ROLES_NOTE_COALESCED,  /* ... not produced: inside the (user, room) window */
    ROLES_NOTE_MUTED,      /* ... not produced: the member muted the room */
    ROLES_WH_PENDING_ROWS, /* gauge: pending rows in storage (all nodes) at the last count */
    ROLES_WH_DEAD_ROWS,    /* gauge: dead rows */
    ROLES_WH_DONE_ROWS,    /* gauge: delivered rows not yet pruned */
    ROLES_WH_COUNTED,      /* gauge: 1 once the engine counted the rows (the gauges are real) */
    ROLES_STAT__N
};
void roles_stat_add(enum roles_stat s, uint64_t n);
void roles_stat_set(enum roles_stat s, uint64_t v);
uint64_t roles_stat_get(enum roles_stat s);

struct roles_webhook;

/* Start the worker thread. CD_OK, or CD_E_NOMEM/CD_E_INTERNAL (logged). The engine delivers
 * whatever is pending in the store, including rows left by an earlier run. */
int roles_webhook_start(struct store_db *db, const struct roles_webhook_cfg *cfg,
                        struct roles_webhook **out);
/* The outbox consumer "webhooks" turns every event matching an endpoint's type filter (the
 * default endpoint's --webhook-types, each registered endpoint's types, for events committed
 * from its registration on) into a delivery row, written durably before its position advances:
 * across a crash an event is enqueued again at worst, and the (endpoint, event id) key makes
 * that a no-op. The body POSTed is the outbox envelope (outbox.h, outbox_event_json). With
 * --webhook-url the consumer starts now; otherwise the engine starts it once an endpoint is
 * registered (a node without webhooks does not read the outbox for them). CD_OK or the
 * outbox's error. */
int roles_webhook_feed_start(struct roles_webhook *wh, int batch, int poll_ms);
/* Stop: the feed first (its batch ends), then the engine: an in-flight request is aborted (it
 * stays pending), the thread is joined. Blocks. NULL is fine. Call before store_db_close. */
void roles_webhook_stop(struct roles_webhook *wh);
/* New rows were committed: look now instead of at the next poll. Any thread. */
void roles_webhook_kick(struct roles_webhook *wh);

/* The signature header value for body at unix time t (seconds): "t=<t>,v1=<64 hex>". out needs
 * ROLES_SIG_MAX bytes. */
#define ROLES_SIG_MAX 96
void roles_webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                        char out[ROLES_SIG_MAX]);
/* Delay before attempt `attempts + 1` after `attempts` failed ones (>= 1), for a random r in
 * [0, 1). */
int64_t roles_webhook_backoff(const struct roles_webhook_cfg *cfg, int attempts, double r);
/* 1 when the comma-separated filter (`*` or empty = all) names type. */
int roles_webhook_type_match(const char *filter, const char *type, size_t type_len);

/* The endpoints that receive an event of `type` committed at ts (flag endpoint first, then rows
 * in id order, each only for events from its created_at on): cb(ud, endpoint id) for each.
 * Reads the webhooks table on c. */
int roles_webhook_targets(const struct store_ops *ops, struct store_conn *c,
                          const struct roles_webhook_cfg *cfg, const char *type, size_t type_len,
                          int64_t ts, void (*cb)(void *ud, int64_t endpoint_id), void *ud);

#endif
