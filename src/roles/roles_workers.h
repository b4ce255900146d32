/* roles_workers.h - the workers of the relay, notifier and exporter roles for the table of
 * roles.c: each builds its module's configuration from the server's settings (struct cfg,
 * roles_env.settings) and starts it. */
#ifndef CD_ROLES_WORKERS_H
#define CD_ROLES_WORKERS_H

#include "roles/roles.h"

/* notifier: the webhook engine, its outbox feed ("webhooks") and, with --notify-webhook-url, the
 * offline notifications (consumer "notifier"). */
int roles_notifier_worker_start(const struct roles_env *env, void **state);
void roles_notifier_worker_stop(void *state);
/* exporter: the Kafka exporter, when --kafka-brokers is set (else nothing runs). */
int roles_exporter_worker_start(const struct roles_env *env, void **state);
void roles_exporter_worker_stop(void *state);
/* relay: the JetStream relay, when --nats-url is set (else nothing runs). */
int roles_relay_worker_start(const struct roles_env *env, void **state);
void roles_relay_worker_stop(void *state);

#endif
