/* roles_exporter.c - the Kafka exporter (see roles_exporter.h). The consumer thread produces a
 * batch, then serves delivery reports (rd_kafka_flush) until every message of it is reported;
 * each report lands in its message's slot through the message opaque.
 *
 * Order across failures. The producer is idempotent (the broker rejects a partition's request
 * whose sequence does not follow the last one it wrote, and librdkafka retries in order) with
 * enable.gapless.guarantee=true: a permanent failure of one request, which would otherwise let
 * librdkafka bump the epoch and carry on with the later messages of that partition (a gap, and
 * the failed message stored after them when it is produced again), is a fatal error that stops
 * the producer instead. The guarantee does not cover message.timeout.ms expiries, so there is
 * none (0: infinite): the batch's deadline (timeout_ms) is enforced here by purging what is
 * queued and in flight. After any failed report the handler gives the outbox the prefix of
 * events that were delivered (*taken), destroys the producer and the next batch starts a new
 * one from the first undelivered event: what a purged in-flight request did write comes again
 * as a duplicate after it, never a later event before an earlier one. */
#include "roles/roles_exporter.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "outbox/outbox.h"
#include "roles/roles_db.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

struct roles_exporter {
    struct store_db *db;
    char *brokers, *topic;
    int64_t timeout_ms;
    rd_kafka_t *rk;
    struct outbox_consumer *oc;
    atomic_int stopping; /* set by roles_exporter_stop: a batch waiting for reports gives up */
};

/* One message's outcome, filled by its delivery report (consumer thread, inside flush). */
struct ex_slot {
    size_t *reported;        /* the batch's count of reports */
    int state;               /* 0 no report yet, 1 delivered, -1 failed */
    rd_kafka_resp_err_t err; /* failed: why */
};

static struct {
    _Atomic uint64_t produced, failures, restarts;
} stats; /* one exporter per process */
static atomic_int stats_running;

int roles_exporter_stats(struct roles_exporter_stats *out)
{
    out->produced = atomic_load_explicit(&stats.produced, memory_order_relaxed);
    out->failures = atomic_load_explicit(&stats.failures, memory_order_relaxed);
    out->restarts = atomic_load_explicit(&stats.restarts, memory_order_relaxed);
    return atomic_load(&stats_running);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct ex_slot *sl = m->_private;
    (void)rk;
    (void)opaque;
    if (!sl) return;
    sl->state = m->err ? -1 : 1;
    sl->err = m->err;
    (*sl->reported)++;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        log_error("kafka", "\"facility\":\"%s\",\"message\":\"%s\"", fac, buf);
    else if (level <= 4)
        log_warn("kafka", "\"facility\":\"%s\",\"message\":\"%s\"", fac, buf);
}

static rd_kafka_t *producer_new(const struct roles_exporter *ex)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    const char *kv[][2] = {
        {"bootstrap.servers", ex->brokers},
        {"enable.idempotence", "true"}, /* acks=all, ordered retries, no producer duplicates */
        /* a failed request is fatal instead of a gap the later messages would jump over */
        {"enable.gapless.guarantee", "true"},
        /* no expiry (gapless does not cover it): the handler purges at its own deadline */
        {"message.timeout.ms", "0"},
        {"linger.ms", "5"},
        {"compression.type", "lz4"},
        {"client.id", "chatd-exporter"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
            log_error("exporter: bad kafka setting", "\"name\":\"%s\",\"error\":\"%s\"", kv[i][0],
                      err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) log_error("exporter: cannot create the producer", "\"error\":\"%s\"", err);
    return rk;
}

/* Purges what the producer still holds and destroys it (serving the purged reports first). */
static void producer_drop(rd_kafka_t *rk)
{
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 1000);
    rd_kafka_destroy(rk);
}

