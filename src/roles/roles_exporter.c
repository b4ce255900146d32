/* roles_exporter.c - the Kafka exporter (see roles_exporter.h). The consumer thread produces a
 * batch, then serves delivery reports (rd_kafka_flush) until every message of it is reported;
 * the reports are counted per batch through the message opaque. */
#include "roles/roles_exporter.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/outbox.h"
#include "roles/roles_db.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/status.h"

struct roles_exporter {
    struct store_db *db;
    char *brokers, *topic;
    int64_t timeout_ms;
    rd_kafka_t *rk;
    struct outbox_consumer *oc;
    atomic_int stopping; /* set by roles_exporter_stop: a batch waiting for reports gives up */
};

/* One batch's outcome, filled by delivery reports (on the consumer thread, inside flush). */
struct batch_ack {
    size_t ok, failed;
    rd_kafka_resp_err_t err; /* the first failure */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct batch_ack *b = m->_private;
    (void)rk;
    (void)opaque;
    if (!b) return;
    if (m->err) {
        if (!b->failed) b->err = m->err;
        b->failed++;
    } else {
        b->ok++;
    }
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
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%" PRId64, ex->timeout_ms);
    const char *kv[][2] = {
        {"bootstrap.servers", ex->brokers},
        {"enable.idempotence", "true"}, /* acks=all, ordered retries, no producer duplicates */
        {"linger.ms", "5"},
        {"compression.type", "lz4"},
        {"client.id", "chatd-exporter"},
        {"message.timeout.ms", timeout}, /* a report (failed) arrives by then at the latest */
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

static int handle(void *ud, const struct store_outbox_event *evs, size_t n)
{
    struct roles_exporter *ex = ud;
    struct batch_ack b = {0};
    char fatal[256];
    size_t sent = 0;

    if (!ex->rk && !(ex->rk = producer_new(ex))) return CD_E_INTERNAL;
    for (size_t i = 0; i < n; i++) {
        const struct store_outbox_event *e = &evs[i];
        struct jsonw w;
        char key[24];
        int klen = snprintf(key, sizeof(key), "%" PRId64, e->room_id);
        rd_kafka_resp_err_t err;
        jsonw_init(&w, e->json_len + 128);
        outbox_event_json(&w, e); /* the envelope every sink writes */
        for (;;) {
            err = rd_kafka_producev(ex->rk, RD_KAFKA_V_TOPIC(ex->topic),
                                    RD_KAFKA_V_KEY(key, (size_t)klen),
                                    RD_KAFKA_V_VALUE((void *)jsonw_text(&w), jsonw_text_len(&w)),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADER("chatd-event-id", e->id, (ssize_t)e->id_len),
                                    RD_KAFKA_V_HEADER("chatd-type", e->type, (ssize_t)e->type_len),
                                    RD_KAFKA_V_OPAQUE(&b), RD_KAFKA_V_END);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(ex->rk, 50); /* room frees as reports arrive */
        }
        jsonw_free(&w);
        if (err) {
            log_warn("exporter: produce failed", "\"error\":\"%s\"", rd_kafka_err2str(err));
            break;
        }
        sent++;
    }
    /* Every produced message gets exactly one report (success, or failure at the latest after
     * message.timeout.ms): wait for them all, b lives on this stack until then. */
    while (b.ok + b.failed < sent) {
        rd_kafka_flush(ex->rk, 200);
        /* Stopping with the brokers away: purge, so the reports (failed) come now instead of
         * after message.timeout.ms; the batch is then handed again after the restart. */
        if (atomic_load(&ex->stopping))
            rd_kafka_purge(ex->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    }
    if (rd_kafka_fatal_error(ex->rk, fatal, sizeof(fatal))) {
        /* The idempotent producer cannot go on (e.g. a sequence gap): a new one starts over. */
        log_error("exporter: fatal producer error, recreating it", "\"error\":\"%s\"", fatal);
        rd_kafka_destroy(ex->rk);
        ex->rk = NULL;
        b.failed += sent - b.ok - b.failed;
    }
    if (sent < n || b.failed) {
        if (b.failed)
            log_warn("exporter: batch not delivered, retried",
                     "\"events\":%zu,\"failed\":%zu,\"error\":\"%s\"", n, b.failed,
                     rd_kafka_err2str(b.err));
        return CD_E_IO;
    }
    return CD_OK;
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
    if (ex->rk) {
        rd_kafka_purge(ex->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(ex->rk, 1000); /* serves the purged messages' reports */
        rd_kafka_destroy(ex->rk);
    }
    free(ex->brokers);
    free(ex->topic);
    free(ex);
}
