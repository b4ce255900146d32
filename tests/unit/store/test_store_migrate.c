/* store_migrate: a SQLite data directory written through the SQLite backend's ops is copied into
 * a fresh PostgreSQL schema (CHATD_TEST_PG_URL; skipped without it) and read back through the
 * PostgreSQL backend's ops: every value survives COPY's text format byte for byte (backslashes,
 * "\N", "\.", tabs, CR, control characters, bytea with NUL and backslash bytes, NULL vs 0), the
 * room's counter continues the copied log, identities continue past the copied ids. Refused,
 * with nothing committed: a target that holds data, a body with a NUL byte (PostgreSQL text
 * cannot hold it), a data directory whose lock another process holds, no database at all. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "store/store.h"
#include "store/store_migrate.h"
#include "util/status.h"

#include "pg_admin.h"

static const char *base_url;
static unsigned seqno;

struct fx {
    char dir[128];
    char schema[64];
    char url[1024];
    char out[8192], err[8192];
};

/* SQL on an admin connection to the base database; fails the test on error. */
static void admin(const char *sql)
{
    pg_admin(base_url, sql);
}

/* One integer from the fixture's schema. */
static long long scalar(struct fx *f, const char *sql)
{
    PGconn *pg = PQconnectdb(f->url);
    PGresult *r = PQexec(pg, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
    return v;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char sql[128];
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-test-migrate-%d-%u", (int)getpid(), ++seqno);
    snprintf(f->schema, sizeof(f->schema), "t_mig_%d_%u", (int)getpid(), seqno);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->schema);
    admin(sql);
    snprintf(f->url, sizeof(f->url), "%s%soptions=-csearch_path%%3D%s", base_url,
             strchr(base_url, '?') ? "&" : "?", f->schema);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "DROP SCHEMA %s CASCADE", f->schema);
    admin(cmd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
    return 0;
}

/* Runs the migration with its output captured in f->out / f->err. */
static int run(struct fx *f)
{
    struct store_migrate_opts o = {.from_dir = f->dir, .to_url = f->url};
    FILE *out = fmemopen(f->out, sizeof(f->out) - 1, "w");
    FILE *err = fmemopen(f->err, sizeof(f->err) - 1, "w");
    int rc;
    memset(f->out, 0, sizeof(f->out));
    memset(f->err, 0, sizeof(f->err));
    rc = store_migrate_run(&o, out, err);
    fclose(out);
    fclose(err);
    return rc;
}

/* Bodies chosen to break a careless COPY text encoding. */
static const char *const bodies[] = {
    "plain", "tab\there", "line\nbreak",  "cr\rhere",    "back\\slash", "\\N",
    "\\.",   "\\",        "\x01\x1f\x7f", "ünïcødé ✓ 😀", "trailing\\",  "{\"json\":1}",
};
#define NBODIES (sizeof(bodies) / sizeof(bodies[0]))

struct source {
    int64_t users[3], sid[2], group, dm, seqs[NBODIES];
    uint8_t hash[2][32];
};

static struct store_conn *sqlite_store(struct fx *f, struct store **st)
{
    struct store_config cfg = {.dir = f->dir, .sync_mode = "normal"};
    struct store_conn *c;
    assert_int_equal(store_sqlite_ops.open(&cfg, st), CD_OK);
    assert_int_equal(store_sqlite_ops.conn_open(*st, 1, &c), CD_OK);
    return c;
}

