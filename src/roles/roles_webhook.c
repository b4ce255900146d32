/* roles_webhook.c - the webhook delivery engine (see roles_webhook.h). One worker thread, one
 * reused curl handle (keep-alive per endpoint), requests one at a time: deliveries are rare next
 * to messages (the notifier coalesces, endpoints filter by type), and a slow endpoint only
 * delays, never loses, since every row is in the store. */
#include "roles/roles_webhook.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outbox/outbox.h"
#include "roles/roles_db.h"
#include "util/jsonw.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/status.h"

/* Rows claimed at a time: each is leased for the attempts before it plus its own, so a worker
 * that dies leaves at most BATCH_MAX rows waiting for their leases (BATCH_MAX + 1 timeouts). */
#define BATCH_MAX       8
#define UPKEEP_MAX_MS   15000 /* the gauges are at most this old; delivered rows pruned as often */
#define UPKEEP_MAX_JOBS 20    /* pruning jobs per pass (10,000 rows) */

struct pending {
    int64_t id, endpoint_id;
    char event_id[STORE_EVENT_ID_MAX + 1];
    char *body;
    size_t len;
    int attempts;
    int claimed; /* this worker holds the row's lease */
};

struct batch {
    struct pending rows[BATCH_MAX];
    int n;
};

struct roles_webhook {
    struct store_db *db;
    struct roles_webhook_cfg cfg; /* strings owned (copies) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicked;      /* under mu */
    atomic_int stop; /* read by curl's progress callback */
    CURL *curl;
    struct outbox_consumer *feed; /* NULL when not started */
    int feed_batch, feed_poll_ms; /* > 0 once roles_webhook_feed_start asked for the feed */
};

static _Atomic uint64_t stats[ROLES_STAT__N];

void roles_stat_add(enum roles_stat s, uint64_t n)
{
    atomic_fetch_add_explicit(&stats[s], n, memory_order_relaxed);
}

void roles_stat_set(enum roles_stat s, uint64_t v)
{
    atomic_store_explicit(&stats[s], v, memory_order_relaxed);
}

uint64_t roles_stat_get(enum roles_stat s)
{
    return atomic_load_explicit(&stats[s], memory_order_relaxed);
}

static int any_row(void *ud, const struct store_webhook *w);
static int start_feed(struct roles_webhook *wh);

void roles_webhook_sign(const char *secret, int64_t t, const char *body, size_t len,
                        char out[ROLES_SIG_MAX])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[24], hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    int n = snprintf(ts, sizeof(ts), "%" PRId64 ".", t);
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    snprintf(out, ROLES_SIG_MAX, "t=%" PRId64 ",v1=%s", t, hex);
}

int64_t roles_webhook_backoff(const struct roles_webhook_cfg *cfg, int attempts, double r)
{
    int64_t d = cfg->retry_base_ms;
    for (int i = 1; i < attempts && d < cfg->retry_max_ms; i++)
        d *= 2;
    if (d > cfg->retry_max_ms) d = cfg->retry_max_ms;
    return (int64_t)((double)d * (0.5 + r / 2));
}

