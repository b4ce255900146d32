/* roles_db.c - a store job waited for on a condition variable. */
#include "roles/roles_db.h"

#include <pthread.h>

#include "util/status.h"

struct sync_job {
    struct store_job job; /* first: the writer hands back &job */
    roles_write_fn fn;
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static int sync_exec(const struct store_ops *ops, struct store_conn *c, struct store_job *j)
{
    struct sync_job *s = (struct sync_job *)j;
    return s->fn(ops, c, s->ud);
}

static void sync_done(struct store_job *j)
{
    struct sync_job *s = (struct sync_job *)j;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Nothing in memory to undo: fn only writes to the store. */
static void sync_reset(struct store_job *j)
{
    (void)j;
}

int roles_write(struct store_db *db, roles_write_fn fn, void *ud)
{
    struct sync_job s = {.fn = fn, .ud = ud};
    int rc;
    s.job.exec = sync_exec;
    s.job.done = sync_done;
    s.job.reset = sync_reset;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    store_submit(db, &s.job);
    pthread_mutex_lock(&s.mu);
    while (!s.done)
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    rc = s.job.status;
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}

int roles_consume(struct store_db *db, const char *name, outbox_handle_fn handle, void *ud,
                  int batch, int poll_ms, struct outbox_consumer **out)
{
    struct outbox_consumer_cfg oc = {
        .name = name, .handle = handle, .ud = ud, .batch = batch, .poll_ms = poll_ms};
    return outbox_consumer_start(db, &oc, out);
}