static int handle(void *ud, const struct store_outbox_event *evs, size_t n, size_t *taken)
{
    struct roles_exporter *ex = ud;
    struct ex_slot *slots;
    rd_kafka_resp_err_t first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    char fatal[256];
    size_t sent = 0, reported = 0, ok = 0, failed = 0;
    uint64_t deadline;
    int purged = 0, is_fatal;

    if (!ex->rk && !(ex->rk = producer_new(ex))) return CD_E_INTERNAL;
    slots = xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < n; i++) {
        const struct store_outbox_event *e = &evs[i];
        struct jsonw w;
        char key[24];
        int klen = snprintf(key, sizeof(key), "%" PRId64, e->room_id);
        rd_kafka_resp_err_t err;
        slots[i].reported = &reported;
        jsonw_init(&w, e->json_len + 128);
        outbox_event_json(&w, e); /* the envelope every sink writes */
        for (;;) {
            err = rd_kafka_producev(ex->rk, RD_KAFKA_V_TOPIC(ex->topic),
                                    RD_KAFKA_V_KEY(key, (size_t)klen),
                                    RD_KAFKA_V_VALUE((void *)jsonw_text(&w), jsonw_text_len(&w)),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADER("chatd-event-id", e->id, (ssize_t)e->id_len),
                                    RD_KAFKA_V_HEADER("chatd-type", e->type, (ssize_t)e->type_len),
                                    RD_KAFKA_V_OPAQUE(&slots[i]), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(ex->rk, 50); /* room frees as reports arrive */
        }
        jsonw_free(&w);
        if (err) {
            log_warn("exporter: produce failed", "\"error\":\"%s\"", rd_kafka_err2str(err));
            first_err = err;
            break;
        }
        sent++;
    }
    /* Every produced message gets exactly one report: wait for them all (slots lives until
     * then). At the deadline, or when stopping, purge: the reports (failed) come at once. */
    deadline = uv_hrtime() + (uint64_t)ex->timeout_ms * 1000000u;
    while (reported < sent) {
        rd_kafka_flush(ex->rk, 200);
        if (!purged && reported < sent && (atomic_load(&ex->stopping) || uv_hrtime() >= deadline)) {
            rd_kafka_purge(ex->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = 1;
        }
    }
    for (size_t i = 0; i < sent; i++) {
        if (slots[i].state == 1) {
            atomic_fetch_add_explicit(&stats.produced, 1, memory_order_relaxed);
            if (!failed) ok++;
        } else {
            atomic_fetch_add_explicit(&stats.failures, 1, memory_order_relaxed);
            if (!failed++ && !first_err) first_err = slots[i].err;
        }
    }
    free(slots);
    *taken = ok;
    if ((is_fatal = rd_kafka_fatal_error(ex->rk, fatal, sizeof(fatal)) != 0))
        log_error("exporter: fatal producer error", "\"error\":\"%s\"", fatal);
    if (failed || purged || is_fatal) {
        /* Nothing of this producer may be written after the failure: a new one starts from
         * the first event not delivered. */
        producer_drop(ex->rk);
        ex->rk = NULL;
        if (!atomic_load(&ex->stopping))
            atomic_fetch_add_explicit(&stats.restarts, 1, memory_order_relaxed);
    }
    if (ok == n) return CD_OK;
    log_warn("exporter: batch not delivered, the rest retried",
             "\"events\":%zu,\"taken\":%zu,\"failed\":%zu,\"error\":\"%s\"", n, ok, failed,
             rd_kafka_err2str(first_err));
    return CD_E_IO;
}

int roles_exporter_start(struct store_db *db, const struct roles_exporter_cfg *cfg,
                         struct roles_exporter **out)
{
    struct roles_exporter *ex = calloc(1, sizeof(*ex));
    int rc;
    *out = NULL;
    if (!ex) return CD_E_NOMEM;
    ex->db = db;
    ex->brokers = strdup(cfg->brokers);
    ex->topic = strdup(cfg->topic);
    ex->timeout_ms = cfg->timeout_ms;
    if (!ex->brokers || !ex->topic) {
        rc = CD_E_NOMEM;
        goto fail;
    }
    if (!(ex->rk = producer_new(ex))) {
        rc = CD_E_INVALID_FIELD;
        goto fail;
    }
    rc = roles_consume(db, "exporter", handle, ex, cfg->batch, (int)cfg->poll_ms, &ex->oc);
    if (rc != CD_OK) goto fail;
    log_info("exporter started", "\"brokers\":\"%s\",\"topic\":\"%s\"", ex->brokers, ex->topic);
    atomic_store(&stats_running, 1);
    *out = ex;
    return CD_OK;
fail:
    if (ex->rk) rd_kafka_destroy(ex->rk);
    free(ex->brokers);
    free(ex->topic);
    free(ex);
    return rc;
}

void roles_exporter_stop(struct roles_exporter *ex)
{
    if (!ex) return;
    atomic_store(&ex->stopping, 1);
    outbox_consumer_stop(ex->oc);
    if (ex->rk) producer_drop(ex->rk);
    atomic_store(&stats_running, 0);
    free(ex->brokers);
    free(ex->topic);
    free(ex);
}