int roles_webhook_type_match(const char *filter, const char *type, size_t type_len)
{
    const char *p = filter;
    if (!filter || !*filter) return 1;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if ((n == 1 && *p == '*') || (n == type_len && !memcmp(p, type, n))) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

struct targets {
    const char *type;
    size_t type_len;
    int64_t ts;
    void (*cb)(void *ud, int64_t endpoint_id);
    void *ud;
};

static int target_row(void *ud, const struct store_webhook *w)
{
    struct targets *t = ud;
    /* An endpoint receives the events committed from its registration on. */
    if (w->kind == WEBHOOK_EVENTS && w->created_at <= t->ts &&
        roles_webhook_type_match(w->types, t->type, t->type_len))
        t->cb(t->ud, w->id);
    return 0;
}

int roles_webhook_targets(const struct store_ops *ops, struct store_conn *c,
                          const struct roles_webhook_cfg *cfg, const char *type, size_t type_len,
                          int64_t ts, void (*cb)(void *ud, int64_t endpoint_id), void *ud)
{
    struct targets t = {type, type_len, ts, cb, ud};
    if (cfg->url && *cfg->url && roles_webhook_type_match(cfg->types, type, type_len))
        cb(ud, ROLES_WEBHOOK_DEFAULT_ID);
    return ops->webhooks_list(c, target_row, &t);
}

static int collect(void *ud, const struct store_delivery *d)
{
    struct batch *b = ud;
    struct pending *p = &b->rows[b->n];
    p->body = malloc(d->body_len + 1);
    if (!p->body) return 1;
    memcpy(p->body, d->body, d->body_len);
    p->body[d->body_len] = 0;
    p->len = d->body_len;
    p->id = d->id;
    p->endpoint_id = d->endpoint_id;
    p->attempts = d->attempts;
    snprintf(p->event_id, sizeof(p->event_id), "%s", d->event_id);
    return ++b->n == BATCH_MAX;
}

struct update {
    int64_t id, next_at;
    int state, attempts;
    const char *error;
};

static int write_update(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct update *u = ud;
    return ops->delivery_update(c, u->id, u->state, u->attempts, u->next_at, u->error);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static int abort_on_stop(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct roles_webhook *wh = ud;
    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&wh->stop) ? 1 : 0;
}

/* POST one delivery. Returns CD_OK on a 2xx, CD_AGAIN when stopping (not an attempt), else an
 * error with the reason in err. */
static int post(struct roles_webhook *wh, const char *url, const char *secret,
                const struct pending *p, char *err, size_t errcap)
{
    char sig[ROLES_SIG_MAX], h_sig[ROLES_SIG_MAX + 32], h_id[STORE_EVENT_ID_MAX + 32], h_n[48];
    struct curl_slist *hdr = NULL;
    long code = 0;
    CURLcode cr;

    roles_webhook_sign(secret ? secret : "", clock_unix_ms() / 1000, p->body, p->len, sig);
    snprintf(h_sig, sizeof(h_sig), "X-Chatd-Signature: %s", sig);
    snprintf(h_id, sizeof(h_id), "X-Chatd-Event-Id: %s", p->event_id);
    snprintf(h_n, sizeof(h_n), "X-Chatd-Attempt: %d", p->attempts + 1);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    hdr = curl_slist_append(hdr, h_sig);
    hdr = curl_slist_append(hdr, h_id);
    hdr = curl_slist_append(hdr, h_n);
    if (!hdr) {
        snprintf(err, errcap, "out of memory");
        return CD_E_NOMEM;
    }
    CURL *c = wh->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "chatd-webhooks/" CHATD_VERSION);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)wh->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)wh->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, wh);
    cr = curl_easy_perform(c);
    curl_slist_free_all(hdr);
    if (cr == CURLE_ABORTED_BY_CALLBACK) return CD_AGAIN;
    if (cr != CURLE_OK) {
        snprintf(err, errcap, "%s", curl_easy_strerror(cr));
        return CD_E_IO;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) return CD_OK;
    snprintf(err, errcap, "HTTP %ld", code);
    return CD_E_IO;
}

/* One delivery attempt and its durable outcome. Returns nonzero when the outcome could not be
 * recorded (the store is failing: the caller backs off). */
static int deliver(struct roles_webhook *wh, struct store_conn *rc, struct pending *p)
{
    const struct store_ops *ops = wh->db->ops;
    struct store_webhook w;
    const char *url = NULL, *secret = NULL;
    char err[STORE_DELIVERY_ERROR_MAX + 1] = "";
    struct update u = {.id = p->id, .attempts = p->attempts + 1};
    int rc_post;

    if (p->endpoint_id == ROLES_WEBHOOK_DEFAULT_ID) {
        url = wh->cfg.url;
        secret = wh->cfg.secret;
    } else if (p->endpoint_id == ROLES_WEBHOOK_NOTIFY_ID) {
        url = wh->cfg.notify_url;
        secret = wh->cfg.secret;
    } else if (ops->webhook_get(rc, p->endpoint_id, &w) == CD_OK) {
        url = w.url;
        secret = w.secret;
    }
    if (!url || !*url) {
        roles_stat_add(ROLES_WH_DEAD, 1);
        u.state = DELIVERY_DEAD;
        u.attempts = p->attempts;
        u.error = "the endpoint no longer exists";
        p->claimed = 0;
        log_warn("webhook dead", "\"delivery\":%" PRId64 ",\"event_id\":\"%s\",\"error\":\"%s\"",
                 p->id, p->event_id, u.error);
        return roles_write(wh->db, write_update, &u) != CD_OK;
    }
    rc_post = post(wh, url, secret, p, err, sizeof(err));
    if (rc_post == CD_AGAIN) return 0; /* stopping: the row is released by run() */
    p->claimed = 0;
    roles_stat_add(ROLES_WH_ATTEMPTS, 1);
    roles_stat_add(rc_post == CD_OK ? ROLES_WH_SUCCEEDED : ROLES_WH_FAILED, 1);
    if (rc_post == CD_OK) {
        u.state = DELIVERY_DONE;
        u.next_at = clock_unix_ms(); /* the delivery time: the retention counts from here */
    } else if (u.attempts >= wh->cfg.max_attempts) {
        roles_stat_add(ROLES_WH_DEAD, 1);
        u.state = DELIVERY_DEAD;
        u.error = err;
        u.next_at = clock_unix_ms();
        log_warn("webhook dead",
                 "\"delivery\":%" PRId64 ",\"event_id\":\"%s\",\"attempts\":%d,\"error\":\"%s\"",
                 p->id, p->event_id, u.attempts, err);
    } else {
        u.state = DELIVERY_PENDING;
        u.error = err;
        u.next_at = clock_unix_ms() +
                    roles_webhook_backoff(&wh->cfg, u.attempts, randombytes_uniform(1000000) / 1e6);
        log_info("webhook retry",
                 "\"delivery\":%" PRId64 ",\"event_id\":\"%s\",\"attempts\":%d,\"error\":\"%s\"",
                 p->id, p->event_id, u.attempts, err);
    }
    return roles_write(wh->db, write_update, &u) != CD_OK;
}

