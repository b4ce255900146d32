/* The PostgreSQL backend on a real server (CHATD_TEST_PG_URL, e.g. from scripts/pg.sh; the test
 * is skipped without it): the shared store contract (store_cases.h), each case in a fresh schema,
 * then what several nodes need: two writer threads ("nodes", each its own store_db) appending to
 * the same rooms at once keep every room's seqs 1..N without gap or duplicate, with and without
 * the rooms locked in order (deadlocks then abort batches, which are run again); a duplicate
 * client_msg_id sent to both nodes is stored once; migrations run once when nodes start
 * together; a writer whose connection is killed fails its batch with CD_E_UNAVAILABLE (nothing
 * acked) and reconnects for the next one; while the server refuses it, the store says it is
 * unavailable until its idle probe gets through. */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "store/store_pg_schema.h"
#include <uv.h>

#include "store/store.h"
#include "store/store_pg_schema.h"
#include "util/status.h"

#include "pg_admin.h"

#define T_OPS            (&store_pg_ops)
#define STORE_CASES_BULK 5000 /* one counter row updated 5000 times in one transaction: O(n^2) */
#include "store_cases.h"

static const char *base_url;
static unsigned schema_seq;

/* SQL on an admin connection to the base database; fails the test on error. */
static void admin(const char *sql)
{
    pg_admin(base_url, sql);
}

/* f->url: the base URL with search_path set to a new schema named f->dir, plus `extra` options
 * (URL-encoded, e.g. "%20-cdeadlock_timeout%3D20ms"). */
static void fx_schema(struct fx *f, const char *extra)
{
    char sql[128];
    snprintf(f->dir, sizeof(f->dir), "t_%d_%u", (int)getpid(), ++schema_seq);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->dir);
    admin(sql);
    snprintf(f->url, sizeof(f->url), "%s%soptions=-csearch_path%%3D%s%s", base_url,
             strchr(base_url, '?') ? "&" : "?", f->dir, extra ? extra : "");
}

static void fx_config(struct fx *f, struct store_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->url = f->url;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    fx_schema(f, NULL);
    if (fx_start(f) != 0) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char sql[128];
    fx_stop(f);
    snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->dir);
    admin(sql);
    free(f);
    return 0;
}

/* ---- optimistic batches (rooms locked up front, appends not waited for) ---- */

/* Appends to locked rooms are numbered from the counters read under the lock; reads in the same
 * transaction see them; a rolled-back savepoint takes its numbers back; commit writes the
 * counters. A duplicate client_msg_id is found late: commit answers CD_AGAIN and nothing of the
 * batch is stored; run again without optimism, the duplicate is CD_E_CONFLICT. */
