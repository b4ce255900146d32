/* store.c - the single writer thread with group commit, and per-thread read connections. */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "store/store.h"
#include "trace/trace.h"
#include "util/hist.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

#define STORE_BATCH_MAX 4096 /* jobs per transaction */

struct reader_slot {
    struct reader_slot *next;
    struct store_conn *conn;
};

#define STORE_HINTS_MAX 4096

struct store_priv {
    uv_mutex_t lock;
    uv_cond_t cond;
    struct store_job *head, *tail; /* FIFO of pending jobs */
    int stopping, stopped;
    uv_thread_t thread;
    struct store_conn *writer;
    uv_thread_t maint_thread; /* checkpoints (SQLite), so the writer never stalls on one */
    uv_sem_t maint_stop;
    /* Set by the maintenance thread when its checkpoint left the WAL long: the writer copies
     * the few remaining frames between two transactions, so its next one restarts the WAL. */
    atomic_int wal_tail;
    struct reader_slot *readers;    /* every read connection, closed at the end */
    int64_t rooms[STORE_BATCH_MAX]; /* writer: the current batch's rooms (lock_rooms) */
    unsigned gen;
    uint64_t interval_ns;   /* least time between the starts of two commits */
    int wal_restart_frames; /* WAL length at which the writer copies the checkpoint's tail */
    _Atomic uint64_t commits, jobs, failed_commits;
    _Atomic uint64_t submitted; /* jobs queued over the store's life; minus jobs = queued now */
    /* Health (store_health), one state set by the writer alone: after every batch and every
     * probe. Once a batch failed, the writer adds ops->probe (a write) to every batch and, while
     * idle, commits a probe alone every STORE_PROBE_NS: only a commit that wrote to storage
     * makes it HEALTH_OK again, with traffic or without. */
    atomic_int health;
    /* Heads other nodes committed (store_note_head), for the backend before the next batch. */
    uv_mutex_t hint_lock;
    struct {
        int64_t room, seq;
    } hints[STORE_HINTS_MAX];
    size_t nhints;
    struct hist commit_latency;      /* a batch's transaction(s), begin to commit, retries in */
    _Atomic uint64_t batch_start_ns; /* uv_hrtime() at the start of the running batch, 0: idle */
    uint64_t stall_ns;
};

enum {
    HEALTH_OK = 0,
    HEALTH_FAILING,     /* a commit failed (a full disk, an I/O error) */
    HEALTH_UNAVAILABLE, /* the backend does not answer (CD_E_UNAVAILABLE) */
};

static _Atomic unsigned store_gen;
static __thread struct {
    struct store_db *db;
    unsigned gen;
    struct store_conn *conn;
} tl_reader;

static void sleep_ns(uint64_t ns);

#define STORE_RETRY_MAX 8 /* runs of one batch aborted by deadlocks before it is given up */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The batch's rooms, sorted and distinct, into p->rooms; returns how many. O(n log n). */
static size_t batch_rooms(struct store_priv *p, struct store_job *batch)
{
    size_t n = 0, k = 0;
    for (struct store_job *j = batch; j; j = j->next)
        if (j->room_id > 0) p->rooms[n++] = j->room_id;
    if (n == 0) return 0;
    qsort(p->rooms, n, sizeof(p->rooms[0]), cmp_i64);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || p->rooms[k - 1] != p->rooms[i]) p->rooms[k++] = p->rooms[i];
    return k;
}

/* One transaction over the batch: each job's status is set; returns the batch's status (CD_OK
 * when committed, CD_AGAIN when a deadlock, a serialization failure or a late duplicate rolled
 * it back). optimistic: every job can run again, the backend may use that. */
