/* roles.c - the roles of a process and the table of their workers (see roles.h). */
#include "roles/roles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roles/roles_workers.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

static const char *const names[] = {"gateway", "relay", "notifier", "exporter", "indexer"};
#define NROLES (sizeof(names) / sizeof(names[0]))

/* Every role body that runs beside the gateway: one line each, started in this order. The
 * relay (JetStream), notifier (webhooks, notifications) and exporter (Kafka) bodies add
 * theirs here; gateway is the HTTP server itself (app.c), not a worker. */
static const struct roles_worker workers[] = {
    {ROLES_NOTIFIER, "notifier", roles_notifier_worker_start, roles_notifier_worker_stop},
    {ROLES_EXPORTER, "exporter", roles_exporter_worker_start, roles_exporter_worker_stop},
    {ROLES_RELAY, "relay", roles_relay_worker_start, roles_relay_worker_stop},
};
#define NWORKERS (sizeof(workers) / sizeof(workers[0]))

struct roles_run {
    size_t n;
    struct {
        const struct roles_worker *w;
        void *state;
    } started[NWORKERS];
};

int roles_parse(const char *s, unsigned *mask, char *bad, size_t cap)
{
    unsigned m = 0;
    const char *p = s;

    if (bad && cap) bad[0] = '\0';
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *a = p, *b = p + n;
        size_t i;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b - a == 3 && !memcmp(a, "all", 3)) {
            m |= ROLES_ALL;
        } else {
            for (i = 0; i < NROLES; i++)
                if (strlen(names[i]) == (size_t)(b - a) && !memcmp(a, names[i], (size_t)(b - a)))
                    break;
            if (i == NROLES) {
                if (bad && cap) snprintf(bad, cap, "%.*s", (int)(b - a), a);
                return CD_E_INVALID_FIELD;
            }
            m |= 1u << i;
        }
        if (!end) break;
        p = end + 1;
    }
    *mask = m;
    return CD_OK;
}

void roles_format(unsigned mask, char *out, size_t cap)
{
    size_t len = 0;
    if (cap) out[0] = '\0';
    for (size_t i = 0; i < NROLES; i++) {
        int k;
        if (!(mask & (1u << i))) continue;
        k = snprintf(out + len, cap > len ? cap - len : 0, "%s%s", len ? "," : "", names[i]);
        if (k > 0) len += (size_t)k;
        if (len >= cap) break;
    }
}

const struct roles_worker *roles_workers(size_t *n)
{
    *n = NWORKERS;
    return workers;
}

int roles_start(unsigned mask, const struct roles_env *env, struct roles_run **out)
{
    struct roles_run *run = xcalloc(1, sizeof(*run));
    unsigned covered = ROLES_GATEWAY;
    size_t n;
    const struct roles_worker *w = roles_workers(&n);

    for (size_t i = 0; i < n; i++) {
        int rc;
        if (!w[i].start || !(mask & w[i].role)) continue;
        covered |= w[i].role;
        if ((rc = w[i].start(env, &run->started[run->n].state)) != CD_OK) {
            log_error("role worker failed to start", "\"worker\":\"%s\",\"status\":\"%s\"",
                      w[i].name, cd_status_code(rc));
            roles_stop(run);
            return rc;
        }
        run->started[run->n++].w = &w[i];
        log_info("role worker started", "\"worker\":\"%s\"", w[i].name);
    }
    for (size_t i = 0; i < NROLES; i++)
        if ((mask & (1u << i)) && !(covered & (1u << i)))
            log_info("role enabled without a worker in this build", "\"role\":\"%s\"", names[i]);
    *out = run;
    return CD_OK;
}

void roles_stop(struct roles_run *run)
{
    if (!run) return;
    while (run->n > 0) {
        run->n--;
        run->started[run->n].w->stop(run->started[run->n].state);
    }
    free(run);
}
