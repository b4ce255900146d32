/* The SQLite backend on a real database in a temp dir: the shared store contract
 * (store_cases.h), and what only SQLite has (migration of the schema-3 log). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_sqlite_schema.h"
#include "util/status.h"

#define T_OPS            (&store_sqlite_ops)
#define STORE_CASES_BULK 100000
#include "store_cases.h"

static void fx_config(struct fx *f, struct store_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dir = f->dir;
    cfg->sync_mode = "normal";
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (fx_start(f) != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    fx_stop(f);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
}

/* A database written by a chatd at schema 3 (the log clustered by room) is migrated to the
 * append-order log: every row keeps its room, seq and fields, each room's log reads back in
 * order, appends continue each room's seqs, and an old client_msg_id is still a duplicate. */
static void schema_3_log_is_migrated(void **state)
{
    struct fx *f = *state;
    struct store_config cfg = {.dir = f->dir, .sync_mode = "normal"};
    struct store *st;
    struct store_conn *c;
    struct collect k;
    sqlite3 *db;
    char path[96];
    int64_t seq;

    snprintf(path, sizeof(path), "%s/v3", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/v3/chatd.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, "PRAGMA page_size=2048; PRAGMA journal_mode=WAL;");
    for (int v = 0; v < 3; v++)
        exec_ok(db, store_sqlite_migrations[v]);
    exec_ok(db,
            "PRAGMA user_version=3;"
            "INSERT INTO users(id, username, pwhash, created_at) VALUES (1, 'al', 'h', 1),"
            "  (2, 'bo', 'h', 1);"
            "INSERT INTO rooms(id, kind, name, created_by, created_at) VALUES (7, 0, 'a', 1, 1),"
            "  (8, 0, 'b', 1, 1);"
            "INSERT INTO events(room_id, seq, kind, sender, ts, client_msg_id, body) VALUES"
            "  (8, 1, 0, 2, 10, 'b1', 'eight-one'), (7, 1, 0, 1, 11, 'a1', 'seven-one'),"
            "  (8, 2, 0, 1, 12, NULL, 'eight-two'), (7, 2, 0, 2, 13, 'b2', 'seven-two'),"
            "  (7, 3, 0, 1, 14, 'a3', 'seven-three');");
    sqlite3_close(db);

    snprintf(path, sizeof(path), "%s/v3", f->dir);
    cfg.dir = path;
    assert_int_equal(store_sqlite_ops.open(&cfg, &st), CD_OK);
    assert_int_equal(store_sqlite_ops.conn_open(st, 1, &c), CD_OK);
    memset(&k, 0, sizeof(k));
    assert_int_equal(store_sqlite_ops.events_page(c, 7, 0, 0, 10, 0, on_event, &k), CD_OK);
    assert_int_equal(k.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.seq[i], i + 1);
    assert_string_equal(k.body[0], "seven-one");
    assert_string_equal(k.body[2], "seven-three");
    assert_int_equal(k.user[1], 2);
    assert_string_equal(k.cmid[2], "a3");
    memset(&k, 0, sizeof(k));
    assert_int_equal(store_sqlite_ops.events_page(c, 8, 0, 0, 10, 1, on_event, &k), CD_OK);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.body[0], "eight-two");
    assert_true(k.cmid_null[0]);

    assert_int_equal(append_on(c, 7, EV_MESSAGE, 1, "a4", "seven-four", &seq), CD_OK);
    assert_int_equal(seq, 4);
    /* migration 6: the key is (room, sender, client_msg_id) */
    assert_int_equal(append_on(c, 7, EV_MESSAGE, 1, "a1", "again", &seq), CD_E_CONFLICT);
    assert_int_equal(append_on(c, 8, EV_MESSAGE, 1, "a1", "elsewhere", &seq), CD_OK);
    assert_int_equal(seq, 3);
    memset(&k, 0, sizeof(k));
    assert_int_equal(store_sqlite_ops.event_by_client_id(c, 7, 1, "a1", 2, on_event, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.room[0], 7);
    assert_int_equal(k.seq[0], 1);
    store_sqlite_ops.conn_close(c);
    store_sqlite_ops.close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CASES(setup, teardown)
            cmocka_unit_test_setup_teardown(schema_3_log_is_migrated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