static void fill(struct fx *f, struct source *s)
{
    const struct store_ops *o = &store_sqlite_ops;
    struct store *st;
    struct store_conn *c = sqlite_store(f, &st);
    struct store_room r;
    const char *names[3] = {"alice", "bob", "car\\ol"};

    for (int i = 0; i < 3; i++)
        assert_int_equal(o->user_insert(c, names[i], "$argon2id$v=19$x\\y", 100 + i, &s->users[i]),
                         CD_OK);
    assert_int_equal(o->user_set_last_seen(c, s->users[0], 777), CD_OK);
    for (int i = 0; i < 2; i++) {
        struct store_refresh rt = {.user_id = s->users[0], .created_at = 1, .expires_at = 2};
        assert_int_equal(o->session_insert(c, s->users[0], 50, &s->sid[i]), CD_OK);
        for (int b = 0; b < 32; b++)
            s->hash[i][b] = (uint8_t)(b == 3 ? 0 : b == 4 ? '\\' : b == 5 ? '\n' : b * 7 + i);
        memcpy(rt.hash, s->hash[i], 32);
        rt.session_id = s->sid[i];
        assert_int_equal(o->refresh_insert(c, &rt), CD_OK);
        if (i == 1) assert_int_equal(o->refresh_mark_used(c, rt.id, 60), CD_OK);
    }
    assert_int_equal(o->session_revoke(c, s->sid[1], 70), CD_OK);

    memset(&r, 0, sizeof(r));
    r.kind = ROOM_GROUP;
    snprintf(r.name, sizeof(r.name), "gro\tup");
    snprintf(r.topic, sizeof(r.topic), "a\\b\nc");
    r.created_by = s->users[0];
    r.created_at = 1000;
    assert_int_equal(o->room_insert(c, &r, NULL), CD_OK);
    s->group = r.id;
    r.kind = ROOM_DIRECT;
    r.name[0] = r.topic[0] = '\0';
    assert_int_equal(o->room_insert(c, &r, "1:2"), CD_OK);
    s->dm = r.id;
    for (int i = 0; i < 3; i++) {
        struct store_member m = {
            .room_id = s->group, .user_id = s->users[i], .role = i ? 0 : 2, .joined_seq = 1};
        assert_int_equal(o->member_put(c, &m), CD_OK);
    }
    for (size_t i = 0; i < NBODIES; i++) {
        char cmid[32];
        struct store_event ev = {.room_id = s->group,
                                 .kind = EV_MESSAGE,
                                 .sender = s->users[i % 3],
                                 .ts = 5000 + (int64_t)i,
                                 .body = bodies[i],
                                 .body_len = strlen(bodies[i])};
        snprintf(cmid, sizeof(cmid), "c\\%zu\t", i);
        ev.client_msg_id = i % 4 ? cmid : NULL;
        ev.cmid_len = i % 4 ? strlen(cmid) : 0;
        assert_int_equal(o->event_append(c, &ev), CD_OK);
        s->seqs[i] = ev.seq;
    }
    {
        int64_t got;
        assert_int_equal(o->read_mark(c, s->group, s->users[1], s->seqs[4], &got), CD_OK);
    }
    o->conn_close(c);
    o->close(st);
}

struct page {
    int n;
    char body[NBODIES + 4][64];
    size_t len[NBODIES + 4];
    char cmid[NBODIES + 4][32];
    int cmid_null[NBODIES + 4];
    int64_t seq[NBODIES + 4], sender[NBODIES + 4], ts[NBODIES + 4];
};

static int on_ev(void *ud, const struct store_event *ev)
{
    struct page *p = ud;
    assert_true(p->n < (int)(NBODIES + 4));
    assert_true(ev->body_len < sizeof(p->body[0]));
    memcpy(p->body[p->n], ev->body, ev->body_len);
    p->len[p->n] = ev->body_len;
    p->cmid_null[p->n] = ev->client_msg_id == NULL;
    snprintf(p->cmid[p->n], sizeof(p->cmid[0]), "%.*s", (int)ev->cmid_len,
             ev->client_msg_id ? ev->client_msg_id : "");
    p->seq[p->n] = ev->seq;
    p->sender[p->n] = ev->sender;
    p->ts[p->n] = ev->ts;
    p->n++;
    return 0;
}

