/* outbox.c - outbox consumers: a thread each, a read connection each, positions saved through
 * the writer (see outbox.h). */
#include "outbox/outbox.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

#define BACKOFF_MAX_MS 30000

struct save_job {
    struct store_job j; /* first */
    struct outbox_consumer *c;
    int64_t pos;
    int finished;
};

struct outbox_consumer {
    struct store_db *db;
    char name[OUTBOX_NAME_MAX + 1];
    outbox_handle_fn handle;
    void *ud;
    int batch, poll_ms, backoff_ms;
    struct store_conn *conn; /* the consumer thread's read connection */
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    int stop, woken;                   /* under lock */
    _Atomic int64_t pos;               /* after the last handled batch */
    _Atomic int64_t head;              /* the outbox's last position, as last read (metrics) */
    _Atomic uint64_t handled, refused; /* batches (metrics) */
    int64_t saved;                     /* the position last saved (consumer thread) */
    struct save_job save;              /* under lock: finished */
    /* the batch being read: events whose strings are offsets into arena until the page ends */
    struct store_outbox_event *evs;
    size_t nevs;
    char *arena;
    size_t alen, acap;
    struct outbox_consumer *next; /* registry */
};

static uv_once_t reg_once = UV_ONCE_INIT;
static uv_mutex_t reg_lock;
static struct outbox_consumer *reg_head;
static atomic_int reg_count;
static _Atomic uint64_t generation;

static void reg_init(void)
{
    uv_mutex_init(&reg_lock);
}

void outbox_notify(struct store_db *db)
{
    atomic_fetch_add(&generation, 1);
    if (atomic_load(&reg_count) == 0) return;
    uv_mutex_lock(&reg_lock);
    for (struct outbox_consumer *c = reg_head; c; c = c->next) {
        if (c->db != db) continue;
        uv_mutex_lock(&c->lock);
        c->woken = 1;
        uv_cond_signal(&c->cond);
        uv_mutex_unlock(&c->lock);
    }
    uv_mutex_unlock(&reg_lock);
}

uint64_t outbox_generation(void)
{
    return atomic_load(&generation);
}

/* Copies a string into the arena; returns its offset (pointers are fixed once the page ends). */
static size_t arena_put(struct outbox_consumer *c, const char *s, size_t n)
{
    size_t off = c->alen;
    if (c->alen + n > c->acap) {
        while (c->alen + n > c->acap)
            c->acap = c->acap ? c->acap * 2 : 4096;
        c->arena = xrealloc(c->arena, c->acap);
    }
    memcpy(c->arena + off, s, n);
    c->alen += n;
    return off;
}

static int collect(void *ud, const struct store_outbox_event *ev)
{
    struct outbox_consumer *c = ud;
    struct store_outbox_event *e = &c->evs[c->nevs++];
    *e = *ev;
    /* offsets for now: the arena may move while the page is read */
    e->id = (const char *)(uintptr_t)arena_put(c, ev->id, ev->id_len);
    e->type = (const char *)(uintptr_t)arena_put(c, ev->type, ev->type_len);
    e->json = (const char *)(uintptr_t)arena_put(c, ev->json, ev->json_len);
    return 0;
}

static int read_batch(struct outbox_consumer *c, int64_t after)
{
    int rc;
    c->nevs = 0;
    c->alen = 0;
    rc = c->db->ops->outbox_page(c->conn, after, c->batch, collect, c);
    for (size_t i = 0; i < c->nevs; i++) {
        struct store_outbox_event *e = &c->evs[i];
        e->id = c->arena + (uintptr_t)e->id;
        e->type = c->arena + (uintptr_t)e->type;
        e->json = c->arena + (uintptr_t)e->json;
    }
    return rc;
}

static int save_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct save_job *s = (struct save_job *)j;
    return ops->consumer_put(sc, s->c->name, s->pos);
}

static void save_done(struct store_job *j)
{
    struct save_job *s = (struct save_job *)j;
    uv_mutex_lock(&s->c->lock);
    s->finished = 1;
    uv_cond_broadcast(&s->c->cond);
    uv_mutex_unlock(&s->c->lock);
}

/* Saves pos through the writer and waits for its commit. A failed save is logged and tried
 * again with the next batch (the position only matters after a restart). */
