/* The writer thread of store.c on a real SQLite database: the commit interval gathers jobs that
 * arrive during it into one group commit, the WAL restarts from its beginning under a writer
 * that never pauses (the maintenance thread's checkpoint alone never catches up with it), and
 * store_health follows failing commits (a file size limit of 1 byte stands in for a full disk)
 * and stalled ones. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <cmocka.h>
#include <uv.h>

#include "store/store.h"
#include "util/status.h"

#define BODY_LEN 4000

struct fx {
    char dir[64];
    struct store_db db;
    int64_t user, room;
    uv_mutex_t lock;
    uv_cond_t cond;
    int done;       /* jobs finished */
    int failed;     /* jobs finished with a status other than CD_OK */
    int keep_going; /* continuous mode: each finished job submits the next */
    long appended;  /* continuous mode: messages committed */
    char body[BODY_LEN];
};

struct job {
    struct store_job j;
    struct fx *f;
    int kind; /* 0 setup (user + room), 1 one message, 2 a message after 600 ms */
};

static int job_exec(const struct store_ops *ops, struct store_conn *c, struct store_job *sj)
{
    struct job *jb = (struct job *)sj;
    struct fx *f = jb->f;
    if (jb->kind == 0) {
        struct store_room r;
        int rc = ops->user_insert(c, "writer", "h", 1, &f->user);
        if (rc != CD_OK) return rc;
        memset(&r, 0, sizeof(r));
        r.kind = ROOM_GROUP;
        snprintf(r.name, sizeof(r.name), "w");
        r.created_by = f->user;
        r.created_at = 1;
        rc = ops->room_insert(c, &r, NULL);
        f->room = r.id;
        return rc;
    }
    if (jb->kind == 2) {
        struct timespec t = {0, 600 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    struct store_event ev = {.room_id = f->room,
                             .kind = EV_MESSAGE,
                             .sender = f->user,
                             .body = f->body,
                             .body_len = BODY_LEN};
    return ops->event_append(c, &ev);
}

static struct job *job_new(struct fx *f, int kind);

static void job_done(struct store_job *sj)
{
    struct job *jb = (struct job *)sj;
    struct fx *f = jb->f;
    uv_mutex_lock(&f->lock);
    f->done++;
    if (sj->status != CD_OK) f->failed++;
    if (jb->kind == 1 && sj->status == CD_OK) f->appended++;
    int again = jb->kind == 1 && f->keep_going;
    uv_cond_broadcast(&f->cond);
    uv_mutex_unlock(&f->lock);
    free(jb);
    /* Submitted from the writer thread before it looks at its queue again: it never idles. */
    if (again) store_submit(&f->db, &job_new(f, 1)->j);
}

static struct job *job_new(struct fx *f, int kind)
{
    struct job *jb = calloc(1, sizeof(*jb));
    jb->j.exec = job_exec;
    jb->j.done = job_done;
    jb->f = f;
    jb->kind = kind;
    return jb;
}

static void wait_done(struct fx *f, int n)
{
    uv_mutex_lock(&f->lock);
    while (f->done < n)
        uv_cond_wait(&f->cond, &f->lock);
    uv_mutex_unlock(&f->lock);
}

static struct fx *open_fx(int64_t interval_us)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct store_config cfg = {0};
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-writer-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    memset(f->body, 'b', sizeof(f->body));
    uv_mutex_init(&f->lock);
    uv_cond_init(&f->cond);
    cfg.dir = f->dir;
    cfg.sync_mode = "normal";
    cfg.commit_interval_us = interval_us;
    cfg.wal_restart_frames = 1024;
    cfg.stall_ms = 200;
    assert_int_equal(store_db_open(&f->db, &store_sqlite_ops, &cfg), CD_OK);
    store_submit(&f->db, &job_new(f, 0)->j);
    wait_done(f, 1);
    assert_int_equal(f->failed, 0);
    return f;
}

static void close_fx(struct fx *f)
{
    char cmd[128];
    store_db_close(&f->db);
    uv_cond_destroy(&f->cond);
    uv_mutex_destroy(&f->lock);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

/* With a 300 ms interval, jobs submitted right after a commit wait for the rest of the interval
 * and then go in together: one commit for all of them, none lost. */
static void interval_gathers_jobs_into_one_commit(void **state)
{
    (void)state;
    struct fx *f = open_fx(300000);
    struct store_stats s0, s1;

    store_submit(&f->db, &job_new(f, 1)->j); /* commits at once: the store was idle */
    wait_done(f, 2);
    store_db_stats(&f->db, &s0);
    for (int i = 0; i < 50; i++)
        store_submit(&f->db, &job_new(f, 1)->j);
    wait_done(f, 52);
    store_db_stats(&f->db, &s1);
    assert_int_equal(f->failed, 0);
    assert_int_equal(f->appended, 51);
    assert_int_equal(s1.commits - s0.commits, 1);
    assert_int_equal(s1.jobs - s0.jobs, 50);
    close_fx(f);
}

static long file_size(const char *dir, const char *name)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* A writer that commits back to back for two seconds and until 32 MiB of messages are written
 * (however long that takes on a loaded machine, up to 120 s): the WAL must restart (and so stay a
 * small fraction of what was written) instead of growing with every commit. */
static void wal_restarts_under_continuous_writes(void **state)
{
    (void)state;
    struct fx *f = open_fx(0);
    struct timespec pause = {0, 50 * 1000 * 1000};
    long wal_max = 0, written = 0;

    f->keep_going = 1;
    for (int i = 0; i < 4; i++)
        store_submit(&f->db, &job_new(f, 1)->j);
    for (int i = 0; i < 2400 && (i < 40 || written < 32L << 20); i++) {
        long w = file_size(f->dir, "chatd.db-wal");
        if (w > wal_max) wal_max = w;
        nanosleep(&pause, NULL);
        uv_mutex_lock(&f->lock);
        written = f->appended * BODY_LEN;
        uv_mutex_unlock(&f->lock);
    }
    uv_mutex_lock(&f->lock);
    f->keep_going = 0;
    written = f->appended * BODY_LEN;
    uv_mutex_unlock(&f->lock);
    assert_int_equal(f->failed, 0);
    /* Without a restart the WAL holds every frame ever written: more than the bodies alone. */
    if (written < 32L << 20) fail_msg("only %ld bytes written in 120 s: too slow to tell", written);
    if (wal_max > written / 3)
        fail_msg("WAL reached %ld bytes for %ld bytes of messages: it never restarted", wal_max,
                 written);
    close_fx(f);
}

static int healthy(struct fx *f, const char **why)
{
    *why = "";
    return store_health(&f->db, why) == CD_OK;
}

/* A failed commit makes the store unhealthy until a commit succeeds again, which the store finds
 * out by itself (a probe write every second), with no other write arriving; a batch running
 * longer than stall_ms reports a stall while it runs. */
static void health_follows_failing_and_stalled_commits(void **state)
{
    (void)state;
    struct fx *f = open_fx(0);
    struct rlimit old, tiny;
    struct timespec pause = {0, 100 * 1000 * 1000};
    const char *why;
    int i;

    assert_true(healthy(f, &why));
    signal(SIGXFSZ, SIG_IGN); /* writes over the limit fail with EFBIG instead */
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    tiny = old;
    tiny.rlim_cur = 1;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
    store_submit(&f->db, &job_new(f, 1)->j);
    wait_done(f, 2);
    assert_int_equal(f->failed, 1);
    assert_false(healthy(f, &why));
    assert_non_null(strstr(why, "failing"));
    nanosleep(&pause, NULL);
    nanosleep(&pause, NULL);
    assert_false(healthy(f, &why)); /* probes fail too */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    for (i = 0; i < 50 && !healthy(f, &why); i++)
        nanosleep(&pause, NULL);
    if (i == 50) fail_msg("still unhealthy 5 s after storage took writes again: %s", why);
    assert_int_equal(f->done, 2); /* no job of ours ran: the store's own probe did it */

    store_submit(&f->db, &job_new(f, 2)->j);
    for (i = 0; i < 5 && healthy(f, &why); i++)
        nanosleep(&pause, NULL);
    assert_false(healthy(f, &why));
    assert_non_null(strstr(why, "stalled"));
    wait_done(f, 3);
    assert_true(healthy(f, &why));
    close_fx(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(interval_gathers_jobs_into_one_commit),
        cmocka_unit_test(wal_restarts_under_continuous_writes),
        cmocka_unit_test(health_follows_failing_and_stalled_commits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
