/* chatd.c - chatd-only parts of chatbench: users, tokens and rooms made through the REST API
 * before the workers start, and the REST-only history scenario. Kept apart from the engine so
 * the peers never depend on chatd's protocol. */
#include "cb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int register_user(const struct cb_opts *o, int *fd, const char *prefix, int i,
                         struct cb_user *u)
{
    char json[256], *body = NULL;
    snprintf(json, sizeof json, "{\"username\":\"%s_%d\",\"password\":\"chatbench-pass\"}", prefix,
             i);
    int st = cb_http(fd, o->host, o->port, "POST", "/v1/auth/register", NULL, json, &body);
    int ok = st == 201 && body && cb_json_str(body, "access_token", u->token, sizeof u->token) == 0 &&
             cb_json_str(body, "id", u->id, sizeof u->id) == 0;
    if (!ok)
        fprintf(stderr, "chatbench: register %s_%d failed: HTTP %d %s\n", prefix, i, st,
                body ? body : "");
    free(body);
    return ok ? 0 : -1;
}

static int add_member(const struct cb_opts *o, int *fd, const struct cb_user *owner,
                      const struct cb_room *r, const struct cb_user *u)
{
    char path[128], json[128], *body = NULL;
    snprintf(path, sizeof path, "/v1/rooms/%s/members", r->id);
    snprintf(json, sizeof json, "{\"user_id\":\"%s\"}", u->id);
    int st = cb_http(fd, o->host, o->port, "POST", path, owner->token, json, &body);
    if (st / 100 != 2)
        fprintf(stderr, "chatbench: add member failed: HTTP %d %s\n", st, body ? body : "");
    free(body);
    return st / 100 == 2 ? 0 : -1;
}

static int create_room(const struct cb_opts *o, int *fd, const struct cb_user *owner,
                       const char *name, struct cb_room *r)
{
    char json[256], *body = NULL;
    snprintf(json, sizeof json, "{\"name\":\"%s\",\"members\":[]}", name);
    int st = cb_http(fd, o->host, o->port, "POST", "/v1/rooms", owner->token, json, &body);
    int ok = st == 201 && body && cb_json_str(body, "id", r->id, sizeof r->id) == 0;
    if (!ok)
        fprintf(stderr, "chatbench: create room failed: HTTP %d %s\n", st, body ? body : "");
    free(body);
    return ok ? 0 : -1;
}

int cb_chatd_setup(const struct cb_opts *o, struct cb_world *world)
{
    int nusers, nrooms;
    switch (o->scenario) {
    case SC_FANOUT:
        nusers = o->users > 0 ? o->users : (o->receivers + o->senders < 50 ? o->receivers + o->senders : 50);
        nrooms = 1;
        break;
    case SC_CONNECTIONS:
        nusers = o->users > 0 ? o->users : 10;
        nrooms = 1;
        break;
    case SC_DURABLE:
        nrooms = o->rooms > 0 ? o->rooms : o->senders;
        nusers = nrooms;
        break;
    default:
        nrooms = o->rooms > 0 ? o->rooms : 100;
        nusers = nrooms;
        break;
    }
    if (nusers < 1)
        nusers = 1;
    int rc = -1;
    world->users = calloc((size_t)nusers, sizeof *world->users);
    world->rooms = calloc((size_t)nrooms, sizeof *world->rooms);
    if (!world->users || !world->rooms)
        return -1;
    char prefix[24];
    snprintf(prefix, sizeof prefix, "cb%08x", (unsigned)(time(NULL) ^ (getpid() << 16)));
    int fd = -1;
    uint64_t t0 = cb_now();
    for (int i = 0; i < nusers; i++)
        if (register_user(o, &fd, prefix, i, &world->users[i]) != 0)
            goto done;
    world->nusers = nusers;
    if (o->scenario == SC_CONNECTIONS) {
        /* Idle connections need no room; one is made when the server has rooms, so the
         * connections are subscribed as in real use. */
        if (create_room(o, &fd, &world->users[0], "bench", &world->rooms[0]) == 0)
            for (int i = 1; i < nusers; i++)
                if (add_member(o, &fd, &world->users[0], &world->rooms[0], &world->users[i]) != 0)
                    goto done;
    } else if (o->scenario == SC_FANOUT) {
        if (create_room(o, &fd, &world->users[0], "bench", &world->rooms[0]) != 0)
            goto done;
        for (int i = 1; i < nusers; i++)
            if (add_member(o, &fd, &world->users[0], &world->rooms[0], &world->users[i]) != 0)
                goto done;
    } else {
        for (int r = 0; r < nrooms; r++)
            if (create_room(o, &fd, &world->users[r % nusers], "bench", &world->rooms[r]) != 0)
                goto done;
    }
    world->nrooms = nrooms;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        free(world->users);
        free(world->rooms);
        world->users = NULL;
        world->rooms = NULL;
        world->nusers = world->nrooms = 0;
        return rc;
    }
    if (!o->quiet)
        fprintf(stderr, "chatbench: chatd setup: %d users, %d rooms in %.2f s\n", nusers, nrooms,
                (double)(cb_now() - t0) / 1e9);
    return 0;
}

int cb_chatd_history(const struct cb_opts *o)
{
    fputs("chatbench: history scenario not implemented yet\n", stderr);
    return 1;
}
