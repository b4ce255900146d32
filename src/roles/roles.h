/* roles.h - what one chatd process does (--roles, env CHATD_ROLES, default all).
 *
 *   gateway   HTTP and WebSocket: clients, the REST API, the server API (/v1/server/...)
 *   relay     the outbox to NATS JetStream (cluster mode)
 *   notifier  webhooks and offline notifications
 *   exporter  the outbox to Kafka
 *   indexer   the search index
 *
 * One process runs all of them by default; in a cluster each can run as a process of its own.
 * Roles do not call each other: they share the database (the outbox is the stream every
 * consumer role reads, each from its own saved position) and NATS (docs/ARCHITECTURE.md,
 * "Roles"). A role other than gateway is a set of outbox consumers (outbox/outbox.h) started by
 * roles_start when the role is enabled: its body registers a struct roles_worker in the table
 * of roles.c. */
#ifndef CD_ROLES_H
#define CD_ROLES_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum roles_bit {
    ROLES_GATEWAY = 1u << 0,
    ROLES_RELAY = 1u << 1,
    ROLES_NOTIFIER = 1u << 2,
    ROLES_EXPORTER = 1u << 3,
    ROLES_INDEXER = 1u << 4,
};
#define ROLES_ALL 0x1fu

/* "all", or names separated by commas (spaces around them ignored): CD_OK with *mask set, or
 * CD_E_INVALID_FIELD with bad (cap bytes) naming the first unknown or empty entry. */
int roles_parse(const char *s, unsigned *mask, char *bad, size_t cap);
/* "gateway,relay,..." for logs. */
void roles_format(unsigned mask, char *out, size_t cap);

/* What a role's worker gets. settings: the server's configuration (struct cfg of
 * server/config.h), for the role body's own flags; roles.c never reads it. */
struct roles_env {
    struct store_db *db;
    const char *node_id;
    const void *settings;
    /* Whether a user has an open connection anywhere (the notifier's "offline"): CD_OK with
     * *online set, or an error (retried). Any thread. NULL: no presence source here. */
    int (*online)(void *ud, int64_t user, int *online);
    void *online_ud;
};

/* A role's body: start() runs once at startup (main thread) when the role is enabled, and
 * typically starts outbox consumers; a failure (not CD_OK) stops chatd from starting. stop()
 * runs at shutdown before storage closes (it must stop its consumers and free state). */
struct roles_worker {
    unsigned role; /* one enum roles_bit */
    const char *name;
    int (*start)(const struct roles_env *env, void **state);
    void (*stop)(void *state);
};

struct roles_run;

/* Starts the workers of the enabled roles, in table order. CD_OK with *out set (also when no
 * worker is registered for an enabled role: logged), or the first failing start's status
 * (those already started are stopped). */
int roles_start(unsigned mask, const struct roles_env *env, struct roles_run **out);
/* Stops every started worker, in reverse order, and frees run. NULL: no-op. */
void roles_stop(struct roles_run *run);
/* The table of workers (entries without start are skipped): n set to its length. */
const struct roles_worker *roles_workers(size_t *n);

#endif
