/* roles_workers.c - settings to role bodies (see roles_workers.h). roles_env.settings is the
 * server's struct cfg: its definition is read here (a header of plain fields), nothing of the
 * server is called. */
#include "roles/roles_workers.h"

#include <stdlib.h>

#include "roles/roles_exporter.h"
#include "roles/roles_notifier.h"
#include "roles/roles_relay.h"
#include "roles/roles_webhook.h"
#include "server/config.h"
#include "util/log.h"
#include "util/status.h"

#define ROLE_BATCH   256
#define ROLE_POLL_MS 1000

struct notifier_state {
    struct roles_webhook *wh;
    struct roles_notifier *nf;
};

/* Without a presence source every member counts as offline. */
static int nobody_online(void *ud, int64_t user, int *online)
{
    (void)ud;
    (void)user;
    *online = 0;
    return CD_OK;
}

int roles_notifier_worker_start(const struct roles_env *env, void **state)
{
    const struct cfg *cfg = env->settings;
    struct notifier_state *s = calloc(1, sizeof(*s));
    struct roles_webhook_cfg wc = {
        .url = cfg->webhook_url,
        .secret = cfg->webhook_secret,
        .types = cfg->webhook_types,
        .notify_url = cfg->notify_webhook_url,
        .max_attempts = (int)cfg->webhook_max_attempts,
        .retry_base_ms = cfg->webhook_retry_base_ms,
        .retry_max_ms = cfg->webhook_retry_max_ms,
        .timeout_ms = cfg->webhook_timeout_ms,
        .poll_ms = cfg->webhook_poll_ms,
        .retention_ms = cfg->webhook_retention * 1000,
    };
    struct roles_notifier_cfg nc = {
        .online = env->online ? env->online : nobody_online,
        .online_ud = env->online_ud,
        .has_webhook = *cfg->notify_webhook_url != 0,
        .window_ms = cfg->notify_window_ms,
        .excerpt_max = (size_t)cfg->notify_excerpt,
        .max_members = cfg->max_room_members > 0 ? (int)cfg->max_room_members : 100000,
        .batch = ROLE_BATCH,
        .poll_ms = ROLE_POLL_MS,
    };
    int rc;

    if (!s) return CD_E_NOMEM;
    if ((rc = roles_webhook_start(env->db, &wc, &s->wh)) != CD_OK ||
        (rc = roles_webhook_feed_start(s->wh, ROLE_BATCH, ROLE_POLL_MS)) != CD_OK)
        goto fail;
    /* Notifications cost a members read and a presence question per message: only with a
     * receiver for them. */
    if (nc.has_webhook) {
        if (!env->online)
            log_warn("notifier: no presence source (no gateway here, no --redis-url): every "
                     "member counts as offline",
                     "\"role\":\"notifier\"");
        nc.wh = s->wh;
        if ((rc = roles_notifier_start(env->db, &nc, &s->nf)) != CD_OK) goto fail;
    }
    *state = s;
    return CD_OK;
fail:
    roles_webhook_stop(s->wh);
    free(s);
    return rc;
}

void roles_notifier_worker_stop(void *state)
{
    struct notifier_state *s = state;
    if (!s) return;
    roles_notifier_stop(s->nf); /* before the engine it kicks */
    roles_webhook_stop(s->wh);
    free(s);
}

int roles_exporter_worker_start(const struct roles_env *env, void **state)
{
    const struct cfg *cfg = env->settings;
    struct roles_exporter_cfg ec = {.brokers = cfg->kafka_brokers,
                                    .topic = cfg->kafka_topic,
                                    .batch = 4000,
                                    .poll_ms = ROLE_POLL_MS,
                                    .timeout_ms = 30000};
    *state = NULL;
    if (!*cfg->kafka_brokers) return CD_OK;
    return roles_exporter_start(env->db, &ec, (struct roles_exporter **)state);
}

void roles_exporter_worker_stop(void *state)
{
    roles_exporter_stop(state);
}

int roles_relay_worker_start(const struct roles_env *env, void **state)
{
    const struct cfg *cfg = env->settings;
    struct roles_relay_cfg rc = {.nats_url = cfg->nats_url,
                                 .stream = cfg->jetstream_stream,
                                 .replicas = (int)cfg->jetstream_replicas,
                                 .batch = 4000,
                                 .poll_ms = ROLE_POLL_MS,
                                 .timeout_ms = 10000};
    *state = NULL;
    if (!*cfg->nats_url) return CD_OK;
    return roles_relay_start(env->db, &rc, (struct roles_relay **)state);
}

void roles_relay_worker_stop(void *state)
{
    roles_relay_stop(state);
}