static int writer_try_batch(struct store_db *db, struct store_job *batch, int optimistic)
{
    const struct store_ops *ops = db->ops;
    struct store_priv *p = db->priv;
    struct store_conn *c = p->writer;
    int rc = ops->begin(c);

    /* Not healthy: this commit must prove that storage takes writes again (store_health). */
    if (rc == CD_OK && ops->probe && atomic_load(&p->health) != HEALTH_OK) rc = ops->probe(c);
    if (rc == CD_OK && ops->lock_rooms) {
        size_t nrooms = batch_rooms(p, batch);
        if (nrooms) rc = ops->lock_rooms(c, p->rooms, nrooms, optimistic);
    }
    for (struct store_job *j = batch; j; j = j->next) {
        if (rc != CD_OK) {
            j->status = rc;
            continue;
        }
        if (j->clean_fail) {
            /* No savepoint needed: the job changes nothing when it fails, unless the store
             * itself fails, and then the whole batch is rolled back below. */
            j->status = j->exec(ops, c, j);
            if (j->status == CD_E_IO || j->status == CD_E_UNAVAILABLE) rc = j->status;
            continue;
        }
        if (ops->savepoint(c) != CD_OK) {
            j->status = CD_E_IO;
            continue;
        }
        j->status = j->exec(ops, c, j);
        ops->savepoint_release(c, j->status != CD_OK);
    }
    if (rc != CD_OK) {
        if (ops->rollback(c) == CD_AGAIN) rc = CD_AGAIN;
    } else if ((rc = ops->commit(c)) != CD_OK && rc != CD_AGAIN) {
        ops->rollback(c);
        atomic_fetch_add(&p->failed_commits, 1);
    }
    return rc;
}

/* Writer thread: the outcome of a batch or a probe. A deadlock given up after retries is a
 * failing commit, not an unreachable backend. */
static void set_health(struct store_db *db, int rc)
{
    struct store_priv *p = db->priv;
    int h = rc == CD_OK ? HEALTH_OK : rc == CD_E_UNAVAILABLE ? HEALTH_UNAVAILABLE : HEALTH_FAILING;
    int was = atomic_exchange(&p->health, h);
    if (was == h) return;
    if (h == HEALTH_OK)
        log_info("storage recovered: a commit wrote to storage", "\"store\":\"%s\"", db->ops->name);
    else
        log_error("storage failing: not ready until a commit succeeds", "\"status\":\"%s\"",
                  cd_status_code(rc));
}

/* Tracing: one span per group commit, a child of the first sampled request it serves (else of
 * the first traced one, else a new trace) and linked to every traced request of the batch: a
 * commit serves many requests, each its own trace, so parenting it on all is impossible; the
 * links find it from each of them. Its context is the thread's current one while the jobs'
 * done() and the fanout run, so the fanout's span is its child. */
static struct trace_span *commit_span_start(const struct store_db *db, struct store_job *batch,
                                            size_t n)
{
    const struct trace_ctx *parent = NULL;
    struct trace_span *s;
    const char *sys;

    for (struct store_job *j = batch; j; j = j->next)
        if (j->trace && j->trace->valid && (!parent || (!parent->sampled && j->trace->sampled)))
            parent = j->trace;
    s = trace_span_start("store.commit", TRACE_INTERNAL, parent);
    for (struct store_job *j = batch; j; j = j->next)
        trace_link(s, j->trace);
    /* OpenTelemetry's db.system names: "sqlite", "postgresql". */
    sys = strcmp(db->ops->name, "postgres") ? db->ops->name : "postgresql";
    trace_attr_str(s, "db.system", sys, strlen(sys));
    trace_attr_int(s, "chatd.jobs", (int64_t)n);
    return s;
}

