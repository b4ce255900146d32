/* roles_db.h - the background roles' way to write: a job on the store's writer thread, waited
 * for. The roles run on their own threads (never an I/O thread), so blocking here is fine. */
#ifndef CD_ROLES_DB_H
#define CD_ROLES_DB_H

#include "store/store.h"

/* Runs on the writer thread inside the batch transaction; may run again when the batch is
 * retried (PostgreSQL, several writers), so it must only write to the store. */
typedef int (*roles_write_fn)(const struct store_ops *ops, struct store_conn *c, void *ud);

/* Run fn in the writer's next batch and wait until it is committed. Returns fn's status, the
 * commit's (CD_E_IO, CD_E_UNAVAILABLE) or CD_E_UNAVAILABLE once the store is closing. Blocks;
 * any thread but an I/O thread. */
int roles_write(struct store_db *db, roles_write_fn fn, void *ud);

#endif