static void test_copies_everything(void **state)
{
    struct fx *f = *state;
    struct source s;
    struct store_config cfg = {.url = f->url};
    struct store *st;
    struct store_conn *c;
    const struct store_ops *o = &store_pg_ops;
    struct store_user u;
    struct store_refresh rt;
    struct store_room r;
    struct store_member m;
    struct page p;

    memset(&s, 0, sizeof(s));
    fill(f, &s);
    assert_int_equal(run(f), 0);
    assert_non_null(strstr(f->out, "events"));
    assert_null(strstr(f->out, "DIFFERENT"));

    assert_int_equal(o->open(&cfg, &st), CD_OK);
    assert_int_equal(o->conn_open(st, 0, &c), CD_OK);
    assert_int_equal(o->user_by_name(c, "car\\ol", &u), CD_OK);
    assert_int_equal(u.id, s.users[2]);
    assert_string_equal(u.pwhash, "$argon2id$v=19$x\\y");
    assert_int_equal(u.created_at, 102);
    assert_int_equal(o->user_get(c, s.users[0], &u), CD_OK);
    assert_int_equal(u.last_seen, 777);

    assert_int_equal(o->refresh_by_hash(c, s.hash[0], &rt), CD_OK);
    assert_int_equal(rt.session_id, s.sid[0]);
    assert_int_equal(rt.used_at, 0);
    assert_int_equal(rt.session_revoked, 0);
    assert_int_equal(o->refresh_by_hash(c, s.hash[1], &rt), CD_OK);
    assert_int_equal(rt.session_id, s.sid[1]);
    assert_int_equal(rt.used_at, 60);
    assert_int_equal(rt.session_revoked, 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL"), 1);
    assert_int_equal(scalar(f, "SELECT count(*) FROM sessions WHERE revoked_at = 70"), 1);

    assert_int_equal(o->room_get(c, s.group, &r), CD_OK);
    assert_string_equal(r.name, "gro\tup");
    assert_string_equal(r.topic, "a\\b\nc");
    assert_int_equal(r.last_seq, s.seqs[NBODIES - 1]);
    assert_int_equal(r.member_count, 3);
    assert_int_equal(o->room_get(c, s.dm, &r), CD_OK);
    assert_int_equal(r.last_seq, 0);
    {
        int64_t id = 0;
        assert_int_equal(o->room_by_dm_key(c, "1:2", &id), CD_OK);
        assert_int_equal(id, s.dm);
    }
    assert_int_equal(o->member_get(c, s.group, s.users[1], &m), CD_OK);
    assert_int_equal(m.read_seq, s.seqs[4]);
    assert_int_equal(o->member_get(c, s.group, s.users[0], &m), CD_OK);
    assert_int_equal(m.role, 2);

    memset(&p, 0, sizeof(p));
    assert_int_equal(o->events_page(c, s.group, 0, 0, 100, 0, on_ev, &p), CD_OK);
    assert_int_equal(p.n, NBODIES);
    for (size_t i = 0; i < NBODIES; i++) {
        char cmid[32];
        assert_int_equal(p.seq[i], s.seqs[i]);
        assert_int_equal(p.len[i], strlen(bodies[i]));
        assert_memory_equal(p.body[i], bodies[i], p.len[i]);
        assert_int_equal(p.sender[i], s.users[i % 3]);
        assert_int_equal(p.ts[i], 5000 + (int64_t)i);
        assert_int_equal(p.cmid_null[i], i % 4 == 0);
        snprintf(cmid, sizeof(cmid), "c\\%zu\t", i);
        if (i % 4) assert_string_equal(p.cmid[i], cmid);
    }
    o->conn_close(c);

    /* writes continue the copied data */
    assert_int_equal(o->conn_open(st, 1, &c), CD_OK);
    {
        int64_t id = 0;
        struct store_event ev = {.room_id = s.group,
                                 .kind = EV_MESSAGE,
                                 .sender = s.users[0],
                                 .ts = 9,
                                 .body = "next",
                                 .body_len = 4,
                                 .client_msg_id = "c\\1\t",
                                 .cmid_len = 4};
        assert_int_equal(o->begin(c), CD_OK);
        assert_int_equal(o->event_append(c, &ev), CD_OK); /* another sender's cmid: no conflict */
        assert_int_equal(ev.seq, s.seqs[NBODIES - 1] + 1);
        ev.sender = s.users[1]; /* bodies[1]'s sender and cmid: a resend */
        assert_int_equal(o->event_append(c, &ev), CD_E_CONFLICT);
        ev.client_msg_id = "fresh";
        ev.cmid_len = 5;
        assert_int_equal(o->event_append(c, &ev), CD_OK);
        assert_int_equal(ev.seq, s.seqs[NBODIES - 1] + 2);
        assert_int_equal(o->user_insert(c, "dave", "h", 1, &id), CD_OK);
        assert_int_equal(id, s.users[2] + 1);
        assert_int_equal(o->session_insert(c, id, 1, &id), CD_OK);
        assert_int_equal(id, s.sid[1] + 1);
        memset(&r, 0, sizeof(r));
        snprintf(r.name, sizeof(r.name), "new");
        assert_int_equal(o->room_insert(c, &r, NULL), CD_OK);
        assert_int_equal(r.id, s.dm + 1);
        assert_int_equal(o->commit(c), CD_OK);
    }
    o->conn_close(c);
    o->close(st);
    /* the outbox was copied with its positions and goes on from the last one: 1..n, no gap,
     * one row per log entry, one per room creation (the new room's too) */
    assert_int_equal(scalar(f, "SELECT max(pos) - count(*) FROM outbox"), 0);
    assert_int_equal(scalar(f, "SELECT count(*) FROM outbox WHERE seq > 0"),
                     scalar(f, "SELECT count(*) FROM events"));
    assert_int_equal(scalar(f, "SELECT count(*) FROM outbox WHERE type = 'room.created'"),
                     scalar(f, "SELECT count(*) FROM rooms"));
    assert_int_equal(scalar(f, "SELECT pos FROM outbox_head"),
                     scalar(f, "SELECT max(pos) FROM outbox"));

    /* the target now holds data: refused, nothing changes */
    assert_int_equal(run(f), 1);
    assert_non_null(strstr(f->err, "already holds data"));
    assert_int_equal(scalar(f, "SELECT count(*) FROM users"), 4);
}

static void test_refuses_nul_byte(void **state)
{
    struct fx *f = *state;
    struct store *st;
    struct store_conn *c = sqlite_store(f, &st);
    int64_t uid, seq;
    struct store_room r;
    struct store_event ev = {.kind = EV_MESSAGE, .ts = 1, .body = "a\0b", .body_len = 3};

    assert_int_equal(store_sqlite_ops.user_insert(c, "u", "h", 1, &uid), CD_OK);
    memset(&r, 0, sizeof(r));
    snprintf(r.name, sizeof(r.name), "r");
    assert_int_equal(store_sqlite_ops.room_insert(c, &r, NULL), CD_OK);
    ev.room_id = r.id;
    ev.sender = uid;
    assert_int_equal(store_sqlite_ops.event_append(c, &ev), CD_OK);
    seq = ev.seq;
    store_sqlite_ops.conn_close(c);
    store_sqlite_ops.close(st);

    assert_int_equal(run(f), 1);
    assert_non_null(strstr(f->err, "NUL byte"));
    {
        char want[64];
        snprintf(want, sizeof(want), "seq %lld", (long long)seq);
        assert_non_null(strstr(f->err, want));
    }
    assert_non_null(strstr(f->err, "nothing was committed"));
    assert_int_equal(scalar(f, "SELECT count(*) FROM users"), 0);
}

static void test_refuses_locked_dir(void **state)
{
    struct fx *f = *state;
    struct store *st;
    struct store_conn *c = sqlite_store(f, &st);
    char path[256];
    int fd;

    store_sqlite_ops.conn_close(c);
    store_sqlite_ops.close(st);
    snprintf(path, sizeof(path), "%s/chatd.lock", f->dir);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0); /* what a running chatd holds */
    assert_int_equal(run(f), 1);
    assert_non_null(strstr(f->err, "in use by a running chatd"));
    close(fd);
    assert_int_equal(run(f), 0); /* released: an empty node migrates */
}

static void test_refuses_missing_db(void **state)
{
    struct fx *f = *state;
    assert_int_equal(run(f), 1);
    assert_non_null(strstr(f->err, "no chatd database"));
    assert_int_equal(scalar(f, "SELECT count(*) FROM pg_tables WHERE tablename = 'users' AND "
                               "schemaname = current_schema()"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copies_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_nul_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_locked_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_missing_db, setup, teardown),
    };
    base_url = getenv("CHATD_TEST_PG_URL");
    if (!base_url || !*base_url) {
        fprintf(stderr, "CHATD_TEST_PG_URL not set: skipped\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
