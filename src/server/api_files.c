/* api_files.c - attachments over HTTP: POST /v1/uploads (the body streamed to the blob store),
 * GET /v1/attachments/{id} (ranges, ETag), and the sweep that expires unreferenced uploads.
 *
 * Threads. The I/O thread only copies body bytes into a bounded queue of chunks; a libuv pool
 * job writes the queued chunks to the blob writer and hashes them (one job in flight per
 * upload, so the chunks are written in order without a lock). Over UPLOAD_QUEUE_HIGH queued
 * bytes the connection is paused (TCP backpressure) until the job has written them. At the end
 * of the body a last pool job commits the blob (fsync) and the writer inserts the row. A
 * download reads UPLOAD_CHUNK bytes at a time on the pool and queues each piece on the
 * connection when the previous ones have drained (http_on_drain), so neither direction holds
 * more than about a megabyte of a file in memory per connection, and no I/O thread touches the
 * disk or the object store.
 */
#include <http_parser.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob.h"
#include "chat/attach.h"
#include "server/app.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/status.h"

#define UPLOAD_CHUNK      (256 * 1024)  /* bytes per blob read of a download */
#define UPLOAD_QUEUE_HIGH (1024 * 1024) /* queued upload bytes that pause the connection */
#define UPLOAD_NAME_RAW   1024          /* bytes of the `name` query parameter before sanitising */
#define SWEEP_BATCH       100           /* attachments expired per writer job */

enum stream_kind { STREAM_UPLOAD = 1, STREAM_DOWNLOAD = 2 };

struct chunk {
    struct chunk *next;
    size_t len;
    char data[];
};

struct upload {
    struct api_call base; /* first */
    int kind;             /* STREAM_UPLOAD */
    struct store_attachment att;
    crypto_hash_sha256_state sha;         /* pool thread only */
    struct blob_writer *w;                /* pool thread only */
    struct chunk *pending, *pending_tail; /* I/O thread: not yet handed to a job */
    struct chunk *writing;                /* the job's chunks */
    size_t pending_bytes;
    uint64_t total;
    uv_work_t io_work;
    uint8_t busy;      /* a pool job runs */
    uint8_t paused;    /* we paused the connection */
    uint8_t finishing; /* the body is complete: commit after the last chunk */
    uint8_t committing;
    uint8_t aborted;   /* the connection closed, or the upload was refused midway */
    uint8_t job_abort; /* the running job's copy of aborted (set before it is queued) */
    uint8_t answered;  /* the answer was sent early (413): finish quietly */
    int io_status;     /* of the blob writes (pool thread, read after the job) */
};

struct download {
    int kind; /* STREAM_DOWNLOAD */
    struct app *app;
    struct conn *c;
    char id[STORE_ATT_ID_LEN + 1];
    uint64_t off, end; /* next byte to read, last byte (inclusive) */
    struct rbuf *buf;  /* the piece read by the job */
    int status;
    uint8_t busy, aborted;
    uv_work_t work;
};

/* ---- POST /v1/uploads ---- */

static void upload_kick(struct upload *up);

static void chunks_free(struct chunk *ch)
{
    while (ch) {
        struct chunk *next = ch->next;
        free(ch);
        ch = next;
    }
}

static void upload_cleanup(struct api_call *call)
{
    struct upload *up = (struct upload *)call;
    chunks_free(up->pending);
    chunks_free(up->writing);
}

/* Pool thread: open the writer on the first chunk, write and hash the job's chunks; after the
 * last one (finishing) commit the blob. An aborted upload drops what it wrote. */
static void upload_work(uv_work_t *wk)
{
    struct upload *up = wk->data;
    struct blob_store *bs = up->base.app->blobs;

    if (up->job_abort) {
        if (up->w) bs->ops->put_abort(up->w);
        up->w = NULL;
        return;
    }
    if (up->io_status == CD_OK && !up->w)
        up->io_status = bs->ops->put_begin(bs, up->att.id, &up->w);
    for (struct chunk *ch = up->writing; ch && up->io_status == CD_OK; ch = ch->next) {
        crypto_hash_sha256_update(&up->sha, (const unsigned char *)ch->data, ch->len);
        up->io_status = bs->ops->put_write(up->w, ch->data, ch->len);
    }
    if (up->committing && up->io_status == CD_OK) {
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_final(&up->sha, h);
        sodium_bin2hex(up->att.sha256, sizeof(up->att.sha256), h, sizeof(h));
        up->io_status = bs->ops->put_commit(up->w, (uint64_t)up->total, up->att.sha256);
        up->w = NULL;
    } else if (up->io_status != CD_OK && up->w) {
        bs->ops->put_abort(up->w);
        up->w = NULL;
    }
}