static void optimistic_batch_numbers_and_late_duplicate(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL), seq = 0, out = 0;
    int64_t rooms[2] = {r1, r2};
    struct store_room room;
    struct collect k;

    put_member(f, r1, f->bob, ROLE_MEMBER, 1);
    assert_int_equal(append(f, r1, f->alice, "first", "x"), 1); /* autocommit, not locked */

    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, rooms, 2, 1), CD_OK);
    assert_int_equal(append(f, r1, f->alice, "a", "r1-2"), 2);
    assert_int_equal(append(f, r2, f->alice, "b", "r2-1"), 1);
    assert_int_equal(append(f, r1, f->bob, NULL, "r1-3"), 3);
    assert_int_equal(f->ops->room_get(f->c, r1, &room), CD_OK);
    assert_int_equal(room.last_seq, 3);
    assert_int_equal(f->ops->read_mark(f->c, r1, f->bob, 100, &out), CD_OK);
    assert_int_equal(out, 3); /* clamped to this transaction's counter */
    assert_int_equal(f->ops->savepoint(f->c), CD_OK);
    assert_int_equal(append(f, r1, f->alice, NULL, "undone"), 4);
    assert_int_equal(append(f, r2, f->alice, NULL, "undone"), 2);
    assert_int_equal(f->ops->savepoint_release(f->c, 1), CD_OK);
    assert_int_equal(append(f, r1, f->alice, NULL, "r1-4"), 4);
    assert_int_equal(f->ops->commit(f->c), CD_OK);

    assert_int_equal(last_seq(f, r1), 4);
    assert_int_equal(last_seq(f, r2), 1);
    page(f, r1, 0, 0, 10, 0, &k);
    assert_int_equal(k.n, 4);
    assert_string_equal(k.body[3], "r1-4");
    page(f, r2, 0, 0, 10, 0, &k);
    assert_int_equal(k.n, 1);

    /* a resend of "a" in an optimistic batch */
    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, rooms, 2, 1), CD_OK);
    assert_int_equal(append(f, r2, f->alice, NULL, "lost"), 2);
    assert_int_equal(append_full(f, r1, EV_MESSAGE, f->alice, "a", "resend", &seq), CD_OK);
    assert_int_equal(seq, 5); /* not known yet to be a duplicate */
    assert_int_equal(f->ops->commit(f->c), CD_AGAIN);
    assert_int_equal(last_seq(f, r1), 4);
    assert_int_equal(last_seq(f, r2), 1);
    /* again, not optimistic */
    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, rooms, 2, 0), CD_OK);
    assert_int_equal(append(f, r2, f->alice, NULL, "kept"), 2);
    assert_int_equal(append_full(f, r1, EV_MESSAGE, f->alice, "a", "resend", NULL), CD_E_CONFLICT);
    assert_int_equal(f->ops->commit(f->c), CD_OK);
    assert_int_equal(last_seq(f, r1), 4);
    assert_int_equal(last_seq(f, r2), 2);
    page(f, r2, 0, 0, 10, 0, &k);
    assert_int_equal(k.n, 2);
    assert_string_equal(k.body[1], "kept");
}

/* ---- several nodes ---- */

#define NODES   2
#define ROOMS   6
#define BURSTS  40
#define BURST   16
#define THREADS 4 /* submitters, alternating between the nodes */
#define JOBS    (THREADS * BURSTS * BURST)

struct multi;

struct mjob {
    struct store_job j;
    struct multi *m;
    int64_t room, sender, seq;
    char cmid[32];
    int resets;
};

struct multi {
    struct fx *f;
    struct store_db db[NODES];
    int64_t rooms[ROOMS];
    uv_mutex_t lock;
    uv_cond_t cond;
    int done, ok, conflicts, other, resets;
    int64_t acked[ROOMS][JOBS + 1]; /* per room: how many acks each seq got */
    unsigned thread_seed[THREADS];
    int dups;  /* every 8th job carries a client_msg_id every thread also sends */
    int split; /* each node writes its own rooms (no lock in common but outbox_head) */
};

static int mjob_exec(const struct store_ops *ops, struct store_conn *c, struct store_job *sj)
{
    struct mjob *mj = (struct mjob *)sj;
    struct store_event ev = {.room_id = mj->room,
                             .kind = EV_MESSAGE,
                             .sender = mj->sender,
                             .ts = 1,
                             .body = "concurrent",
                             .body_len = 10,
                             .client_msg_id = mj->cmid[0] ? mj->cmid : NULL,
                             .cmid_len = strlen(mj->cmid)};
    int rc = ops->event_append(c, &ev);
    if (rc == CD_OK) mj->seq = ev.seq;
    return rc;
}

static void mjob_reset(struct store_job *sj)
{
    struct mjob *mj = (struct mjob *)sj;
    mj->seq = 0;
    mj->resets++;
}

static void mjob_done(struct store_job *sj)
{
    struct mjob *mj = (struct mjob *)sj;
    struct multi *m = mj->m;
    uv_mutex_lock(&m->lock);
    m->resets += mj->resets;
    if (sj->status == CD_OK) {
        m->ok++;
        for (int i = 0; i < ROOMS; i++)
            if (m->rooms[i] == mj->room && mj->seq > 0 && mj->seq <= JOBS) m->acked[i][mj->seq]++;
    } else if (sj->status == CD_E_CONFLICT) {
        m->conflicts++;
    } else {
        m->other++;
    }
    m->done++;
    uv_cond_broadcast(&m->cond);
    uv_mutex_unlock(&m->lock);
    free(mj);
}

struct submitter {
    struct multi *m;
    int id;
};

/* Bursts of jobs to random rooms, each burst queued at once so batches hold many rooms in
 * random order: without ordered locks, two nodes' batches would deadlock. */
