/* api_search.c - GET /v1/search?q=&room=&limit=&before=: message search on a pool thread
 * (store_ops.search on the thread's read connection), rules in chat/search.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/people.h"
#include "chat/search.h"
#include "server/app.h"
#include "store/store_json.h"
#include "util/clock.h"
#include "util/jsonw.h"
#include "util/status.h"

struct search_call {
    struct api_call base; /* first */
    struct store_search_q q;
    char terms[SEARCH_Q_MAX + 1];
    struct jsonw w;
    int rows, more;
    int64_t last_pos;
    struct people_blocklist blocked; /* users the caller blocks: their hits get "blocked":true */
};

static int search_row(void *ud, const struct store_search_hit *h)
{
    struct search_call *sc = ud;
    struct jsonw *w = &sc->w;
    if (sc->rows >= sc->q.limit - 1) { /* q.limit is the page size + 1 */
        sc->more = 1;
        return 1;
    }
    if (sc->rows++) jsonw_lit(w, ",");
    /* the head of a message as history shows it ("system" for the server API's posts) */
    store_json_message_head(w, h->room_id, h->seq, h->sender);
    jsonw_key(w, "ts", 0);
    jsonw_int(w, h->ts);
    jsonw_key(w, "snippet", 0);
    search_snippet_json(w, h->snippet, h->snippet_len);
    jsonw_key(w, "cursor", 0);
    jsonw_int(w, h->pos);
    if (people_blocklist_has(&sc->blocked, h->sender)) jsonw_lit(w, ",\"blocked\":true");
    jsonw_lit(w, "}");
    sc->last_pos = h->pos;
    return 0;
}

static void search_work(struct api_call *call)
{
    struct search_call *sc = (struct search_call *)call;
    struct store_conn *conn = store_reader(&call->app->db);

    if (!conn) {
        call->status = CD_E_IO;
        return;
    }
    /* one read of the caller's blocks (on failure: nothing marked) */
    people_blocklist_read(call->app->db.ops, conn, sc->q.user, &sc->blocked);
    jsonw_init(&sc->w, 4096);
    jsonw_lit(&sc->w, "{\"messages\":[");
    call->status = call->app->db.ops->search(conn, &sc->q, search_row, sc);
    people_blocklist_free(&sc->blocked);
    jsonw_lit(&sc->w, "],\"has_more\":");
    jsonw_lit(&sc->w, sc->more ? "true" : "false");
    jsonw_key(&sc->w, "next_before", 0);
    if (sc->more)
        jsonw_int(&sc->w, sc->last_pos);
    else
        jsonw_lit(&sc->w, "null");
    jsonw_lit(&sc->w, "}");
    if (call->status == CD_OK) {
        call->raw_len = jsonw_text_len(&sc->w);
        call->raw = xmalloc(call->raw_len);
        memcpy(call->raw, jsonw_text(&sc->w), call->raw_len);
    }
    jsonw_free(&sc->w);
}

void api_search(struct api_req *r)
{
    struct search_call *sc;
    char q[SEARCH_Q_MAX + 1], room[32], key[24];
    int64_t limit = SEARCH_LIMIT_DEF, before = 0, room_id = 0, wait;
    int rc = http_query_value(r->http, "q", q, sizeof(q)), n, given;

    if (rc == HTTP_QUERY_TOO_LONG) {
        api_respond_error(r, CD_E_INVALID_FIELD, "q is longer than 256 bytes");
        return;
    }
    if (rc != 1) {
        api_respond_error(r, CD_E_INVALID_FIELD, "q (1-256 bytes, given once) is required");
        return;
    }
    if (!api_query_int(r, "limit", &limit, &given) || !api_query_int(r, "before", &before, &given))
        return;
    if (limit < 1 || limit > SEARCH_LIMIT_MAX) {
        api_respond_error(r, CD_E_INVALID_FIELD, "limit must be 1-50");
        return;
    }
    rc = http_query_value(r->http, "room", room, sizeof(room));
    if (rc < 0 || (rc == 1 && !id_parse((struct slice){room, strlen(room)}, 'r', &room_id))) {
        api_respond_error(r, CD_E_INVALID_FIELD, "room must be a room id (r_...)");
        return;
    }
    n = snprintf(key, sizeof(key), "%lld", (long long)r->user_id);
    if ((wait = limiter_take(&r->app->searches, key, (size_t)n, clock_unix_ms()))) {
        api_respond_retry(r, wait);
        return;
    }
    sc = (struct search_call *)api_call_new(r, sizeof(*sc));
    if (search_terms(q, strlen(q), sc->terms, sizeof(sc->terms)) == 0) {
        /* nothing searchable (only punctuation): an empty page, not an error */
        sc->base.raw = xstrndup("{\"messages\":[],\"has_more\":false,\"next_before\":null}", 52);
        sc->base.raw_len = strlen(sc->base.raw);
        api_call_finish(&sc->base);
        return;
    }
    sc->q.user = r->user_id;
    sc->q.room = room_id;
    sc->q.before = before;
    sc->q.match = sc->terms;
    sc->q.limit = (int)limit + 1; /* one more row tells whether there is more */
    sc->base.work_fn = search_work;
    sc->base.after_fn = api_call_finish;
    api_call_work(&sc->base);
}