static int upload_insert_exec(const struct store_ops *ops, struct store_conn *sc,
                              struct store_job *j)
{
    struct upload *up = (struct upload *)((char *)j - offsetof(struct api_call, job));
    int rc = ops->attachment_insert(sc, &up->att);
    if (rc == CD_OK) {
        struct jsonw w;
        jsonw_init(&w, 256);
        jsonw_lit(&w, "{\"attachment\":");
        attach_json(&w, &up->att);
        jsonw_lit(&w, "}");
        up->base.raw_len = jsonw_text_len(&w);
        up->base.raw = xmalloc(up->base.raw_len);
        memcpy(up->base.raw, jsonw_text(&w), up->base.raw_len);
        jsonw_free(&w);
        up->base.http_status = 201;
    }
    return rc;
}

static void upload_after(uv_work_t *wk, int status)
{
    struct upload *up = wk->data;
    (void)status;
    up->busy = 0;
    chunks_free(up->writing);
    up->writing = NULL;
    if (up->aborted) {
        if (up->w) { /* aborted while a write ran: one more job drops the partial blob */
            upload_kick(up);
            return;
        }
        api_call_free(&up->base); /* the connection is gone, or it was answered */
        return;
    }
    if (up->committing) {
        if (up->io_status != CD_OK) {
            up->base.status = up->io_status;
            api_call_finish(&up->base);
            return;
        }
        up->base.job.exec = upload_insert_exec;
        api_call_write(&up->base);
        return;
    }
    if (up->paused && up->pending_bytes < UPLOAD_QUEUE_HIGH / 2) {
        up->paused = 0;
        conn_resume(up->base.c);
    }
    upload_kick(up);
}

/* Hand the pending chunks (or the commit, or the abort) to a pool job unless one runs. */
static void upload_kick(struct upload *up)
{
    if (up->busy) return;
    if (!up->aborted) {
        if (!up->pending && !up->finishing) return;
        up->writing = up->pending;
        up->pending = up->pending_tail = NULL;
        up->pending_bytes = 0;
        up->committing = up->finishing;
    }
    up->busy = 1;
    up->job_abort = up->aborted; /* the job reads its own copy: no race with the I/O thread */
    up->io_work.data = up;
    uv_queue_work(&up->base.c->io->loop, &up->io_work, upload_work, upload_after);
}

/* The connection closed (or the upload was refused midway): drop the blob, then free. */
static void upload_abort(struct upload *up)
{
    up->aborted = 1;
    http_stream_set(up->base.c, NULL);
    chunks_free(up->pending);
    up->pending = up->pending_tail = NULL;
    if (!up->busy) {
        if (up->w) {
            upload_kick(up);
        } else {
            api_call_free(&up->base);
        }
    }
}