static void submit_main(void *arg)
{
    struct submitter *s = arg;
    struct multi *m = s->m;
    unsigned seed = m->thread_seed[s->id];
    struct store_db *db = &m->db[s->id % NODES];

    for (int b = 0; b < BURSTS; b++) {
        struct store_job *head = NULL, *tail = NULL;
        for (int i = 0; i < BURST; i++) {
            struct mjob *mj = calloc(1, sizeof(*mj));
            mj->m = m;
            /* split: each node its own rooms, so the nodes' transactions overlap in time */
            mj->room = m->split
                           ? m->rooms[(rand_r(&seed) % (ROOMS / NODES)) * NODES + s->id % NODES]
                           : m->rooms[rand_r(&seed) % ROOMS];
            mj->sender = m->f->alice;
            /* every 8th job carries a client_msg_id that every thread also sends, to the same
             * room (the key is per room) */
            if (m->dups && i % 8 == 0) {
                snprintf(mj->cmid, sizeof(mj->cmid), "dup-%d-%d", b, i);
                mj->room = m->rooms[(b + i) % ROOMS];
            }
            mj->j.exec = mjob_exec;
            mj->j.done = mjob_done;
            mj->j.reset = mjob_reset;
            mj->j.room_id = mj->room;
            mj->j.clean_fail = 1;
            if (tail)
                tail->next = &mj->j;
            else
                head = &mj->j;
            tail = &mj->j;
        }
        store_submit_list(db, head, tail, BURST);
    }
}

/* The log of every room is 1..N with N = the acks it got, each seq acked exactly once; every
 * duplicate client_msg_id was stored exactly once. */
static void check_logs(struct multi *m, struct store_conn *c)
{
    int64_t total = 0;
    for (int i = 0; i < ROOMS; i++) {
        struct store_room r;
        int64_t acks = 0;
        assert_int_equal(T_OPS->room_get(c, m->rooms[i], &r), CD_OK);
        for (int64_t s = 1; s <= JOBS; s++) {
            if (m->acked[i][s] > 1) fail_msg("room %d seq %lld acked twice", i, (long long)s);
            acks += m->acked[i][s];
        }
        assert_int_equal(r.last_seq, acks);
        for (int64_t s = 1; s <= acks; s++)
            if (m->acked[i][s] != 1) fail_msg("room %d: seq %lld missing", i, (long long)s);
        for (int64_t after = 0; after < acks; after += COLLECT_MAX) {
            struct collect k;
            memset(&k, 0, sizeof(k));
            assert_int_equal(
                T_OPS->events_page(c, m->rooms[i], after, 0, COLLECT_MAX, 0, on_event, &k), CD_OK);
            for (int j = 0; j < k.n; j++)
                assert_int_equal(k.seq[j], after + j + 1);
        }
        total += acks;
    }
    assert_int_equal(total, m->ok);
    /* THREADS threads sent each duplicate id: one stored, THREADS - 1 refused */
    assert_int_equal(m->conflicts, m->dups ? (THREADS - 1) * BURSTS * (BURST / 8) : 0);
    assert_int_equal(m->ok + m->conflicts, JOBS);
}

/* A consumer reading the outbox while the nodes write: every page must continue exactly where
 * the last one ended (pos == last + 1). With positions from a sequence this fails: a batch that
 * took pos 11 can commit after one that took pos 12, and a reader that saw 12 first would skip
 * 11 forever. */
struct ob_reader {
    struct multi *m;
    struct store_conn *c;
    atomic_int stop;
    int64_t last;
    int skipped, errors, pages;
    int64_t msgs;
};

static int ob_reader_ev(void *ud, const struct store_outbox_event *ev)
{
    struct ob_reader *r = ud;
    if (ev->pos != r->last + 1) {
        r->skipped++;
        return 1;
    }
    r->last = ev->pos;
    if (ev->type_len == 7 && !memcmp(ev->type, "message", 7)) r->msgs++;
    return 0;
}