/* ---- the asynchronous indexer ---- */

#define INDEX_BATCH 2000 /* log entries per indexer run: bounds the writer's stall on a backlog */

struct indexer {
    struct app *app;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    int stop, job_done, started;
    struct store_conn *conn; /* search_index_own_conn: the indexer's connection */
};

struct index_job {
    struct store_job job; /* first */
    struct indexer *ix;
    int n;
};

static int index_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct index_job *ij = (struct index_job *)j;
    return ops->search_index_log(sc, INDEX_BATCH, &ij->n);
}

static void index_reset(struct store_job *j)
{
    ((struct index_job *)j)->n = 0;
}

static void index_done(struct store_job *j)
{
    struct index_job *ij = (struct index_job *)j;
    uv_mutex_lock(&ij->ix->lock);
    ij->ix->job_done = 1;
    uv_cond_signal(&ij->ix->cond);
    uv_mutex_unlock(&ij->ix->lock);
}

/* One run; *n gets the entries indexed. Called without ix->lock. SQLite: a writer job (between
 * other batches, in its own transaction: one FTS5 segment per run, not one per group commit).
 * PostgreSQL: on the indexer's own connection, beside the writer, so a send's commit never
 * waits for the index. */
static int index_run(struct indexer *ix, int *n)
{
    struct store_db *db = &ix->app->db;
    struct index_job ij;
    *n = 0;
    if (db->ops->search_index_own_conn) {
        if (!ix->conn && db->ops->conn_open(db->st, 0, &ix->conn) != CD_OK) {
            ix->conn = NULL; /* logged by the backend; tried again next time */
            return CD_E_UNAVAILABLE;
        }
        return db->ops->search_index_log(ix->conn, INDEX_BATCH, n);
    }
    memset(&ij, 0, sizeof(ij));
    ij.ix = ix;
    ij.job.exec = index_exec;
    ij.job.done = index_done;
    ij.job.reset = index_reset;
    uv_mutex_lock(&ix->lock);
    ix->job_done = 0;
    uv_mutex_unlock(&ix->lock);
    store_submit(db, &ij.job);
    uv_mutex_lock(&ix->lock);
    while (!ix->job_done)
        uv_cond_wait(&ix->cond, &ix->lock);
    uv_mutex_unlock(&ix->lock);
    *n = ij.n;
    return ij.job.status;
}

/* Every --search-index-ms, one run indexes what the log gained since the saved position
 * (search_index_log); a full batch runs the next one at once. */
static void indexer_thread(void *arg)
{
    struct indexer *ix = arg;
    struct app *app = ix->app;
    uint64_t every_ns =
        (uint64_t)(app->cfg.search_index_ms > 0 ? app->cfg.search_index_ms : 200) * 1000000ull;
    int full = 0, n, rc;

    uv_mutex_lock(&ix->lock);
    while (!ix->stop) {
        if (!full && uv_cond_timedwait(&ix->cond, &ix->lock, every_ns) != UV_ETIMEDOUT) continue;
        if (ix->stop) break;
        uv_mutex_unlock(&ix->lock);
        rc = index_run(ix, &n);
        uv_mutex_lock(&ix->lock);
        full = rc == CD_OK && n >= INDEX_BATCH;
    }
    uv_mutex_unlock(&ix->lock);
}

struct indexer *search_indexer_start(struct app *app)
{
    struct indexer *ix;
    if (!app->db.ops->search_index_log) return NULL;
    ix = xcalloc(1, sizeof(*ix));
    ix->app = app;
    uv_mutex_init(&ix->lock);
    uv_cond_init(&ix->cond);
    if (uv_thread_create(&ix->thread, indexer_thread, ix) == 0) ix->started = 1;
    return ix;
}

void search_indexer_stop(struct indexer *ix)
{
    if (!ix) return;
    uv_mutex_lock(&ix->lock);
    ix->stop = 1;
    uv_cond_broadcast(&ix->cond);
    uv_mutex_unlock(&ix->lock);
    if (ix->started) uv_thread_join(&ix->thread);
    if (ix->conn) ix->app->db.ops->conn_close(ix->conn);
    uv_mutex_destroy(&ix->lock);
    uv_cond_destroy(&ix->cond);
    free(ix);
}