static void writer_run_batch(struct store_db *db, struct store_job *batch)
{
    struct store_priv *p = db->priv;
    struct trace_span *span = NULL;
    const struct trace_ctx *prev_ctx = NULL;
    size_t n = 0;
    int rc, attempts = 0;
    uint64_t t0 = uv_hrtime();

    for (struct store_job *j = batch; j; j = j->next)
        n++;
    if (trace_enabled()) span = commit_span_start(db, batch, n);
    for (int attempt = 1;; attempt++) {
        /* Optimistic twice: the first run may number from remembered counters that another
         * node made stale (PostgreSQL), the second waits for the locked counters; a third
         * (after a duplicate client_msg_id, say) runs plain. Never with SQLite. */
        int optimistic = attempt <= 2 && db->ops->lock_rooms;
        for (struct store_job *j = batch; j && optimistic; j = j->next)
            optimistic = j->reset != NULL;
        rc = writer_try_batch(db, batch, optimistic);
        attempts = attempt;
        if (rc != CD_AGAIN) break;
        /* Rolled back by a deadlock or serialization failure (several writers on PostgreSQL), or
         * an optimistic append met a duplicate: run it again, not optimistically. Jobs that
         * cannot undo what they produced end here, uncommitted. */
        if (db->batch_failed) db->batch_failed();
        if (attempt >= STORE_RETRY_MAX) {
            rc = CD_E_UNAVAILABLE;
            break;
        }
        log_debug("batch rolled back, running it again", "\"attempt\":%d", attempt);
        /* After a deadlock both sides may retry into the same one: back off a random 0-2^n ms
         * (a late duplicate needs no pause: the next run is not optimistic). */
        if (attempt > 1)
            sleep_ns((uint64_t)(rand() % (1 << (attempt < 10 ? attempt : 10))) * 1000000u);
        for (struct store_job **pp = &batch; *pp;) {
            struct store_job *j = *pp;
            j->status = CD_OK;
            if (j->reset) {
                j->reset(j);
                pp = &j->next;
                continue;
            }
            *pp = j->next;
            j->next = NULL;
            j->status = CD_E_UNAVAILABLE;
            j->done(j);
        }
        if (!batch) break;
    }
    if (rc != CD_OK) {
        log_error("group commit failed", "\"jobs\":%zu,\"status\":\"%s\"", n, cd_status_code(rc));
        if (db->batch_failed) db->batch_failed();
    }
    set_health(db, rc);
    atomic_fetch_add(&p->commits, 1);
    atomic_fetch_add(&p->jobs, n);
    hist_add(&p->commit_latency, (uv_hrtime() - t0) / 1000);
    if (span) {
        trace_attr_int(span, "chatd.attempts", attempts);
        if (rc != CD_OK) trace_span_error(span, cd_status_code(rc));
        prev_ctx = trace_current_set(trace_span_ctx(span));
    }
    while (batch) {
        struct store_job *next = batch->next;
        if (rc != CD_OK) batch->status = rc; /* nothing of a failed batch was kept */
        batch->next = NULL;
        batch->done(batch);
        batch = next;
    }
    if (db->batch_done) db->batch_done(db->batch_ud);
    if (span) {
        trace_current_set(prev_ctx);
        trace_span_end(span);
    }
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#define STORE_PROBE_NS 1000000000u

/* A transaction with only the probe write (an empty one without ops->probe): reopens a lost
 * connection and proves that the backend answers and storage takes writes. */
static void writer_probe(struct store_db *db)
{
    struct store_priv *p = db->priv;
    int rc = db->ops->begin(p->writer);
    if (rc == CD_OK && db->ops->probe) rc = db->ops->probe(p->writer);
    if (rc == CD_OK)
        rc = db->ops->commit(p->writer);
    else
        db->ops->rollback(p->writer);
    set_health(db, rc);
}

static void writer_hints(struct store_db *db)
{
    struct store_priv *p = db->priv;
    if (!db->ops->note_head) return;
    uv_mutex_lock(&p->hint_lock);
    for (size_t i = 0; i < p->nhints; i++)
        db->ops->note_head(p->writer, p->hints[i].room, p->hints[i].seq);
    p->nhints = 0;
    uv_mutex_unlock(&p->hint_lock);
}

void store_note_head(struct store_db *db, int64_t room, int64_t seq)
{
    struct store_priv *p = db->priv;
    if (!p || !db->ops->note_head) return;
    uv_mutex_lock(&p->hint_lock);
    if (p->nhints < STORE_HINTS_MAX) {
        p->hints[p->nhints].room = room;
        p->hints[p->nhints++].seq = seq;
    }
    uv_mutex_unlock(&p->hint_lock);
}

static void writer_main(void *arg)
{
    struct store_db *db = arg;
    struct store_priv *p = db->priv;
    struct sched_param sp = {0};

    /* SCHED_BATCH: a wake-up of the writer does not preempt an I/O thread sharing its core. The
     * I/O thread finishes its loop iteration (queueing more jobs) and the writer then commits
     * them together: fewer, larger group commits and far fewer context switches. */
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);

    uint64_t last_start = 0;
    for (;;) {
        struct store_job *batch, *last;
        size_t n = 1;

        uv_mutex_lock(&p->lock);
        while (!p->head && !p->stopping) {
            if (atomic_load(&p->health) == HEALTH_OK) {
                uv_cond_wait(&p->cond, &p->lock);
                continue;
            }
            /* Not healthy and nothing is queued: probe once a second, so store_health() (and
             * /readyz) recover without traffic. */
            if (uv_cond_timedwait(&p->cond, &p->lock, STORE_PROBE_NS) == UV_ETIMEDOUT && !p->head &&
                !p->stopping) {
                uv_mutex_unlock(&p->lock);
                writer_probe(db);
                uv_mutex_lock(&p->lock);
            }
        }
        if (p->head && p->interval_ns && !p->stopping) {
            /* Under load the last commit began less than an interval ago: let the rest of the
             * interval fill this batch. */
            uint64_t now = uv_hrtime();
            if (now - last_start < p->interval_ns) {
                uv_mutex_unlock(&p->lock);
                sleep_ns(last_start + p->interval_ns - now);
                uv_mutex_lock(&p->lock);
            }
        }
        last_start = uv_hrtime();
        if (!p->head) {
            p->stopped = 1; /* under the lock: no job can slip in after this check */
            uv_mutex_unlock(&p->lock);
            break;
        }
        batch = last = p->head;
        while (last->next && n < STORE_BATCH_MAX) {
            last = last->next;
            n++;
        }
        p->head = last->next;
        if (!p->head) p->tail = NULL;
        last->next = NULL;
        uv_mutex_unlock(&p->lock);
        atomic_store(&p->batch_start_ns, last_start);
        writer_hints(db);
        writer_run_batch(db, batch);
        atomic_store(&p->batch_start_ns, 0);
        /* Under continuous load a PASSIVE checkpoint from another thread never catches up with
         * the writer, and SQLite restarts the WAL only when a write transaction begins with
         * every frame copied back: the WAL would grow without bound, every commit appending to
         * fresh file pages (block allocation and zeroing in the kernel). The maintenance thread
         * copies the bulk; the writer, between two transactions, copies the rest. */
        if (atomic_exchange(&p->wal_tail, 0)) db->ops->checkpoint(p->writer, NULL);
    }
}