static void ob_reader_main(void *arg)
{
    struct ob_reader *r = arg;
    for (;;) {
        int stop = atomic_load(&r->stop);
        int64_t before = r->last;
        if (T_OPS->outbox_page(r->c, r->last, 200, ob_reader_ev, r) != CD_OK) r->errors++;
        r->pages++;
        if (r->skipped || r->errors || (stop && r->last == before)) break;
    }
}

static void run_nodes(struct fx *f, const struct store_ops *ops, int dups, int split)
{
    struct ob_reader obr;
    uv_thread_t obt;
    struct multi *m = calloc(1, sizeof(*m));
    struct store_config cfg;
    uv_thread_t th[THREADS];
    struct submitter sub[THREADS];

    m->f = f;
    m->dups = dups;
    m->split = split;
    uv_mutex_init(&m->lock);
    uv_cond_init(&m->cond);
    for (int i = 0; i < ROOMS; i++) {
        struct store_room r;
        memset(&r, 0, sizeof(r));
        snprintf(r.name, sizeof(r.name), "room%d", i);
        r.created_by = f->alice;
        assert_int_equal(T_OPS->room_insert(f->c, &r, NULL), CD_OK);
        m->rooms[i] = r.id;
    }
    fx_config(f, &cfg);
    for (int n = 0; n < NODES; n++)
        assert_int_equal(store_db_open(&m->db[n], ops, &cfg), CD_OK);
    memset(&obr, 0, sizeof(obr));
    obr.m = m;
    assert_int_equal(T_OPS->conn_open(f->st, 0, &obr.c), CD_OK);
    uv_thread_create(&obt, ob_reader_main, &obr);
    for (int t = 0; t < THREADS; t++) {
        sub[t] = (struct submitter){m, t};
        m->thread_seed[t] = 1234u + (unsigned)t;
        uv_thread_create(&th[t], submit_main, &sub[t]);
    }
    for (int t = 0; t < THREADS; t++)
        uv_thread_join(&th[t]);
    uv_mutex_lock(&m->lock);
    while (m->done < JOBS)
        uv_cond_wait(&m->cond, &m->lock);
    uv_mutex_unlock(&m->lock);
    for (int n = 0; n < NODES; n++)
        store_db_close(&m->db[n]);
    atomic_store(&obr.stop, 1);
    uv_thread_join(&obt);
    T_OPS->conn_close(obr.c);
    print_message("outbox read in %d pages while written: last pos %lld\n", obr.pages,
                  (long long)obr.last);
    assert_int_equal(obr.errors, 0);
    assert_int_equal(obr.skipped, 0);
    assert_int_equal(obr.msgs, m->ok);             /* every stored message, once */
    assert_int_equal(obr.last, 3 + ROOMS + m->ok); /* users, rooms, messages: no gap */
    {
        int64_t head = 0; /* the consumers' lag metric: the last visible position */
        assert_int_equal(T_OPS->outbox_head(f->c, &head), CD_OK);
        assert_int_equal(head, obr.last);
    }
    print_message(
        "%d acked, %d duplicates refused, %d other, %d job re-runs (deadlocks, late duplicates)\n",
        m->ok, m->conflicts, m->other, m->resets);
    assert_int_equal(m->other, 0);
    check_logs(m, f->c);
    uv_cond_destroy(&m->cond);
    uv_mutex_destroy(&m->lock);
    free(m);
}

static void two_nodes_append_gap_free(void **state)
{
    run_nodes(*state, &store_pg_ops, 0, 0);
}

/* Each node writes only its own rooms: the two nodes' transactions share no room lock and run
 * side by side, so only outbox_head orders their positions. With positions from a sequence
 * taken at the append, the reader sees a later batch's positions before an earlier one's and
 * the test fails (tried: the first page after an overlap skips). */
static void two_nodes_outbox_in_commit_order(void **state)
{
    run_nodes(*state, &store_pg_ops, 0, 1);
}

/* With duplicates sent to both nodes: most optimistic batches meet one late and run again. */
static void two_nodes_with_duplicates(void **state)
{
    run_nodes(*state, &store_pg_ops, 1, 0);
}

/* The same without lock_rooms: batches lock rooms in arrival order and deadlock each other;
 * PostgreSQL aborts one, the writer runs it again (reset), and the logs still have no gap. A
 * short deadlock_timeout keeps the test quick. */