struct claim {
    struct batch *b;
    int64_t now, timeout_ms;
};

/* Lease every row of the batch (one writer job): row i until now + (i + 2) timeouts, time for
 * the attempts before it and its own. Rows another worker took meanwhile are skipped. */
static int claim_rows(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct claim *cl = ud;
    for (int i = 0; i < cl->b->n; i++) {
        int rc = ops->delivery_claim(c, cl->b->rows[i].id, cl->now,
                                     cl->now + (int64_t)(i + 2) * cl->timeout_ms);
        if (rc != CD_OK && rc != CD_E_NOT_FOUND) return rc;
        cl->b->rows[i].claimed = rc == CD_OK;
    }
    return CD_OK;
}

/* Rows still claimed (not attempted: the engine is stopping, or the store failed) are due again
 * now: a claim with no due limit sets next_at back. */
static int release_rows(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct claim *cl = ud;
    for (int i = 0; i < cl->b->n; i++) {
        int rc;
        if (!cl->b->rows[i].claimed) continue;
        rc = ops->delivery_claim(c, cl->b->rows[i].id, INT64_MAX, cl->now);
        if (rc != CD_OK && rc != CD_E_NOT_FOUND) return rc;
        cl->b->rows[i].claimed = 0;
    }
    return CD_OK;
}

static void wait_ms(struct roles_webhook *wh, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&wh->mu);
    while (!wh->kicked && !atomic_load(&wh->stop))
        if (pthread_cond_timedwait(&wh->cv, &wh->mu, &ts)) break;
    wh->kicked = 0;
    pthread_mutex_unlock(&wh->mu);
}

struct prune {
    int64_t before;
    int64_t n;
};

static int prune_rows(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct prune *pr = ud;
    return ops->deliveries_prune(c, pr->before, ROLES_PRUNE_BATCH, &pr->n);
}

/* Upkeep, every few seconds (sooner with a short retention): delete delivered rows older than
 * the retention, ROLES_PRUNE_BATCH per writer job (other jobs run between them), then count
 * the rows for the gauges. */
static void upkeep(struct roles_webhook *wh, struct store_conn *c)
{
    const struct store_ops *ops = wh->db->ops;
    struct prune pr = {.before = clock_unix_ms() - wh->cfg.retention_ms};
    static const struct {
        int state;
        enum roles_stat gauge;
    } counts[] = {{DELIVERY_PENDING, ROLES_WH_PENDING_ROWS},
                  {DELIVERY_DEAD, ROLES_WH_DEAD_ROWS},
                  {DELIVERY_DONE, ROLES_WH_DONE_ROWS}};
    int ok = 1, jobs = 0;

    /* At most UPKEEP_MAX_JOBS per pass: a backlog (a first run with a shorter retention) is
     * worked off over several passes, deliveries going on between them. */
    do {
        pr.n = 0;
        if (roles_write(wh->db, prune_rows, &pr) != CD_OK) break;
        roles_stat_add(ROLES_WH_PRUNED, (uint64_t)pr.n);
    } while (pr.n == ROLES_PRUNE_BATCH && ++jobs < UPKEEP_MAX_JOBS && !atomic_load(&wh->stop));
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]) && ok; i++) {
        int64_t n = 0;
        ok = c && ops->deliveries_count(c, counts[i].state, &n) == CD_OK;
        if (ok) roles_stat_set(counts[i].gauge, (uint64_t)n);
    }
    if (ok) roles_stat_set(ROLES_WH_COUNTED, 1);
}

