/* roles_notifier.h - the `notifier` role: offline notifications. For every message event of the
 * outbox, each member of the room but the sender who has no open connection anywhere (asked
 * through cfg.online: this node's presence, or Redis in a cluster) and has not muted the room
 * gets a notification
 *   {"type":"notification","user":"u_2","room":"r_1","sender":"u_1","seq":7,"ts":...,
 *    "excerpt":"...","mention":true}
 * logged ("notification") and, with a notify URL, queued as a webhook delivery to endpoint
 * ROLES_WEBHOOK_NOTIFY_ID (signed and retried like every webhook; delivery event id
 * "n_<user>_<room>_<seq>", so a batch handled again after a crash queues nothing twice).
 * Coalescing: at most one notification per (user, room) per window_ms of message time. The
 * window is stored (store_ops.notify_take, table notify_last) in the transaction that queues
 * the notification, so it holds across restarts and between notifier processes; a batch's
 * notes are decided in writer jobs of at most ROLES_NOTIFY_WRITE_MAX, windows that have passed
 * are pruned as often (once a minute), and an in-memory copy of the windows this process
 * opened spares storage the pairs it knows are closed. Counted in roles_stat (produced,
 * coalesced, muted). Runs as outbox consumer "notifier". */
#ifndef CD_ROLES_NOTIFIER_H
#define CD_ROLES_NOTIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct roles_webhook;

#define ROLES_NOTIFY_WRITE_MAX 256 /* notes decided, or windows pruned, per writer job */

struct roles_notifier_cfg {
    /* Whether user has an open connection anywhere: CD_OK with *online set, or an error (the
     * batch is retried later). Called on the consumer thread. */
    int (*online)(void *ud, int64_t user, int *online);
    void *online_ud;
    int has_webhook;          /* queue deliveries to ROLES_WEBHOOK_NOTIFY_ID */
    struct roles_webhook *wh; /* kicked after deliveries are queued (NULL: none) */
    int64_t window_ms;        /* coalescing window per (user, room) */
    size_t excerpt_max;       /* bytes of text in a notification */
    int max_members;          /* members looked at per message */
    int batch;
    int64_t poll_ms;
};

struct roles_notifier;

/* Start the consumer thread. CD_OK, or CD_E_NOMEM / an outbox error (logged). */
int roles_notifier_start(struct store_db *db, const struct roles_notifier_cfg *cfg,
                         struct roles_notifier **out);
/* Stop the consumer (its current batch ends first). NULL is fine. */
void roles_notifier_stop(struct roles_notifier *n);

/* The longest prefix of text of at most max bytes that ends on a UTF-8 character boundary
 * (text is valid UTF-8). */
size_t roles_notifier_excerpt_len(const char *text, size_t len, size_t max);
/* 1 when "@<username>" appears in text as a whole name (not followed by a name character). */
int roles_notifier_mentions(const char *text, size_t len, const char *username);

#endif
