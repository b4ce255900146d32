/* The outbox consumer runner on a SQLite store with its writer thread: every committed event is
 * handed over once, in position order, in batches; a refused batch is handed again (position
 * unchanged) until accepted; the position survives a restart of the consumer (and of the
 * store), which then resumes with no gap and no repeat; outbox_notify wakes a consumer at once
 * (its poll interval here is a minute: without the wake-up the test would hang); a batch taken
 * in part (*taken) moves the position past exactly that prefix and hands the rest again at once
 * (the backoff here is a minute too); the per-consumer counters (metrics) follow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "outbox/outbox.h"
#include "store/store.h"
#include "util/status.h"

struct fx {
    char dir[64];
    struct store_db db;
    int64_t user, room;
};

struct wjob {
    struct store_job j;
    struct fx *f;
    int n; /* messages to append */
    int finished;
    uv_mutex_t lock;
    uv_cond_t cond;
};

static int wjob_exec(const struct store_ops *ops, struct store_conn *c, struct store_job *sj)
{
    struct wjob *w = (struct wjob *)sj;
    int rc = CD_OK;
    if (!w->f->room) {
        struct store_room r;
        memset(&r, 0, sizeof(r));
        snprintf(r.name, sizeof(r.name), "ob");
        if ((rc = ops->user_insert(c, "u", "h", 1, &w->f->user)) != CD_OK) return rc;
        r.created_by = w->f->user;
        if ((rc = ops->room_insert(c, &r, NULL)) != CD_OK) return rc;
        w->f->room = r.id;
    }
    for (int i = 0; i < w->n && rc == CD_OK; i++) {
        struct store_event ev = {.room_id = w->f->room,
                                 .kind = EV_MESSAGE,
                                 .sender = w->f->user,
                                 .ts = 7,
                                 .body = "hi",
                                 .body_len = 2};
        rc = ops->event_append(c, &ev);
    }
    return rc;
}

static void wjob_done(struct store_job *sj)
{
    struct wjob *w = (struct wjob *)sj;
    uv_mutex_lock(&w->lock);
    w->finished = 1;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
}

/* Appends n messages in one job and waits for the commit; then notifies the consumers. */
static void write_n(struct fx *f, int n)
{
    struct wjob w;
    memset(&w, 0, sizeof(w));
    w.f = f;
    w.n = n;
    w.j.exec = wjob_exec;
    w.j.done = wjob_done;
    uv_mutex_init(&w.lock);
    uv_cond_init(&w.cond);
    store_submit(&f->db, &w.j);
    uv_mutex_lock(&w.lock);
    while (!w.finished)
        uv_cond_wait(&w.cond, &w.lock);
    uv_mutex_unlock(&w.lock);
    assert_int_equal(w.j.status, CD_OK);
    uv_cond_destroy(&w.cond);
    uv_mutex_destroy(&w.lock);
    outbox_notify(&f->db);
}

/* What the handler saw. */
struct seen {
    uv_mutex_t lock;
    uv_cond_t cond;
    int64_t last; /* highest pos accepted */
    int batches;  /* handle() calls */
    int refuse;   /* refuse this many more calls */
    int refused;  /* calls refused */
    int64_t first_refused, first_after_refusal;
    int out_of_order, msgs;
    int max_batch;
    size_t take; /* > 0: the next refused call takes this many leading events */
};

static int handle(void *ud, const struct store_outbox_event *evs, size_t n, size_t *taken)
{
    struct seen *s = ud;
    size_t upto = n;
    int rc = CD_OK;
    uv_mutex_lock(&s->lock);
    s->batches++;
    if ((int)n > s->max_batch) s->max_batch = (int)n;
    if (s->refuse > 0) {
        s->refuse--;
        s->refused++;
        if (!s->first_refused) s->first_refused = evs[0].pos;
        if (!s->take || s->take >= n) {
            uv_mutex_unlock(&s->lock);
            return CD_E_UNAVAILABLE;
        }
        upto = *taken = s->take; /* a prefix went through, then a failure */
        s->take = 0;
        rc = CD_E_UNAVAILABLE;
    } else if (s->refused && !s->first_after_refusal) {
        s->first_after_refusal = evs[0].pos;
    }
    for (size_t i = 0; i < upto; i++) {
        if (evs[i].pos != s->last + 1) s->out_of_order++;
        s->last = evs[i].pos;
        if (evs[i].type_len == 7 && !memcmp(evs[i].type, "message", 7)) {
            s->msgs++;
            assert_non_null(memmem(evs[i].json, evs[i].json_len, "\"body\":\"hi\"", 11));
        }
    }
    uv_cond_broadcast(&s->cond);
    uv_mutex_unlock(&s->lock);
    return rc;
}