int files_stream_begin(struct conn *c, struct http_request *req)
{
    struct app *app = c->io->srv->app;
    struct api_req r = {.app = app, .c = c, .http = req, .route = ROUTE_UPLOAD};
    struct store_attachment att;
    struct slice tok, ct;
    char raw[UPLOAD_NAME_RAW + 1], key[24], msg[128];
    struct upload *up;
    int64_t user, wait;
    int rc;

    if (req->method != HTTP_POST || !slice_eq(req->path, "/v1/uploads")) return HTTP_STREAM_NO;
    if (http_bearer_token(req, &tok) != 1) {
        metrics_auth_failure(&app->metrics, AUTH_FAIL_TOKEN);
        api_respond_error(&r, CD_E_UNAUTHORIZED, "missing or malformed bearer token");
        return HTTP_STREAM_ANSWERED;
    }
    if ((rc = api_verify_token(app, tok.p, tok.len, &user, NULL)) != CD_OK) {
        api_respond_error(&r, rc, NULL);
        return HTTP_STREAM_ANSWERED;
    }
    r.user_id = user;
    memset(&att, 0, sizeof(att));
    if (!http_header(req, "content-type", &ct) ||
        !attach_type_allowed(app->cfg.upload_types, ct.p, ct.len, att.content_type,
                             sizeof(att.content_type))) {
        api_respond_error(&r, CD_E_UPLOAD_TYPE, NULL);
        return HTTP_STREAM_ANSWERED;
    }
    if (http_header(req, "content-length", &ct)) {
        uint64_t n = 0;
        for (size_t i = 0; i < ct.len && ct.p[i] >= '0' && ct.p[i] <= '9' && n < (1ull << 62); i++)
            n = n * 10 + (uint64_t)(ct.p[i] - '0');
        if (n > (uint64_t)app->cfg.max_upload) {
            snprintf(msg, sizeof(msg), "the upload is over --max-upload (%lld bytes)",
                     (long long)app->cfg.max_upload);
            api_respond_error(&r, CD_E_TOO_LARGE, msg);
            return HTTP_STREAM_ANSWERED;
        }
    }
    rc = http_query_value(req, "name", raw, sizeof(raw));
    if (rc < 0) {
        api_respond_error(&r, CD_E_INVALID_FIELD,
                          "name must be given at most once, at most 1024 bytes");
        return HTTP_STREAM_ANSWERED;
    }
    if (rc == 0 || !attach_name_sanitize(raw, strlen(raw), att.name, sizeof(att.name)))
        snprintf(att.name, sizeof(att.name), "file");
    snprintf(key, sizeof(key), "%lld", (long long)user);
    if ((wait = limiter_take(&app->uploads, key, strlen(key), clock_unix_ms()))) {
        api_respond_retry(&r, wait);
        return HTTP_STREAM_ANSWERED;
    }
    up = (struct upload *)api_call_new(&r, sizeof(*up));
    up->kind = STREAM_UPLOAD;
    up->base.cleanup = upload_cleanup;
    up->att = att;
    up->att.owner = user;
    up->att.created_at = clock_unix_ms();
    attach_id_new(up->att.id);
    crypto_hash_sha256_init(&up->sha);
    http_stream_set(c, &up->kind);
    return HTTP_STREAM_YES;
}

int files_stream_data(struct conn *c, const char *p, size_t n)
{
    int *kind = http_stream_get(c);
    struct upload *up;
    struct app *app = c->io->srv->app;
    struct chunk *ch;
    char msg[128];

    if (!kind || *kind != STREAM_UPLOAD) return 0;
    up = (struct upload *)((char *)kind - offsetof(struct upload, kind));
    if (up->total + n > (uint64_t)app->cfg.max_upload) {
        snprintf(msg, sizeof(msg), "the upload is over --max-upload (%lld bytes)",
                 (long long)app->cfg.max_upload);
        c->flags |= CONN_F_PENDING | CONN_F_NO_KEEPALIVE;
        api_send_error(app, c, ROUTE_UPLOAD, up->base.start_ms, CD_E_TOO_LARGE, msg, NULL);
        up->answered = 1;
        upload_abort(up);
        return 1;
    }
    up->total += n;
    ch = xmalloc(sizeof(*ch) + n);
    ch->next = NULL;
    ch->len = n;
    memcpy(ch->data, p, n);
    if (up->pending_tail)
        up->pending_tail->next = ch;
    else
        up->pending = ch;
    up->pending_tail = ch;
    up->pending_bytes += n;
    if (up->pending_bytes >= UPLOAD_QUEUE_HIGH && !up->paused) {
        up->paused = 1;
        conn_pause(c);
    }
    upload_kick(up);
    return 0;
}

/* ud is the `kind` member of an upload or a download (http_stream_set). */
void files_stream_abort(struct conn *c, void *ud)
{
    (void)c;
    if (*(int *)ud == STREAM_UPLOAD) {
        upload_abort((struct upload *)((char *)ud - offsetof(struct upload, kind)));
    } else {
        struct download *d = (struct download *)((char *)ud - offsetof(struct download, kind));
        d->aborted = 1;
        if (!d->busy) {
            rbuf_unref(d->buf);
            conn_release(d->c);
            free(d);
        }
    }
}