static void *run(void *arg)
{
    struct roles_webhook *wh = arg;
    const struct store_ops *ops = wh->db->ops;
    /* Upkeep every quarter of the retention, at least every UPKEEP_MAX_MS, at most every 100 ms */
    int64_t every = wh->cfg.retention_ms / 4, next_upkeep = 0;
    if (every > UPKEEP_MAX_MS) every = UPKEEP_MAX_MS;
    if (every < 100) every = 100;

    while (!atomic_load(&wh->stop)) {
        struct store_conn *c = store_reader(wh->db);
        if (c && !wh->feed && wh->feed_batch > 0) {
            int any = 0;
            if (ops->webhooks_list(c, any_row, &any) == CD_OK && any && start_feed(wh) != CD_OK)
                log_warn("webhooks: the feed did not start, retried", "\"consumer\":\"webhooks\"");
        }
        struct batch b = {.n = 0};
        struct claim cl = {.b = &b, .now = clock_unix_ms(), .timeout_ms = wh->cfg.timeout_ms};
        int failing = 0, i;
        if (!c ||
            ops->deliveries_list(c, DELIVERY_PENDING, cl.now, 0, BATCH_MAX, collect, &b) != CD_OK) {
            failing = 1;
        }
        if (!failing && b.n && roles_write(wh->db, claim_rows, &cl) != CD_OK) failing = 1;
        for (i = 0; i < b.n && !failing && !atomic_load(&wh->stop); i++)
            if (b.rows[i].claimed) failing = deliver(wh, c, &b.rows[i]);
        for (i = 0; i < b.n && !b.rows[i].claimed; i++)
            ;
        if (i < b.n) { /* stopping or failing: hand back the leases not used */
            cl.now = clock_unix_ms();
            roles_write(wh->db, release_rows, &cl);
        }
        for (i = 0; i < b.n; i++)
            free(b.rows[i].body);
        if (!failing && clock_unix_ms() >= next_upkeep) {
            upkeep(wh, c);
            next_upkeep = clock_unix_ms() + every;
        }
        if (failing)
            wait_ms(wh, 1000);
        else if (b.n < BATCH_MAX)
            wait_ms(wh, wh->cfg.poll_ms);
    }
    return NULL;
}

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static void free_cfg(struct roles_webhook_cfg *c)
{
    free((char *)c->url);
    free((char *)c->secret);
    free((char *)c->types);
    free((char *)c->notify_url);
}

int roles_webhook_start(struct store_db *db, const struct roles_webhook_cfg *cfg,
                        struct roles_webhook **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    struct roles_webhook *wh = calloc(1, sizeof(*wh));
    *out = NULL;
    if (!wh) return CD_E_NOMEM;
    wh->db = db;
    wh->cfg = *cfg;
    wh->cfg.url = dup_or_null(cfg->url);
    wh->cfg.secret = dup_or_null(cfg->secret);
    wh->cfg.types = dup_or_null(cfg->types);
    wh->cfg.notify_url = dup_or_null(cfg->notify_url);
    if (wh->cfg.max_attempts < 1) wh->cfg.max_attempts = 1;
    if (wh->cfg.poll_ms < 10) wh->cfg.poll_ms = 10;
    if (wh->cfg.retention_ms < 1000) wh->cfg.retention_ms = 1000;
    pthread_once(&once, curl_init_once);
    wh->curl = curl_easy_init();
    pthread_mutex_init(&wh->mu, NULL);
    pthread_cond_init(&wh->cv, NULL);
    if (!wh->curl || pthread_create(&wh->thread, NULL, run, wh)) {
        log_error("webhooks: cannot start", "\"curl\":%s", wh->curl ? "true" : "false");
        if (wh->curl) curl_easy_cleanup(wh->curl);
        free_cfg(&wh->cfg);
        free(wh);
        return CD_E_INTERNAL;
    }
    *out = wh;
    return CD_OK;
}

void roles_webhook_kick(struct roles_webhook *wh)
{
    if (!wh) return;
    pthread_mutex_lock(&wh->mu);
    wh->kicked = 1;
    pthread_cond_signal(&wh->cv);
    pthread_mutex_unlock(&wh->mu);
}