static void maint_main(void *arg)
{
    struct store_db *db = arg;
    struct store_priv *p = db->priv;
    struct store_conn *c = NULL;

    if (db->ops->conn_open(db->st, 1, &c) != CD_OK) return;
    /* Every 100 ms: cheap when the WAL is small, and keeps it small under load. */
    for (;;) {
        int frames = 0;
        if (db->ops->checkpoint(c, &frames) == CD_OK && frames >= p->wal_restart_frames)
            atomic_store(&p->wal_tail, 1);
        if (uv_sem_trywait(&p->maint_stop) == 0) break;
        uv_sleep(100);
    }
    db->ops->conn_close(c);
}

int store_db_open(struct store_db *db, const struct store_ops *ops, const struct store_config *cfg)
{
    struct store_priv *p;
    int rc;

    db->ops = ops;
    db->priv = NULL;
    if ((rc = ops->open(cfg, &db->st)) != CD_OK) return rc;
    p = xcalloc(1, sizeof(*p));
    uv_mutex_init(&p->lock);
    uv_mutex_init(&p->hint_lock);
    uv_cond_init(&p->cond);
    p->gen = atomic_fetch_add(&store_gen, 1) + 1;
    /* Clamped: at most 1 s between commits, 2^30 frames. */
    p->interval_ns = cfg->commit_interval_us <= 0        ? 0
                     : cfg->commit_interval_us > 1000000 ? 1000000000u
                                                         : (uint64_t)cfg->commit_interval_us * 1000;
    p->wal_restart_frames = cfg->wal_restart_frames <= 0        ? 32768
                            : cfg->wal_restart_frames > 1 << 30 ? 1 << 30
                                                                : (int)cfg->wal_restart_frames;
    p->stall_ns = (uint64_t)(cfg->stall_ms > 0 ? cfg->stall_ms : 10000) * 1000000u;
    if ((rc = ops->conn_open(db->st, 1, &p->writer)) != CD_OK) {
        ops->close(db->st);
        free(p);
        return rc;
    }
    db->priv = p;
    uv_thread_create(&p->thread, writer_main, db);
    uv_sem_init(&p->maint_stop, 0);
    if (ops->checkpoint) /* SQLite; PostgreSQL checkpoints itself */
        uv_thread_create(&p->maint_thread, maint_main, db);
    return CD_OK;
}

