/* store_migrate.h - `chatd migrate`: copy a single node's SQLite data directory into a
 * PostgreSQL database for a cluster, ids and seqs preserved, all or nothing, verified by counts.
 *
 * It knows both backends' schemas (store_sqlite_schema.h, store_pg_schema.h): every table is
 * read from the SQLite file in one read transaction and written with COPY FROM STDIN inside one
 * PostgreSQL transaction, which commits only when every table's row count matches on both sides
 * and every room's seq counter (rooms.last_seq, PostgreSQL only) equals its log's last seq. */
#ifndef CD_STORE_MIGRATE_H
#define CD_STORE_MIGRATE_H

#include <stdio.h>

struct store_migrate_opts {
    const char *from_dir; /* the single node's --data-dir (chatd.db, chatd.lock, jwt.keys) */
    const char *to_url;   /* libpq URL, postgres://... or postgresql://... */
    /* Target already holding users or rooms: refused. There is no override: merging two
     * nodes' ids is not a copy. */
};

/* Runs the migration. Blocks (disk and network) for as long as the copy takes.
 *
 * Refuses, before writing anything: a data directory a chatd holds (the server's flock on
 * DATA_DIR/chatd.lock, taken here for the whole run so none starts meanwhile), a SQLite schema
 * other than this chatd's (an older one: run this chatd once on it to upgrade), a target that
 * is not PostgreSQL or not UTF-8, and a target whose tables already hold rows. The PostgreSQL
 * schema is created or upgraded by the backend's open (store_pg_ops.open) first.
 *
 * Writes the counts per table (both sides) and notes to `out`, the reason of a failure to
 * `err`. Returns 0 when the copy was committed with matching counts, 1 otherwise (nothing was
 * committed). The JWT keys (DATA_DIR/jwt.keys) are never copied or printed: a note tells the
 * operator to pass them with --jwt-keys to every node. */
int store_migrate_run(const struct store_migrate_opts *o, FILE *out, FILE *err);

#endif