/* The complete request of a streamed upload (or one without a body). */
void api_upload(struct api_req *r)
{
    int *kind = http_stream_get(r->c);
    struct upload *up;
    if (!kind || *kind != STREAM_UPLOAD) {
        api_respond_error(r, CD_E_INVALID_FIELD, "the upload has no body");
        return;
    }
    up = (struct upload *)((char *)kind - offsetof(struct upload, kind));
    http_stream_set(r->c, NULL); /* ours until the answer */
    if (up->paused) {            /* reading stays stopped: the request is pending now */
        up->paused = 0;
        r->c->flags &= (uint8_t)~CONN_F_PAUSED;
    }
    if (up->total == 0) {
        up->aborted = 1;
        upload_abort(up);
        api_respond_error(r, CD_E_INVALID_FIELD, "the upload has no body");
        return;
    }
    up->att.size = (int64_t)up->total;
    up->finishing = 1;
    upload_kick(up);
}

/* ---- GET /v1/attachments/{id} ---- */

struct dl_call {
    struct api_call base; /* first */
    int64_t user;
    char id[STORE_ATT_ID_LEN + 1];
    struct store_attachment att;
    int readable;
    char *inm, *range; /* If-None-Match and Range of the request (NULL: absent) */
};

static void dl_cleanup(struct api_call *call)
{
    struct dl_call *dc = (struct dl_call *)call;
    free(dc->inm);
    free(dc->range);
}

/* If-None-Match: "*" or a list of entity tags, one of them ours (weak ones compare too). */
static int etag_match(const char *inm, const char *sha)
{
    size_t n = strlen(sha);
    if (!strcmp(inm, "*")) return 1;
    for (const char *p = inm; (p = strchr(p, '"')) != NULL;) {
        const char *q = strchr(p + 1, '"');
        if (!q) break;
        if ((size_t)(q - p - 1) == n && !memcmp(p + 1, sha, n)) return 1;
        p = q + 1;
    }
    return 0;
}

