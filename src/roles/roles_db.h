/* roles_db.h - the background roles' way to write: a job on the store's writer thread, waited
 * for. The roles run on their own threads (never an I/O thread), so blocking here is fine. */
#ifndef CD_ROLES_DB_H
#define CD_ROLES_DB_H

#include "outbox/outbox.h"
#include "store/store.h"

/* Runs on the writer thread inside the batch transaction; may run again when the batch is
 * retried (PostgreSQL, several writers), so it must only write to the store. */
typedef int (*roles_write_fn)(const struct store_ops *ops, struct store_conn *c, void *ud);

/* Run fn in the writer's next batch and wait until it is committed. Returns fn's status, the
 * commit's (CD_E_IO, CD_E_UNAVAILABLE) or CD_E_UNAVAILABLE once the store is closing. Blocks;
 * any thread but an I/O thread. */
int roles_write(struct store_db *db, roles_write_fn fn, void *ud);

/* Start the outbox consumer `name` of a role body (outbox_consumer_start with the default
 * backoff): CD_OK with *out set, or the outbox's error (logged). */
int roles_consume(struct store_db *db, const char *name, outbox_handle_fn handle, void *ud,
                  int batch, int poll_ms, struct outbox_consumer **out);

#endif