static int setup_fast_deadlocks(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    fx_schema(f, "%20-cdeadlock_timeout%3D10ms");
    if (fx_start(f) != 0) return -1;
    *state = f;
    return 0;
}

static void unordered_locks_deadlock_and_retry(void **state)
{
    static struct store_ops unordered;
    unordered = store_pg_ops;
    unordered.lock_rooms = NULL;
    run_nodes(*state, &unordered, 1, 0);
}

struct opener {
    struct fx *f;
    int rc;
};

static void open_main(void *arg)
{
    struct opener *o = arg;
    struct store_config cfg;
    struct store *st;
    fx_config(o->f, &cfg);
    o->rc = store_pg_ops.open(&cfg, &st);
    if (o->rc == CD_OK) store_pg_ops.close(st);
}

/* Four nodes start together on an empty schema: each migration is applied once. */
static void concurrent_open_migrates_once(void **state)
{
    struct fx f;
    struct opener o[4];
    uv_thread_t th[4];
    char sql[160];
    PGconn *pg;
    PGresult *r;

    (void)state;
    memset(&f, 0, sizeof(f));
    fx_schema(&f, NULL);
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){&f, -1};
        uv_thread_create(&th[i], open_main, &o[i]);
    }
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&th[i]);
        assert_int_equal(o[i].rc, CD_OK);
    }
    pg = PQconnectdb(base_url);
    snprintf(sql, sizeof(sql),
             "SELECT count(*), max(version), count(DISTINCT version) FROM %s.schema_version",
             f.dir);
    r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    /* every version applied exactly once (count == newest), whatever their number */
    assert_string_equal(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
    assert_string_equal(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 2));
    snprintf(sql, sizeof(sql), "%d", store_pg_nmigrations);
    assert_string_equal(PQgetvalue(r, 0, 0), sql);
    PQclear(r);
    PQfinish(pg);
    snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f.dir);
    admin(sql);
}

/* ---- connection loss ---- */

struct one {
    struct store_job j;
    int64_t room;
    const char *body;
    const char *kill_sql; /* run between two appends: the second meets a dead connection */
    int status, finished;
    uv_mutex_t lock;
    uv_cond_t cond;
};

static int one_exec(const struct store_ops *ops, struct store_conn *c, struct store_job *sj)
{
    struct one *o = (struct one *)sj;
    struct store_event ev = {
        .room_id = o->room, .kind = EV_MESSAGE, .sender = 1, .body = o->body, .body_len = 4};
    int rc = ops->event_append(c, &ev);
    if (rc != CD_OK || !o->kill_sql) return rc;
    admin(o->kill_sql);
    return ops->event_append(c, &ev);
}

static void one_done(struct store_job *sj)
{
    struct one *o = (struct one *)sj;
    uv_mutex_lock(&o->lock);
    o->status = sj->status;
    o->finished = 1;
    uv_cond_signal(&o->cond);
    uv_mutex_unlock(&o->lock);
}

static int submit_one(struct store_db *db, int64_t room, const char *body, const char *kill_sql)
{
    struct one o;
    memset(&o, 0, sizeof(o));
    o.room = room;
    o.body = body;
    o.kill_sql = kill_sql;
    o.j.exec = one_exec;
    o.j.done = one_done;
    o.j.room_id = room;
    uv_mutex_init(&o.lock);
    uv_cond_init(&o.cond);
    store_submit(db, &o.j);
    uv_mutex_lock(&o.lock);
    while (!o.finished)
        uv_cond_wait(&o.cond, &o.lock);
    uv_mutex_unlock(&o.lock);
    uv_cond_destroy(&o.cond);
    uv_mutex_destroy(&o.lock);
    return o.status;
}

static int page_bodies(struct store_conn *c, int64_t room, struct collect *k)
{
    memset(k, 0, sizeof(*k));
    return store_pg_ops.events_page(c, room, 0, 0, 10, 0, on_event, k);
}

/* The server ends the store's sessions (as a restart does). In the middle of a batch: the batch
 * fails with CD_E_UNAVAILABLE and nothing of it is stored, not even its first append; the next
 * batch reconnects and commits. Between batches: the next one reconnects first and succeeds.
 * A reader reconnects for its next read. */