static void save_pos(struct outbox_consumer *c, int64_t pos)
{
    if (pos <= c->saved) return;
    memset(&c->save, 0, sizeof(c->save));
    c->save.c = c;
    c->save.pos = pos;
    c->save.j.exec = save_exec;
    c->save.j.done = save_done;
    c->save.j.clean_fail = 1;
    store_submit(c->db, &c->save.j);
    uv_mutex_lock(&c->lock);
    while (!c->save.finished)
        uv_cond_wait(&c->cond, &c->lock);
    uv_mutex_unlock(&c->lock);
    if (c->save.j.status == CD_OK)
        c->saved = pos;
    else
        log_warn("outbox consumer position not saved", "\"consumer\":\"%s\",\"status\":\"%s\"",
                 c->name, cd_status_code(c->save.j.status));
}

/* Waits up to ms for a wake-up (or stop). Returns 1 when stopping. */
static int wait_ms(struct outbox_consumer *c, int ms, int wake_on_notify)
{
    int stop;
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    uv_mutex_lock(&c->lock);
    while (!c->stop && !(wake_on_notify && c->woken)) {
        uint64_t now = uv_hrtime();
        if (now >= deadline) break;
        uv_cond_timedwait(&c->cond, &c->lock, deadline - now);
    }
    stop = c->stop;
    uv_mutex_unlock(&c->lock);
    return stop;
}

/* After a read: a short page reached the head; a full one asks the store (one index lookup). */
static void note_head(struct outbox_consumer *c, int64_t pos)
{
    int64_t head = c->nevs ? c->evs[c->nevs - 1].pos : pos;
    if (c->nevs == (size_t)c->batch) {
        int64_t h = 0;
        if (c->db->ops->outbox_head(c->conn, &h) == CD_OK && h > head) head = h;
    }
    atomic_store_explicit(&c->head, head, memory_order_relaxed);
}

