/* app_roles.c - the background roles of this process (--roles; src/roles): their workers get
 * the store, the settings and this node's view of presence (the notifier's "offline"). */
#include "roles/roles.h"
#include "server/app.h"
#include "util/log.h"
#include "util/status.h"

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
    unsigned mask = ROLES_ALL;
    char bad[64];
    struct roles_env env = {.db = &app->db, .node_id = app->node_id, .settings = &app->cfg};
    if (roles_parse(app->cfg.roles, &mask, bad, sizeof(bad)) != CD_OK) {
        log_error("unknown role", "\"role\":\"%s\"", bad);
        return CD_E_INVALID_FIELD;
    }
    /* The gateway's connections (this node) and Redis (every node) say who is online; a
     * notifier with neither would notify everyone (it warns). */
    if ((mask & ROLES_GATEWAY) || app->gpresence) {
        env.online = user_online;
        env.online_ud = app;
    }
    return roles_start(mask, &env, &app->roles);
}

void app_roles_stop(struct app *app)
{
    roles_stop(app->roles);
    app->roles = NULL;
}
