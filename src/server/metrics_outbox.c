/* metrics_outbox.c - /metrics series of the outbox consumers (position, head, lag, batches) and
 * of the sinks that keep order (relay: JetStream, exporter: Kafka). Rendered from snapshots:
 * nothing here runs on a request path other than /metrics itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/outbox.h"
#include "roles/roles_exporter.h"
#include "roles/roles_relay.h"
#include "server/metrics.h"
#include "util/rbuf.h"

#define MAX_CONSUMERS 16

struct snap {
    struct outbox_consumer_stats st[MAX_CONSUMERS];
    char names[MAX_CONSUMERS][OUTBOX_NAME_MAX + 1];
    int n;
};

static void collect(void *ud, const struct outbox_consumer_stats *st)
{
    struct snap *s = ud;
    if (s->n == MAX_CONSUMERS) return;
    s->st[s->n] = *st;
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s", st->name); /* [A-Za-z0-9_.-]: no escape */
    s->st[s->n].name = s->names[s->n];
    s->n++;
}

enum field { F_POS, F_HEAD, F_LAG, F_HANDLED, F_REFUSED };

static void family(char **buf, size_t *len, size_t *cap, const struct snap *s, const char *name,
                   const char *type, const char *help, enum field f)
{
    metrics_printf(buf, len, cap, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (int i = 0; i < s->n; i++) {
        const struct outbox_consumer_stats *st = &s->st[i];
        long long v = 0;
        switch (f) {
        case F_POS:
            v = st->pos;
            break;
        case F_HEAD:
            v = st->head;
            break;
        case F_LAG:
            v = st->head - st->pos;
            break;
        case F_HANDLED:
            v = (long long)st->batches_handled;
            break;
        case F_REFUSED:
            v = (long long)st->batches_refused;
            break;
        }
        metrics_printf(buf, len, cap, "%s{consumer=\"%s\"} %lld\n", name, st->name, v);
    }
}

#define COUNTER(name, help, v)                                                                     \
    metrics_printf(buf, len, cap,                                                                  \
                   "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",           \
                   (unsigned long long)(v))

void metrics_render_outbox(char **buf, size_t *len, size_t *cap)
{
    struct snap *s = xcalloc(1, sizeof(*s));
    struct roles_relay_stats rs;
    struct roles_exporter_stats es;

    outbox_consumer_stats_each(collect, s);
    if (s->n) {
        family(buf, len, cap, s, "chatd_outbox_consumer_position", "gauge",
               "Outbox position after the last event the consumer took (saved).", F_POS);
        family(buf, len, cap, s, "chatd_outbox_head_position", "gauge",
               "Last outbox position, as the consumer last read it.", F_HEAD);
        family(buf, len, cap, s, "chatd_outbox_consumer_lag_events", "gauge",
               "Events committed and not yet taken by the consumer (head - position).", F_LAG);
        family(buf, len, cap, s, "chatd_outbox_batches_handled_total", "counter",
               "Batches the consumer's handler took whole.", F_HANDLED);
        family(buf, len, cap, s, "chatd_outbox_batches_refused_total", "counter",
               "Batches the handler refused or took in part (the rest is handed again).",
               F_REFUSED);
    }
    free(s);
    if (roles_relay_stats(&rs)) {
        COUNTER("chatd_relay_events_published_total", "Events the JetStream stream stored.",
                rs.published);
        COUNTER("chatd_relay_events_duplicate_total",
                "Events JetStream acknowledged as already stored (a batch handed again).",
                rs.duplicates);
        COUNTER("chatd_relay_publish_failures_total",
                "Events not acknowledged (refused, timed out, or after one that was).",
                rs.failures);
    }
    if (roles_exporter_stats(&es)) {
        COUNTER("chatd_exporter_events_produced_total",
                "Events with a successful Kafka delivery report.", es.produced);
        COUNTER("chatd_exporter_delivery_failures_total",
                "Events with a failed delivery report (an error, or purged at the batch deadline).",
                es.failures);
        COUNTER("chatd_exporter_producer_restarts_total",
                "Kafka producers replaced after a failure (the next starts at the first event not "
                "delivered).",
                es.restarts);
    }
}
