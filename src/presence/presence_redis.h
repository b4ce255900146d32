/* presence_redis.h - who is online anywhere in the cluster, kept in Redis (hiredis).
 *
 * The node keeps its fast path (chat/presence.c counts this node's connections per user); this
 * module only learns of a user's first connection on the node and of its last one going, and
 * answers asynchronously whether the user is still online elsewhere.
 *
 * Redis keys: chatd:pu:<user> a sorted set of the nodes with a connection of the user, scored
 * by the time that entry expires (ms); chatd:nu:<node> the set of users online on a node;
 * chatd:nodes the live nodes scored by heartbeat expiry. Every ttl/3 a node renews its own
 * entries. A node that dies (SIGKILL) stops renewing: once its heartbeat is ttl old, one
 * surviving node (SET NX) removes it from each of its users and reports those with no node
 * left as offline: a user on a dead node goes offline within about ttl + ttl/3; a user also
 * on a live node stays online.
 *
 * Redis down: the node degrades to its own view (a user's last connection here going is
 * reported offline at once), keeps retrying, and re-registers its users when Redis is back.
 * All Redis calls run on this module's thread or, for presence_redis_online, on the caller's
 * (a worker thread, never an I/O thread). */
#ifndef CD_PRESENCE_REDIS_H
#define CD_PRESENCE_REDIS_H

#include <stdint.h>

struct presence_redis;

struct presence_redis_cfg {
    const char *url;  /* redis://host:port[/db] */
    const char *node; /* this node's id, unique in the cluster */
    uint32_t ttl_ms;  /* heartbeat lifetime (>= 1000) */
    /* user went offline everywhere (last_seen_ms); rooms = its rooms to tell, or NULL when the
     * caller must look them up (a dead node's user). Runs on the module's thread. */
    void (*offline)(void *ud, int64_t user, int64_t last_seen_ms, const int64_t *rooms,
                    uint32_t nrooms);
    /* user is online (registered, or Redis down): tell rooms. Runs on the module's thread. */
    void (*online)(void *ud, int64_t user, const int64_t *rooms, uint32_t nrooms);
    /* Optional: 1 when user has a connection on this node now (it came back while its
     * disconnect waited in the queue: no offline then). */
    int (*online_here)(void *ud, int64_t user);
    void *ud;
    /* Optional: the message rate per user across nodes. Every 250 ms the module asks collect()
     * for the messages each user sent through this node since the last time, takes them from
     * the user's token bucket in Redis (rate per second, burst; shared by every node), and for
     * a user whose bucket went empty calls block(user, until_ms). Admission stays local (no
     * Redis round trip per message): the cluster can overshoot by what the nodes admit within
     * one interval plus each node's own burst. */
    double msg_rate, msg_burst; /* msg_rate <= 0: off */
    void (*collect)(void *ud, void (*emit)(void *arg, int64_t user, uint32_t n), void *arg);
    void (*block)(void *ud, int64_t user, int64_t until_ms);
};

/* Start the module's thread; connects in the background. CD_OK or CD_E_INVALID_FIELD (bad URL). */
int presence_redis_open(const struct presence_redis_cfg *cfg, struct presence_redis **out);
/* Stop the thread (pending work is done first, bounded by a 2 s wait), remove this node's
 * entries from Redis, free. NULL is a no-op. Blocks. */
void presence_redis_close(struct presence_redis *pr);

/* user's first connection on this node opened: registered in Redis, then online() announces
 * it to rooms (copied), so no node says "online" for a user that Redis does not hold (a node
 * dying right after would leave it online for ever). Redis down: announced anyway. Any thread;
 * never blocks. */
void presence_redis_connect(struct presence_redis *pr, int64_t user, const int64_t *rooms,
                            uint32_t nrooms);
/* user's last connection on this node closed at now_ms: offline() runs unless another node
 * still has the user. rooms (copied) are what offline() gets. Any thread; never blocks. */
void presence_redis_disconnect(struct presence_redis *pr, int64_t user, int64_t now_ms,
                               const int64_t *rooms, uint32_t nrooms);
/* Is user online on any live node? Blocks on Redis (worker threads only). CD_OK with *online
 * set, or CD_E_UNAVAILABLE when Redis cannot answer. */
int presence_redis_online(struct presence_redis *pr, int64_t user, int *online);
/* 1 while the module's connection to Redis is up. */
int presence_redis_connected(struct presence_redis *pr);

#endif