static void wait_pos(struct seen *s, int64_t pos)
{
    uv_mutex_lock(&s->lock);
    while (s->last < pos)
        uv_cond_wait(&s->cond, &s->lock);
    uv_mutex_unlock(&s->lock);
}

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof(*s));
    uv_mutex_init(&s->lock);
    uv_cond_init(&s->cond);
}

static void open_db(struct fx *f)
{
    struct store_config cfg = {.dir = f->dir, .sync_mode = "normal"};
    assert_int_equal(store_db_open(&f->db, &store_sqlite_ops, &cfg), CD_OK);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-outbox-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    open_db(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    store_db_close(&f->db);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static struct outbox_consumer *start(struct fx *f, struct seen *s, int batch)
{
    struct outbox_consumer_cfg cfg = {
        .name = "test", .handle = handle, .ud = s, .batch = batch, .poll_ms = 60000};
    struct outbox_consumer *c = NULL;
    assert_int_equal(outbox_consumer_start(&f->db, &cfg, &c), CD_OK);
    return c;
}

static void batches_in_order_and_resume_after_restart(void **state)
{
    struct fx *f = *state;
    struct outbox_consumer *c;
    struct seen s;
    int64_t pos = -1;

    seen_init(&s);
    write_n(f, 25); /* user, room, 25 messages: pos 1..27 */
    c = start(f, &s, 10);
    wait_pos(&s, 27);
    write_n(f, 5); /* a wake-up, not the poll (a minute), brings these */
    wait_pos(&s, 32);
    outbox_consumer_stop(c); /* after the handler returned: the position moved past 32 */
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.msgs, 30);
    assert_true(s.max_batch <= 10);
    assert_true(s.batches >= 3);

    /* the position is saved: a new consumer (and a reopened store) starts after it */
    store_db_close(&f->db);
    open_db(f);
    {
        struct store_conn *rd;
        assert_int_equal(f->db.ops->conn_open(f->db.st, 0, &rd), CD_OK);
        assert_int_equal(f->db.ops->consumer_get(rd, "test", &pos), CD_OK);
        f->db.ops->conn_close(rd);
    }
    assert_int_equal(pos, 32);
    write_n(f, 3);
    c = start(f, &s, 10);
    wait_pos(&s, 35);
    outbox_consumer_stop(c);
    assert_int_equal(s.out_of_order, 0); /* no repeat, no gap */
    assert_int_equal(s.msgs, 33);
}

static void refused_batch_is_handed_again(void **state)
{
    struct fx *f = *state;
    struct outbox_consumer_cfg cfg = {
        .name = "retry", .handle = handle, .batch = 100, .poll_ms = 60000, .backoff_ms = 5};
    struct outbox_consumer *c = NULL;
    struct seen s;

    seen_init(&s);
    s.refuse = 3;
    cfg.ud = &s;
    write_n(f, 4); /* pos 1..6 */
    assert_int_equal(outbox_consumer_start(&f->db, &cfg, &c), CD_OK);
    wait_pos(&s, 6);
    outbox_consumer_stop(c);
    assert_int_equal(s.refused, 3);
    assert_int_equal(s.first_refused, 1);
    assert_int_equal(s.first_after_refusal, 1); /* the same batch, from its start */
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.msgs, 4);
}

struct stats_seen {
    const char *name;
    struct outbox_consumer_stats st;
    int found;
};

static void stats_cb(void *ud, const struct outbox_consumer_stats *st)
{
    struct stats_seen *w = ud;
    if (strcmp(st->name, w->name) != 0) return;
    w->st = *st;
    w->found++;
}

