/* hub.h - per-I/O-thread subscription index and delivery: which local connections receive which
 * room, the live stream of committed events, and the gap-free sync (replay) state machine.
 *
 * Each I/O thread owns one hub (io->app) and touches it only from its own thread. Every batch of
 * committed events reaches every thread in commit order (chat/fanout.h); a thread delivers each
 * event to its local subscribers by reference (no copy, no encode per recipient).
 *
 * Per (connection, room) a subscription tracks next_seq, the next seq that connection must get.
 * Live events equal to next_seq go out at once; earlier ones are duplicates and skipped; a later
 * one reveals a gap, which is filled from storage before live delivery resumes. While a room is
 * being replayed (sync) or held (before the client's first request), live events are buffered
 * (bounded) and merged after the replay, so the stream has no gap and no duplicate.
 */
#ifndef CD_HUB_H
#define CD_HUB_H

#include <jansson.h>
#include <stdint.h>

#include "chat/fanout.h"
#include "chat/presence.h"
#include "net/conn.h"
#include "presence/presence_redis.h"
#include "store/store.h"

struct hub_env {
    struct store_db *db;
    struct fanout *fanout;
    struct presence *presence;
    uint32_t sync_page;          /* rows per storage read during a replay */
    uint32_t sync_max;           /* rows replayed per room per sync before "has_more" */
    uint32_t pending_max;        /* live events buffered per subscription during a replay */
    uint32_t presence_max_room;  /* rooms with more members get no presence events */
    uint32_t typing_ttl_s;       /* a typing indicator expires after this */
    uint32_t max_inflight;       /* requests in flight per connection before it is not read */
    uint64_t max_inflight_total; /* the same over every connection of the node */
    /* Optional (cluster with Redis): presence across nodes. A user's last connection here
     * going is reported offline only when no other node has the user. */
    struct presence_redis *gpresence;
    /* Optional (cluster): this thread gained its first (on = 1) or lost its last local
     * subscriber of room. Called on the I/O thread. */
    void (*interest)(void *ud, int64_t room, int on);
    void *interest_ud;
    /* The connection's rooms are loaded and subscribed: send the hello and resume reading. */
    void (*on_ready)(struct conn *c, uint32_t nrooms);
};

/* Set once before the I/O threads start. */
void hub_env_set(const struct hub_env *env);

void hub_thread_start(struct net_io *io);
void hub_thread_stop(struct net_io *io);
void hub_tick(struct net_io *io);
/* End of a loop iteration: hand the iteration's store jobs to the writer in one go. */
void hub_loop_end(struct net_io *io);
/* Queue a write job from this I/O thread; it reaches the writer at the end of the iteration
 * together with the others (group commit sees the whole iteration). */
void hub_submit(struct net_io *io, struct store_job *j);
/* One of c's requests went to the store (its answer comes as a fan_ev with `request` set).
 * With max_inflight of them unanswered, or max_inflight_total over the node, c is not read (TCP
 * pushes back on the client) until half of its own are answered: clients cannot queue store
 * work without bound. */
void hub_request_begin(struct conn *c);
/* Bus delivery callback: deliver batch b on thread io. */
void hub_deliver(struct net_io *io, struct fan_batch *b);

/* After the WebSocket upgrade of user's connection c: register it and queue the load of its
 * rooms in commit order (reading is paused until on_ready). came_online: presence_connect
 * returned 1. */
void hub_conn_open(struct conn *c, int64_t user, int64_t sid, int came_online);
/* The connection now authenticates with a token of login session sid (a `refresh`): ending
 * that session closes it, ending the previous one no longer does. */
void hub_conn_set_sid(struct conn *c, int64_t sid);
/* The login session of c's access token (0: none): the "device" of delivered receipts. */
int64_t hub_conn_sid(struct conn *c);
/* The connection is gone (on_ws_close): unsubscribe, presence offline if it was the last. */
void hub_conn_close(struct conn *c);

/* 1 when c currently receives room (its user is a member). */
int hub_is_member(struct conn *c, int64_t room);
/* The client's first request releases held rooms (live delivery starts). Idempotent. */
void hub_release(struct conn *c);
/* sync: rooms is a JSON object {room_id: last_seen_seq}. Replies with the missed entries in
 * order per room, then {"type":"synced","id",...,"rooms":{...}}. Releases the other rooms. */
void hub_sync(struct conn *c, json_t *id, json_t *rooms);
/* Publish a presence event of user to the members of rooms (those over presence_max_room
 * members are skipped by the caller). Any thread. */
void hub_publish_presence(int64_t user, const char *status, int64_t last_seen, const int64_t *rooms,
                          uint32_t nrooms);
/* typing in room by c's user: fan out now, expire after typing_ttl_s (typing:false). */
void hub_typing(struct conn *c, int64_t room);

struct hub_stats {
    uint64_t deliveries;       /* frames queued to connections (an entry of a run counts once) */
    uint64_t sync_requests;    /* `sync` requests */
    uint64_t replayed_entries; /* log entries read from storage for replays and gap fills */
};
/* Any thread while the I/O threads run; deliveries lag by up to one loop iteration. */
void hub_stats(struct net_server *srv, struct hub_stats *out);

#endif