static void consumer_main(void *arg)
{
    struct outbox_consumer *c = arg;
    int backoff = c->backoff_ms;

    for (;;) {
        int64_t pos = atomic_load(&c->pos);
        size_t taken;
        int rc;

        uv_mutex_lock(&c->lock);
        c->woken = 0; /* a commit from now on wakes the wait below */
        if (c->stop) {
            uv_mutex_unlock(&c->lock);
            break;
        }
        uv_mutex_unlock(&c->lock);
        if ((rc = read_batch(c, pos)) != CD_OK) {
            log_warn("outbox read failed", "\"consumer\":\"%s\",\"status\":\"%s\"", c->name,
                     cd_status_code(rc));
            if (wait_ms(c, c->poll_ms, 0)) break;
            continue;
        }
        note_head(c, pos);
        if (c->nevs == 0) {
            if (wait_ms(c, c->poll_ms, 1)) break;
            continue;
        }
        taken = 0;
        rc = c->handle(c->ud, c->evs, c->nevs, &taken);
        if (rc != CD_OK) {
            atomic_fetch_add_explicit(&c->refused, 1, memory_order_relaxed);
            assert(taken <= c->nevs);
            if (taken > c->nevs) taken = 0;
            if (taken > 0) {
                /* A prefix went through: keep it, hand the rest again at once. */
                atomic_store(&c->pos, c->evs[taken - 1].pos);
                save_pos(c, c->evs[taken - 1].pos);
                backoff = c->backoff_ms;
                continue;
            }
            log_debug("outbox batch refused, retried later",
                      "\"consumer\":\"%s\",\"after\":%lld,\"retry_ms\":%d", c->name, (long long)pos,
                      backoff);
            if (wait_ms(c, backoff, 0)) break;
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        atomic_fetch_add_explicit(&c->handled, 1, memory_order_relaxed);
        backoff = c->backoff_ms;
        atomic_store(&c->pos, c->evs[c->nevs - 1].pos);
        save_pos(c, c->evs[c->nevs - 1].pos);
    }
    save_pos(c, atomic_load(&c->pos));
}

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > OUTBOX_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

int outbox_consumer_start(struct store_db *db, const struct outbox_consumer_cfg *cfg,
                          struct outbox_consumer **out)
{
    struct outbox_consumer *c;
    int64_t saved = 0;
    int rc;

    if (!name_ok(cfg->name) || !cfg->handle) return CD_E_INVALID_FIELD;
    uv_once(&reg_once, reg_init);
    c = xcalloc(1, sizeof(*c));
    c->db = db;
    memcpy(c->name, cfg->name, strlen(cfg->name) + 1);
    c->handle = cfg->handle;
    c->ud = cfg->ud;
    c->batch = cfg->batch > 0 ? cfg->batch : 256;
    c->poll_ms = cfg->poll_ms > 0 ? cfg->poll_ms : 1000;
    c->backoff_ms = cfg->backoff_ms > 0 ? cfg->backoff_ms : 500;
    c->evs = xcalloc((size_t)c->batch, sizeof(*c->evs));
    if ((rc = db->ops->conn_open(db->st, 0, &c->conn)) != CD_OK ||
        (rc = db->ops->consumer_get(c->conn, c->name, &saved)) != CD_OK) {
        log_error("outbox consumer cannot start", "\"consumer\":\"%s\",\"status\":\"%s\"", c->name,
                  cd_status_code(rc));
        if (c->conn) db->ops->conn_close(c->conn);
        free(c->evs);
        free(c);
        return CD_E_IO;
    }
    if (saved == 0 && cfg->start_pos > 0) saved = cfg->start_pos;
    c->saved = saved;
    atomic_store(&c->pos, saved);
    atomic_store(&c->head, saved);
    uv_mutex_init(&c->lock);
    uv_cond_init(&c->cond);
    uv_mutex_lock(&reg_lock);
    c->next = reg_head;
    reg_head = c;
    atomic_fetch_add(&reg_count, 1);
    uv_mutex_unlock(&reg_lock);
    uv_thread_create(&c->thread, consumer_main, c);
    log_info("outbox consumer started", "\"consumer\":\"%s\",\"after\":%lld", c->name,
             (long long)saved);
    *out = c;
    return CD_OK;
}

void outbox_consumer_stop(struct outbox_consumer *c)
{
    if (!c) return;
    uv_mutex_lock(&reg_lock);
    for (struct outbox_consumer **pp = &reg_head; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            atomic_fetch_sub(&reg_count, 1);
            break;
        }
    uv_mutex_unlock(&reg_lock);
    uv_mutex_lock(&c->lock);
    c->stop = 1;
    uv_cond_broadcast(&c->cond);
    uv_mutex_unlock(&c->lock);
    uv_thread_join(&c->thread);
    c->db->ops->conn_close(c->conn);
    uv_cond_destroy(&c->cond);
    uv_mutex_destroy(&c->lock);
    free(c->evs);
    free(c->arena);
    free(c);
}

int64_t outbox_consumer_pos(struct outbox_consumer *c)
{
    return atomic_load(&c->pos);
}

void outbox_consumer_stats_each(void (*cb)(void *ud, const struct outbox_consumer_stats *st),
                                void *ud)
{
    uv_once(&reg_once, reg_init);
    uv_mutex_lock(&reg_lock);
    for (struct outbox_consumer *c = reg_head; c; c = c->next) {
        struct outbox_consumer_stats st = {
            .name = c->name,
            .pos = atomic_load(&c->pos),
            .head = atomic_load_explicit(&c->head, memory_order_relaxed),
            .batches_handled = atomic_load_explicit(&c->handled, memory_order_relaxed),
            .batches_refused = atomic_load_explicit(&c->refused, memory_order_relaxed),
        };
        if (st.head < st.pos) st.head = st.pos;
        cb(ud, &st);
    }
    uv_mutex_unlock(&reg_lock);
}

void outbox_event_json(struct jsonw *w, const struct store_outbox_event *ev)
{
    jsonw_lit(w, "{\"pos\":");
    jsonw_int(w, ev->pos);
    jsonw_key(w, "id", 0);
    jsonw_str(w, ev->id, ev->id_len);
    jsonw_key(w, "type", 0);
    jsonw_str(w, ev->type, ev->type_len);
    jsonw_key(w, "room", 0);
    if (ev->room_id > 0)
        jsonw_id(w, 'r', ev->room_id);
    else
        jsonw_lit(w, "null");
    jsonw_key(w, "ts", 0);
    jsonw_int(w, ev->ts);
    jsonw_key(w, "data", 0);
    jsonw_raw(w, ev->json, ev->json_len);
    jsonw_lit(w, "}");
}
