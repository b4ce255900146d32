/* presence.h - node-wide per-user state: open connections (presence), last_seen, the message
 * rate bucket, the new-direct-chat quota bucket. Striped locks (64 stripes by user id): touched on
 * connect/disconnect and once per sent message, never per delivery. */
#ifndef CD_PRESENCE_H
#define CD_PRESENCE_H

#include <stdint.h>

#include "util/tbucket.h"

struct presence;

/* msg_rule applies only with rate_limits; dm_rule (a quota; rate <= 0: none) always. */
struct presence *presence_new(const struct tbucket_rule *msg_rule,
                              const struct tbucket_rule *dm_rule, int rate_limits,
                              uint32_t max_conns_per_user);
void presence_free(struct presence *p);

/* A connection of user opens. Returns the user's connection count after it (1 = just came
 * online), or 0 when the user is at max_conns_per_user (nothing changed; 0 = no cap). The cap
 * applies whether rate limits are on or off. */
uint32_t presence_connect(struct presence *p, int64_t user);
/* A connection closes. Returns the remaining count (0 = just went offline; last_seen set to
 * now_ms). */
uint32_t presence_disconnect(struct presence *p, int64_t user, int64_t now_ms);
/* Current status: 1 online, 0 offline; *last_seen = unix ms of the last disconnect on this node
 * since start (0 if unknown here). */
int presence_get(struct presence *p, int64_t user, int64_t *last_seen);
/* Take one message token for user at now_ms: 0 if allowed, else ms until allowed. */
int64_t presence_take_msg(struct presence *p, int64_t user, int64_t now_ms);
/* Cluster-wide message rate (presence_redis): every message taken here since the last call,
 * per user: cb(ud, user, n) under the user's stripe lock (cb must not call back in). O(users
 * with state on this node). */
void presence_collect_sent(struct presence *p, void (*cb)(void *ud, int64_t user, uint32_t n),
                           void *ud);
/* The cluster-wide bucket of user is empty until until_ms: its messages wait until then. */
void presence_block_msg(struct presence *p, int64_t user, int64_t until_ms);
/* Users with at least one open connection on this node (any thread; a snapshot). */
uint64_t presence_online_users(struct presence *p);
/* Take one new-direct-chat token for user at now_ms: 0 if allowed, else ms until allowed. */
int64_t presence_take_dm(struct presence *p, int64_t user, int64_t now_ms);

#endif