static void killed_connection_fails_batch_then_reconnects(void **state)
{
    struct fx *f = *state;
    struct store_db db;
    struct store_config cfg;
    struct store_conn *rd;
    struct collect k;
    char url[600], kill[256];
    int64_t room = room_new(f, "r", NULL);

    snprintf(url, sizeof(url), "%s&application_name=v_%s", f->url, f->dir);
    snprintf(kill, sizeof(kill),
             "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
             "WHERE application_name = 'v_%s'",
             f->dir);
    memset(&cfg, 0, sizeof(cfg));
    memset(&db, 0, sizeof(db));
    cfg.url = url;
    assert_int_equal(store_db_open(&db, &store_pg_ops, &cfg), CD_OK);
    assert_int_equal(submit_one(&db, room, "one.", NULL), CD_OK);
    assert_non_null(rd = store_reader(&db));
    assert_int_equal(page_bodies(rd, room, &k), CD_OK);
    assert_int_equal(k.n, 1);

    assert_int_equal(submit_one(&db, room, "two.", kill), CD_E_UNAVAILABLE);
    assert_int_equal(submit_one(&db, room, "thr.", NULL), CD_OK);
    admin(kill);
    assert_int_equal(submit_one(&db, room, "fou.", NULL), CD_OK);

    assert_int_equal(page_bodies(rd, room, &k), CD_OK);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.body[0], "one.");
    assert_string_equal(k.body[1], "thr.");
    assert_string_equal(k.body[2], "fou.");
    assert_int_equal(k.seq[2], 3);
    store_db_close(&db);
}

/* The server refuses the store's role (as while it is down) after ending its sessions: a batch
 * fails with CD_E_UNAVAILABLE and store_available() says 0; once the role may log in again the
 * writer's probe (an empty transaction each second while idle) finds it without any traffic,
 * and writes succeed. */
static void unavailable_until_probe_reconnects(void **state)
{
    struct fx *f = *state;
    struct store_db db;
    struct store_config cfg;
    char url[700], role[80], sql[256];
    int64_t room = room_new(f, "r", NULL);

    snprintf(role, sizeof(role), "probe_%s", f->dir);
    snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN SUPERUSER", role);
    admin(sql);
    snprintf(url, sizeof(url), "%s&user=%s", f->url, role);
    memset(&cfg, 0, sizeof(cfg));
    memset(&db, 0, sizeof(db));
    cfg.url = url;
    assert_int_equal(store_db_open(&db, &store_pg_ops, &cfg), CD_OK);
    assert_int_equal(submit_one(&db, room, "one.", NULL), CD_OK);
    assert_int_equal(store_available(&db), 1);

    snprintf(sql, sizeof(sql), "ALTER ROLE %s NOLOGIN", role);
    admin(sql);
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE usename = '%s'",
             role);
    admin(sql);
    assert_int_equal(submit_one(&db, room, "two.", NULL), CD_E_UNAVAILABLE);
    assert_int_equal(store_available(&db), 0);

    snprintf(sql, sizeof(sql), "ALTER ROLE %s LOGIN", role);
    admin(sql);
    for (int i = 0; i < 300 && !store_available(&db); i++) /* a bound, not a timing check */
        usleep(100000);
    assert_int_equal(store_available(&db), 1);
    assert_int_equal(submit_one(&db, room, "thr.", NULL), CD_OK);
    assert_int_equal(last_seq(f, room), 2);
    store_db_close(&db);
    snprintf(sql, sizeof(sql), "DROP ROLE %s", role);
    admin(sql);
}

/* An optimistic batch numbers from the counters its connection last committed without waiting
 * for the locks (the commit is its one round trip). Another writer moving a counter makes that
 * guess stale: commit answers CD_AGAIN and nothing is stored; the next optimistic run waits for
 * the locked counters. A head heard from elsewhere (note_head) corrects a guess beforehand. */