/* ---- the feed: outbox events to delivery rows ---- */

struct feed {
    struct roles_webhook *wh;
    const struct store_outbox_event *evs;
    size_t n;
    const struct store_outbox_event *ev; /* the event being enqueued */
    const struct store_ops *ops;
    struct store_conn *c;
    struct jsonw body;
    int rc;
    size_t queued;
};

static void feed_target(void *ud, int64_t endpoint_id)
{
    struct feed *f = ud;
    struct store_delivery d = {.endpoint_id = endpoint_id,
                               .body = jsonw_text(&f->body),
                               .body_len = jsonw_text_len(&f->body)};
    int inserted = 0, rc;
    if (f->rc != CD_OK) return;
    snprintf(d.event_id, sizeof(d.event_id), "%.*s", (int)f->ev->id_len, f->ev->id);
    d.created_at = d.next_at = clock_unix_ms();
    rc = f->ops->delivery_insert(f->c, &d, &inserted);
    if (rc != CD_OK) f->rc = rc;
    f->queued += (size_t)inserted;
}

static int any_row(void *ud, const struct store_webhook *w)
{
    (void)w;
    *(int *)ud = 1;
    return 1;
}

static int feed_write(const struct store_ops *ops, struct store_conn *c, void *ud)
{
    struct feed *f = ud;
    f->ops = ops;
    f->c = c;
    f->rc = CD_OK;
    f->queued = 0;
    for (size_t i = 0; i < f->n && f->rc == CD_OK; i++) {
        int rc;
        f->ev = &f->evs[i];
        jsonw_free(&f->body);
        jsonw_init(&f->body, f->ev->json_len + 128);
        outbox_event_json(&f->body, f->ev);
        rc = roles_webhook_targets(ops, c, &f->wh->cfg, f->ev->type, f->ev->type_len, f->ev->ts,
                                   feed_target, f);
        if (rc != CD_OK) f->rc = rc;
    }
    return f->rc;
}

static void count_target(void *ud, int64_t endpoint_id)
{
    (void)endpoint_id;
    (*(size_t *)ud)++;
}

static int feed_handle(void *ud, const struct store_outbox_event *evs, size_t n, size_t *taken)
{
    struct feed f = {.wh = ud, .evs = evs, .n = n};
    struct store_conn *c = store_reader(f.wh->db);
    size_t targets = 0;
    int rc = CD_OK;
    (void)taken; /* all or nothing: one writer job queues the batch's deliveries */
    if (!c) return CD_E_IO;
    /* Reads first: a batch nobody receives (no endpoint, or none registered yet when these
     * events were committed, or none of their types) costs no writer job. */
    for (size_t i = 0; i < n && !targets && rc == CD_OK; i++)
        rc = roles_webhook_targets(f.wh->db->ops, c, &f.wh->cfg, evs[i].type, evs[i].type_len,
                                   evs[i].ts, count_target, &targets);
    if (rc != CD_OK || !targets) return rc;
    jsonw_init(&f.body, 256);
    rc = roles_write(f.wh->db, feed_write, &f);
    jsonw_free(&f.body);
    if (rc == CD_OK && f.queued) roles_webhook_kick(f.wh);
    return rc;
}

static int start_feed(struct roles_webhook *wh)
{
    return roles_consume(wh->db, "webhooks", feed_handle, wh, wh->feed_batch, wh->feed_poll_ms,
                         &wh->feed);
}

int roles_webhook_feed_start(struct roles_webhook *wh, int batch, int poll_ms)
{
    wh->feed_batch = batch > 0 ? batch : 256;
    wh->feed_poll_ms = poll_ms;
    /* With the flag endpoint the feed runs from the start; otherwise the engine starts it when
     * the first endpoint is registered (until then the outbox costs nothing here). */
    return wh->cfg.url ? start_feed(wh) : CD_OK;
}

void roles_webhook_stop(struct roles_webhook *wh)
{
    if (!wh) return;
    atomic_store(&wh->stop, 1);
    roles_webhook_kick(wh);
    pthread_join(wh->thread, NULL); /* it may have started the feed: stopped after it */
    outbox_consumer_stop(wh->feed);
    curl_easy_cleanup(wh->curl);
    pthread_cond_destroy(&wh->cv);
    pthread_mutex_destroy(&wh->mu);
    free_cfg(&wh->cfg);
    free(wh);
}