static void dl_lookup_work(struct api_call *call)
{
    struct dl_call *dc = (struct dl_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    const struct store_ops *ops = call->app->db.ops;
    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    call->status = ops->attachment_get(sc, dc->id, &dc->att);
    if (call->status == CD_OK)
        call->status = ops->attachment_readable(sc, dc->id, dc->user, &dc->readable);
    /* Not allowed reads as absent: ids of other people's files are not confirmed. */
    if (call->status == CD_OK && !dc->readable) call->status = CD_E_NOT_FOUND;
}

static void dl_next(struct conn *c);

static void dl_read_work(uv_work_t *wk)
{
    struct download *d = wk->data;
    struct blob_store *bs = d->app->blobs;
    size_t want = d->end - d->off + 1 > UPLOAD_CHUNK ? UPLOAD_CHUNK : (size_t)(d->end - d->off + 1);
    size_t got = 0;
    d->buf = rbuf_new(want);
    d->status = bs->ops->get(bs, d->id, d->off, d->buf->data, want, &got);
    if (d->status == CD_OK && got != want) d->status = CD_E_IO; /* the blob is shorter: cut */
}

static void dl_read_after(uv_work_t *wk, int status)
{
    struct download *d = wk->data;
    struct conn *c = d->c;
    (void)status;
    d->busy = 0;
    if (d->aborted || !conn_alive(c) || d->status != CD_OK) {
        if (!d->aborted && d->status != CD_OK && conn_alive(c)) {
            log_error("attachment read failed", "\"id\":\"%s\",\"status\":\"%s\"", d->id,
                      cd_status_code(d->status));
            http_stream_set(c, NULL);
            conn_abort(c); /* the head is out: a short body must not look complete */
        }
        rbuf_unref(d->buf);
        conn_release(c);
        free(d);
        return;
    }
    d->off += d->buf->len;
    conn_send(c, d->buf);
    rbuf_unref(d->buf);
    d->buf = NULL;
    if (d->off > d->end) {
        http_stream_set(c, NULL);
        http_respond_end(c);
        conn_release(c);
        free(d);
        return;
    }
    http_on_drain(c, dl_next);
}

static void dl_next(struct conn *c)
{
    int *kind = http_stream_get(c);
    struct download *d;
    if (!kind || *kind != STREAM_DOWNLOAD) return;
    d = (struct download *)((char *)kind - offsetof(struct download, kind));
    if (d->busy) return;
    d->busy = 1;
    d->work.data = d;
    uv_queue_work(&c->io->loop, &d->work, dl_read_work, dl_read_after);
}

static void dl_lookup_after(struct api_call *call)
{
    struct dl_call *dc = (struct dl_call *)call;
    struct conn *c = call->c;
    struct app *app = call->app;
    char hdr[2048], disp[1200], cr[96];
    struct http_response resp = {.status = 200, .cache_control = "private, no-cache"};
    uint64_t start = 0, end = 0, size = (uint64_t)dc->att.size;
    struct download *d;
    int rr = 0, n;

    if (call->status != CD_OK || !conn_alive(c)) {
        api_call_finish(call);
        return;
    }
    attach_disposition(dc->att.name, disp, sizeof(disp));
    n = snprintf(hdr, sizeof(hdr),
                 "ETag: \"%s\"\r\nAccept-Ranges: bytes\r\nContent-Disposition: %s\r\n"
                 "Content-Security-Policy: default-src 'none'; sandbox\r\n",
                 dc->att.sha256, disp);
    if (n < 0 || (size_t)n >= sizeof(hdr)) n = 0;
    if (dc->inm && etag_match(dc->inm, dc->att.sha256)) {
        resp.status = 304;
        resp.head_only = 1;
        resp.extra_headers = hdr;
        metrics_http(&app->metrics, call->route, 304, (net_now_ms() - call->start_ms) * 1000);
        http_respond_full(c, &resp);
        api_call_free(call);
        return;
    }
    if (dc->range) rr = attach_range(dc->range, strlen(dc->range), size, &start, &end);
    if (rr < 0) {
        snprintf(cr, sizeof(cr), "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
        api_send_error(app, c, call->route, call->start_ms, CD_E_RANGE, NULL, cr);
        api_call_free(call);
        return;
    }
    if (rr == 0) {
        start = 0;
        end = size ? size - 1 : 0;
    } else {
        resp.status = 206;
        snprintf(hdr + n, sizeof(hdr) - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n",
                 (unsigned long long)start, (unsigned long long)end, (unsigned long long)size);
    }
    resp.content_type = dc->att.content_type;
    resp.len = size ? end - start + 1 : 0;
    resp.extra_headers = hdr;
    metrics_http(&app->metrics, call->route, resp.status, (net_now_ms() - call->start_ms) * 1000);
    http_respond_begin(c, &resp);
    if (resp.len == 0) {
        http_respond_end(c);
        api_call_free(call);
        return;
    }
    d = xcalloc(1, sizeof(*d));
    d->kind = STREAM_DOWNLOAD;
    d->app = app;
    d->c = c;
    conn_hold(c);
    memcpy(d->id, dc->id, sizeof(d->id));
    d->off = start;
    d->end = end;
    http_stream_set(c, &d->kind);
    api_call_free(call);
    dl_next(c);
}

static char *header_copy(struct api_req *r, const char *name)
{
    struct slice v;
    return http_header(r->http, name, &v) && v.len < 4096 ? xstrndup(v.p, v.len) : NULL;
}

void api_attachment_get(struct api_req *r)
{
    struct dl_call *dc;
    char id[STORE_ATT_ID_LEN + 1];
    if (!attach_id_parse(r->param.p, r->param.len, id)) {
        api_respond_error(r, CD_E_NOT_FOUND, NULL);
        return;
    }
    dc = (struct dl_call *)api_call_new(r, sizeof(*dc));
    dc->user = r->user_id;
    memcpy(dc->id, id, sizeof(id));
    dc->inm = header_copy(r, "if-none-match");
    dc->range = header_copy(r, "range");
    dc->base.cleanup = dl_cleanup;
    dc->base.work_fn = dl_lookup_work;
    dc->base.after_fn = dl_lookup_after;
    api_call_work(&dc->base);
}

/* ---- attachments of a send ---- */

int api_attach_list(json_t *arr, struct chat_attach *out, const char **why)
{
    size_t i;
    json_t *v;

    out->n = 0;
    if (!arr) return 1;
    if (!json_is_array(arr) || json_array_size(arr) > CHAT_ATTACH_MAX) {
        *why = "attachments must be an array of at most 10 attachment ids";
        return 0;
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v) ||
            !attach_id_parse(json_string_value(v), json_string_length(v), out->ids[out->n])) {
            *why = "attachments must hold attachment ids (att_...)";
            return 0;
        }
        for (int k = 0; k < out->n; k++)
            if (!strcmp(out->ids[k], out->ids[out->n])) {
                *why = "an attachment is listed twice";
                return 0;
            }
        out->n++;
    }
    return 1;
}