void store_submit(struct store_db *db, struct store_job *j)
{
    struct store_priv *p = db->priv;

    j->next = NULL;
    uv_mutex_lock(&p->lock);
    if (p->stopped) {
        uv_mutex_unlock(&p->lock);
        j->status = CD_E_UNAVAILABLE;
        j->done(j);
        return;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    atomic_fetch_add(&p->submitted, 1);
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
}

void store_submit_list(struct store_db *db, struct store_job *head, struct store_job *tail,
                       size_t n)
{
    struct store_priv *p = db->priv;

    tail->next = NULL;
    uv_mutex_lock(&p->lock);
    if (p->stopped) {
        uv_mutex_unlock(&p->lock);
        while (head) {
            struct store_job *next = head->next;
            head->status = CD_E_UNAVAILABLE;
            head->done(head);
            head = next;
        }
        return;
    }
    if (p->tail)
        p->tail->next = head;
    else
        p->head = head;
    p->tail = tail;
    atomic_fetch_add(&p->submitted, n);
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
}

struct store_conn *store_reader(struct store_db *db)
{
    struct store_priv *p = db->priv;
    struct reader_slot *slot;

    if (tl_reader.db == db && tl_reader.gen == p->gen) return tl_reader.conn;
    slot = xcalloc(1, sizeof(*slot));
    if (db->ops->conn_open(db->st, 0, &slot->conn) != CD_OK) {
        free(slot);
        return NULL;
    }
    uv_mutex_lock(&p->lock);
    slot->next = p->readers;
    p->readers = slot;
    uv_mutex_unlock(&p->lock);
    tl_reader.db = db;
    tl_reader.gen = p->gen;
    tl_reader.conn = slot->conn;
    return slot->conn;
}

void store_db_close(struct store_db *db)
{
    struct store_priv *p = db->priv;
    if (!p) return;
    uv_mutex_lock(&p->lock);
    p->stopping = 1;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
    uv_thread_join(&p->thread);
    if (db->ops->checkpoint) {
        uv_sem_post(&p->maint_stop);
        uv_thread_join(&p->maint_thread);
    }
    uv_sem_destroy(&p->maint_stop);
    db->ops->conn_close(p->writer);
    while (p->readers) {
        struct reader_slot *s = p->readers;
        p->readers = s->next;
        db->ops->conn_close(s->conn);
        free(s);
    }
    db->ops->close(db->st);
    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->hint_lock);
    uv_mutex_destroy(&p->lock);
    free(p);
    db->priv = NULL;
}

int store_available(struct store_db *db)
{
    struct store_priv *p = db->priv;
    return p && atomic_load(&p->health) != HEALTH_UNAVAILABLE;
}

uint64_t store_queued(struct store_db *db)
{
    struct store_priv *p = db->priv;
    uint64_t done = atomic_load(&p->jobs), in = atomic_load(&p->submitted);
    return in > done ? in - done : 0;
}

int store_health(struct store_db *db, const char **why)
{
    struct store_priv *p = db->priv;
    uint64_t start;

    if (!p) {
        *why = "storage closed";
        return CD_E_UNAVAILABLE;
    }
    switch (atomic_load(&p->health)) {
    case HEALTH_UNAVAILABLE:
        *why = "storage unavailable: the database does not answer";
        return CD_E_UNAVAILABLE;
    case HEALTH_FAILING:
        *why = "storage failing: the last commit failed";
        return CD_E_UNAVAILABLE;
    }
    start = atomic_load(&p->batch_start_ns);
    if (start && uv_hrtime() - start > p->stall_ns) {
        *why = "storage stalled: a commit is taking too long";
        return CD_E_UNAVAILABLE;
    }
    return CD_OK;
}

void store_db_stats(struct store_db *db, struct store_stats *out)
{
    struct store_priv *p = db->priv;
    out->failing = atomic_load(&p->health) != HEALTH_OK;
    out->commits = atomic_load(&p->commits);
    out->jobs = atomic_load(&p->jobs);
    out->failed_commits = atomic_load(&p->failed_commits);
    out->commit_latency = &p->commit_latency;
    out->queued = store_queued(db);
}