static void optimistic_guess_stale_then_waits(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "g", NULL), seq = 0;
    struct store_conn *other;
    struct collect k;

    assert_int_equal(f->ops->conn_open(f->st, 1, &other), CD_OK);
    /* counter unknown: waits, then remembers 1 */
    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, &r, 1, 1), CD_OK);
    assert_int_equal(append(f, r, f->alice, NULL, "one"), 1);
    assert_int_equal(f->ops->commit(f->c), CD_OK);
    /* another node appends 2 */
    assert_int_equal(append_on(other, r, EV_MESSAGE, f->bob, NULL, "two", &seq), CD_OK);
    assert_int_equal(seq, 2);
    /* guessed from 1: the 2 it numbers is taken */
    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, &r, 1, 1), CD_OK);
    assert_int_equal(append(f, r, f->alice, NULL, "stale"), 2);
    assert_int_equal(f->ops->commit(f->c), CD_AGAIN);
    assert_int_equal(last_seq(f, r), 2);
    /* run again: the counter is read under the lock */
    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, &r, 1, 1), CD_OK);
    assert_int_equal(append(f, r, f->alice, NULL, "three"), 3);
    assert_int_equal(f->ops->commit(f->c), CD_OK);
    /* another node appends 4, and the bus says so: the guess starts from 4 */
    assert_int_equal(append_on(other, r, EV_MESSAGE, f->bob, NULL, "four", &seq), CD_OK);
    assert_int_equal(seq, 4);
    f->ops->note_head(f->c, r, 4);
    f->ops->note_head(f->c, r, 3); /* an older head changes nothing */
    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->lock_rooms(f->c, &r, 1, 1), CD_OK);
    assert_int_equal(append(f, r, f->alice, NULL, "five"), 5);
    assert_int_equal(f->ops->commit(f->c), CD_OK);
    page(f, r, 0, 0, 10, 0, &k);
    assert_int_equal(k.n, 5);
    assert_string_equal(k.body[1], "two");
    assert_string_equal(k.body[2], "three");
    assert_string_equal(k.body[4], "five");
    f->ops->conn_close(other);
}

/* Indexers on several nodes take turns on the position row: while another holds it (here a
 * session that locked it and did not commit yet) search_index_log indexes nothing and does
 * not wait; once it is free, the next run indexes what was appended. */
static void indexers_take_turns(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "turns", NULL), s1;
    struct store_conn *ixc;
    struct hits k;
    PGconn *holder;
    PGresult *res;
    int n = -1;

    put_member(f, r, f->alice, ROLE_OWNER, 0);
    s1 = append(f, r, f->alice, "t1", "turnstile");
    assert_int_equal(f->ops->conn_open(f->st, 0, &ixc), CD_OK);
    holder = PQconnectdb(f->url);
    assert_int_equal(PQstatus(holder), CONNECTION_OK);
    res = PQexec(holder, "BEGIN; SELECT pos FROM search_pos FOR UPDATE");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    assert_int_equal(f->ops->search_index_log(ixc, 100, &n), CD_OK);
    assert_int_equal(n, 0); /* the other node's turn: skipped, not waited for */
    find(f, f->alice, 0, "turnstile", 0, 10, &k);
    assert_int_equal(k.n, 0);
    PQclear(PQexec(holder, "COMMIT"));
    PQfinish(holder);
    assert_int_equal(f->ops->search_index_log(ixc, 100, &n), CD_OK);
    assert_true(n >= 1);
    find(f, f->alice, 0, "turnstile", 0, 10, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.seq[0], s1);
    f->ops->conn_close(ixc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CASES(setup, teardown) cmocka_unit_test_setup_teardown(
            optimistic_batch_numbers_and_late_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(optimistic_guess_stale_then_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(indexers_take_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(two_nodes_append_gap_free, setup, teardown),
        cmocka_unit_test_setup_teardown(two_nodes_with_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(two_nodes_outbox_in_commit_order, setup, teardown),
        cmocka_unit_test_setup_teardown(unordered_locks_deadlock_and_retry, setup_fast_deadlocks,
                                        teardown),
        cmocka_unit_test(concurrent_open_migrates_once),
        cmocka_unit_test_setup_teardown(killed_connection_fails_batch_then_reconnects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unavailable_until_probe_reconnects, setup, teardown),
    };
    base_url = getenv("CHATD_TEST_PG_URL");
    if (!base_url || !*base_url) {
        printf("SKIP: CHATD_TEST_PG_URL is not set (scripts/pg.sh start prints one; "
               "scripts/test.sh sets it)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