int api_attach_parse(struct api_req *r, json_t *arr, struct chat_attach *out)
{
    const char *why = NULL;
    if (api_attach_list(arr, out, &why)) return 1;
    api_respond_error(r, CD_E_INVALID_FIELD, why);
    return 0;
}

/* ---- expiry of unreferenced uploads ---- */

struct sweep_job {
    struct store_job job; /* first */
    struct files *f;
    int64_t cutoff;
    char (*ids)[STORE_ATT_ID_LEN + 1];
    int n;
};

struct files {
    struct app *app;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    int stop, job_done, started;
};

static int sweep_collect(void *ud, const char *id)
{
    struct sweep_job *sj = ud;
    if (sj->n < SWEEP_BATCH) snprintf(sj->ids[sj->n++], STORE_ATT_ID_LEN + 1, "%s", id);
    return 0;
}

static int sweep_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct sweep_job *sj = (struct sweep_job *)j;
    sj->n = 0;
    return ops->attachments_expire(sc, sj->cutoff, SWEEP_BATCH, sweep_collect, sj);
}

static void sweep_reset(struct store_job *j)
{
    ((struct sweep_job *)j)->n = 0;
}

static void sweep_done(struct store_job *j)
{
    struct sweep_job *sj = (struct sweep_job *)j;
    uv_mutex_lock(&sj->f->lock);
    sj->f->job_done = 1;
    uv_cond_signal(&sj->f->cond);
    uv_mutex_unlock(&sj->f->lock);
}

/* The sweep thread: every --upload-sweep seconds, delete the rows of uploads older than
 * --upload-ttl that no message references (a writer job, so a send that references one in the
 * same instant is ordered with it), then their blobs. Row first: a crash in between leaves an
 * orphan blob, never a row without its bytes. */
static void sweep_thread(void *arg)
{
    struct files *f = arg;
    struct app *app = f->app;
    struct sweep_job sj;
    char(*ids)[STORE_ATT_ID_LEN + 1] = xcalloc(SWEEP_BATCH, STORE_ATT_ID_LEN + 1);
    uint64_t every_ns =
        (uint64_t)(app->cfg.upload_sweep > 0 ? app->cfg.upload_sweep : 60) * 1000000000ull;

    uv_mutex_lock(&f->lock);
    while (!f->stop) {
        if (uv_cond_timedwait(&f->cond, &f->lock, every_ns) != UV_ETIMEDOUT || f->stop) continue;
        for (;;) {
            memset(&sj, 0, sizeof(sj));
            sj.f = f;
            sj.ids = ids;
            sj.cutoff = clock_unix_ms() - app->cfg.upload_ttl * 1000;
            sj.job.exec = sweep_exec;
            sj.job.done = sweep_done;
            sj.job.reset = sweep_reset;
            f->job_done = 0;
            uv_mutex_unlock(&f->lock);
            store_submit(&app->db, &sj.job);
            uv_mutex_lock(&f->lock);
            while (!f->job_done)
                uv_cond_wait(&f->cond, &f->lock);
            uv_mutex_unlock(&f->lock);
            if (sj.job.status == CD_OK)
                for (int i = 0; i < sj.n; i++) {
                    int rc = app->blobs->ops->del(app->blobs, ids[i]);
                    log_info("attachment expired", "\"id\":\"%s\",\"blob\":\"%s\"", ids[i],
                             cd_status_code(rc));
                }
            uv_mutex_lock(&f->lock);
            if (sj.job.status != CD_OK || sj.n < SWEEP_BATCH || f->stop) break;
        }
    }
    uv_mutex_unlock(&f->lock);
    free(ids);
}

struct files *files_start(struct app *app)
{
    struct files *f = xcalloc(1, sizeof(*f));
    f->app = app;
    uv_mutex_init(&f->lock);
    uv_cond_init(&f->cond);
    if (uv_thread_create(&f->thread, sweep_thread, f) == 0) f->started = 1;
    return f;
}

void files_stop(struct files *f)
{
    if (!f) return;
    uv_mutex_lock(&f->lock);
    f->stop = 1;
    uv_cond_broadcast(&f->cond);
    uv_mutex_unlock(&f->lock);
    if (f->started) uv_thread_join(&f->thread);
    uv_mutex_destroy(&f->lock);
    uv_cond_destroy(&f->cond);
    free(f);
}
