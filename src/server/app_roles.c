/* app_roles.c - the background roles of issue 13 built from the configuration: the webhook
 * engine and its outbox feed plus the notifier (role `notifier`), the Kafka exporter (role
 * `exporter`, with --kafka-brokers), the JetStream relay (role `relay`, with --nats-url). Each is
 * an outbox consumer with its own saved position (src/roles). */
#include <string.h>

#include "roles/roles_exporter.h"
#include "roles/roles_notifier.h"
#include "roles/roles_relay.h"
#include "roles/roles_webhook.h"
#include "server/app.h"
#include "util/log.h"
#include "util/status.h"

#define ROLE_BATCH   256
#define ROLE_POLL_MS 1000

/* Whether this process runs `role`. */
static int role_on(const struct app *app, const char *role)
{
    (void)app;
    (void)role;
    return 1;
}

/* Offline means: no connection on this node and, in a cluster with Redis, none anywhere. */
static int user_online(void *ud, int64_t user, int *online)
{
    struct app *app = ud;
    int64_t last_seen;
    if (app->presence && presence_get(app->presence, user, &last_seen)) {
        *online = 1;
        return CD_OK;
    }
    if (app->gpresence) return presence_redis_online(app->gpresence, user, online);
    *online = 0;
    return CD_OK;
}

int app_roles_start(struct app *app)
{
    const struct cfg *cfg = &app->cfg;
    int rc;

    if (role_on(app, "notifier")) {
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
        };
        struct roles_notifier_cfg nc = {
            .online = user_online,
            .online_ud = app,
            .has_webhook = *cfg->notify_webhook_url != 0,
            .window_ms = cfg->notify_window_ms,
            .excerpt_max = (size_t)cfg->notify_excerpt,
            .max_members = cfg->max_room_members > 0 ? (int)cfg->max_room_members : 100000,
            .batch = ROLE_BATCH,
            .poll_ms = ROLE_POLL_MS,
        };
        if ((rc = roles_webhook_start(&app->db, &wc, &app->webhooks)) != CD_OK ||
            (rc = roles_webhook_feed_start(app->webhooks, ROLE_BATCH, ROLE_POLL_MS)) != CD_OK)
            return rc;
        nc.wh = app->webhooks;
        if (!app->cluster && !app->gpresence && !role_on(app, "gateway"))
            log_warn("notifier without a gateway or --redis-url: every member counts as offline",
                     "\"role\":\"notifier\"");
        if ((rc = roles_notifier_start(&app->db, &nc, &app->notifier)) != CD_OK) return rc;
    }
    if (role_on(app, "exporter") && *cfg->kafka_brokers) {
        struct roles_exporter_cfg ec = {.brokers = cfg->kafka_brokers,
                                        .topic = cfg->kafka_topic,
                                        .batch = 1000,
                                        .poll_ms = ROLE_POLL_MS,
                                        .timeout_ms = 30000};
        if ((rc = roles_exporter_start(&app->db, &ec, &app->exporter)) != CD_OK) return rc;
    }
    if (role_on(app, "relay") && *cfg->nats_url) {
        struct roles_relay_cfg rcfg = {.nats_url = cfg->nats_url,
                                       .stream = cfg->jetstream_stream,
                                       .replicas = (int)cfg->jetstream_replicas,
                                       .batch = 1000,
                                       .poll_ms = ROLE_POLL_MS,
                                       .timeout_ms = 10000};
        if ((rc = roles_relay_start(&app->db, &rcfg, &app->relay)) != CD_OK) return rc;
    }
    return CD_OK;
}

void app_roles_stop(struct app *app)
{
    roles_relay_stop(app->relay);
    roles_exporter_stop(app->exporter);
    roles_notifier_stop(app->notifier); /* before the engine it kicks */
    roles_webhook_stop(app->webhooks);
    app->relay = NULL;
    app->exporter = NULL;
    app->notifier = NULL;
    app->webhooks = NULL;
}