static void partly_taken_batch_resumes_after_the_prefix(void **state)
{
    struct fx *f = *state;
    /* a minute of backoff: the rest must come again at once, not after a backoff */
    struct outbox_consumer_cfg cfg = {
        .name = "prefix", .handle = handle, .batch = 100, .poll_ms = 60000, .backoff_ms = 60000};
    struct outbox_consumer *c = NULL;
    struct stats_seen w = {.name = "prefix"};
    struct seen s;

    seen_init(&s);
    s.refuse = 1;
    s.take = 4;
    cfg.ud = &s;
    write_n(f, 8); /* pos 1..10 */
    assert_int_equal(outbox_consumer_start(&f->db, &cfg, &c), CD_OK);
    wait_pos(&s, 10);
    outbox_consumer_stats_each(stats_cb, &w);
    assert_int_equal(w.found, 1);
    assert_int_equal(w.st.pos, 10);
    assert_int_equal(w.st.head, 10);
    assert_int_equal(w.st.batches_refused, 1);
    assert_true(w.st.batches_handled >= 1);
    outbox_consumer_stop(c);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.first_refused, 1);
    assert_int_equal(s.first_after_refusal, 5); /* right after the 4 taken, none of them again */
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(s.msgs, 8);
    w.found = 0;
    outbox_consumer_stats_each(stats_cb, &w);
    assert_int_equal(w.found, 0); /* a stopped consumer is gone from the registry */
    {
        struct store_conn *rd;
        int64_t pos = 0, head = 0;
        assert_int_equal(f->db.ops->conn_open(f->db.st, 0, &rd), CD_OK);
        assert_int_equal(f->db.ops->consumer_get(rd, "prefix", &pos), CD_OK);
        assert_int_equal(f->db.ops->outbox_head(rd, &head), CD_OK);
        f->db.ops->conn_close(rd);
        assert_int_equal(pos, 10);
        assert_int_equal(head, 10);
    }
}

static void head_is_known_behind_a_full_batch(void **state)
{
    struct fx *f = *state;
    struct outbox_consumer_cfg cfg = {
        .name = "lag", .handle = handle, .batch = 5, .poll_ms = 60000, .backoff_ms = 60000};
    struct outbox_consumer *c = NULL;
    struct stats_seen w = {.name = "lag"};
    struct seen s;

    seen_init(&s);
    s.refuse = 1000000; /* stuck on its first batch */
    cfg.ud = &s;
    write_n(f, 18); /* pos 1..20 */
    assert_int_equal(outbox_consumer_start(&f->db, &cfg, &c), CD_OK);
    for (;;) { /* the first refusal has happened once the counter shows it */
        w.found = 0;
        outbox_consumer_stats_each(stats_cb, &w);
        if (w.found && w.st.batches_refused > 0) break;
        usleep(10000);
    }
    assert_int_equal(w.st.pos, 0);
    assert_int_equal(w.st.head, 20); /* read beyond the page it is stuck on */
    assert_int_equal(w.st.batches_handled, 0);
    outbox_consumer_stop(c); /* waits out the backoff's wait: stop wakes it */
}

static void bad_config_is_refused(void **state)
{
    struct fx *f = *state;
    struct outbox_consumer *c = NULL;
    struct outbox_consumer_cfg cfg = {.name = "bad name", .handle = handle};
    assert_int_equal(outbox_consumer_start(&f->db, &cfg, &c), CD_E_INVALID_FIELD);
    cfg.name = "ok";
    cfg.handle = NULL;
    assert_int_equal(outbox_consumer_start(&f->db, &cfg, &c), CD_E_INVALID_FIELD);
    assert_null(c);
}

static void envelope_json(void **state)
{
    struct store_outbox_event ev = {.pos = 9,
                                    .id = "m_3_4",
                                    .id_len = 5,
                                    .type = "message",
                                    .type_len = 7,
                                    .room_id = 3,
                                    .ts = 11,
                                    .json = "{\"a\":1}",
                                    .json_len = 7};
    struct jsonw w;
    (void)state;
    jsonw_init(&w, 64);
    outbox_event_json(&w, &ev);
    assert_int_equal(jsonw_text_len(&w),
                     strlen("{\"pos\":9,\"id\":\"m_3_4\",\"type\":\"message\",\"room\":\"r_3\","
                            "\"ts\":11,\"data\":{\"a\":1}}"));
    assert_memory_equal(jsonw_text(&w),
                        "{\"pos\":9,\"id\":\"m_3_4\",\"type\":\"message\",\"room\":\"r_3\","
                        "\"ts\":11,\"data\":{\"a\":1}}",
                        jsonw_text_len(&w));
    ev.room_id = 0;
    w.len = JSONW_HEADROOM;
    outbox_event_json(&w, &ev);
    assert_non_null(memmem(jsonw_text(&w), jsonw_text_len(&w), "\"room\":null", 11));
    jsonw_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batches_in_order_and_resume_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_batch_is_handed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(partly_taken_batch_resumes_after_the_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(head_is_known_behind_a_full_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_config_is_refused, setup, teardown),
        cmocka_unit_test(envelope_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
