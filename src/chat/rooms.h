/* rooms.h - the rules of rooms, membership and messages. Each function runs on the storage
 * writer thread inside the job's savepoint (blocking store calls) and appends the events it
 * commits to `out`; the caller publishes them only after the group commit succeeded.
 *
 * Errors (util/status.h): CD_E_NOT_FOUND (no such room or user), CD_E_NOT_MEMBER,
 * CD_E_FORBIDDEN (role too low, or a direct room), CD_E_CONFLICT (the last owner leaving),
 * CD_E_INVALID_FIELD, CD_E_IO, and the quota errors CD_E_QUOTA_OWNED_ROOMS,
 * CD_E_QUOTA_ROOM_MEMBERS, CD_E_QUOTA_USER_ROOMS (409 quota_exceeded) and CD_E_RATE_LIMITED (new
 * direct chats). */
#ifndef CD_ROOMS_H
#define CD_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "chat/fanout.h"
#include "store/store.h"

#define CHAT_MAX_INITIAL_MEMBERS 1000 /* members listed in one POST /v1/rooms */
#define CHAT_CMID_MAX            64   /* client_msg_id bytes */
/* The actor and sender id of the server API acting as the system (never a user: user ids start
 * at 1). The system may send into any room without being a member, and add or remove members
 * of any group room with an admin's powers over everyone but the owner (it can neither make
 * nor remove an owner). Its messages and entries show "sender"/"by": "system". */
#define CHAT_SYSTEM 0

/* Events produced by one job. */
struct chat_out {
    struct fan_ev *ev;
    uint32_t n, cap;
};
/* After the commit: move the events to the fanout (writer thread). */
void chat_out_commit(struct chat_out *o, struct fanout *f);
/* The job failed: release the events. */
void chat_out_discard(struct chat_out *o);

struct chat_sent {
    int64_t seq, ts;
    int duplicate; /* the (sender, client_msg_id) pair was stored before: original seq/ts */
};

/* Per-user and per-room quotas, checked on the writer thread inside the job, so concurrent
 * requests cannot overshoot them. 0 = no limit. */
struct chat_quota {
    int64_t max_owned_rooms;  /* group rooms one user may own (create, or receive by transfer) */
    int64_t max_room_members; /* members of one group room */
    int64_t max_user_rooms;   /* group rooms one user may be a member of (others cannot add more) */
    /* Called before a new direct room is created by `user`: 0 to allow it (the quota is spent),
     * else milliseconds until it would be (CD_E_RATE_LIMITED). NULL: no quota. Writer thread. */
    int64_t (*dm_admit)(void *ud, int64_t user);
    void *dm_ud;
};
/* Set the quotas before the writer runs any job (not synchronised with it). */
void chat_quota_set(const struct chat_quota *q);

/* Forget every cached membership (a whole group commit was rolled back). Writer thread. */
void chat_member_cache_reset(void);
/* The writer-side membership cache is right only while this node's writer makes every
 * membership change; with several nodes (cluster) it is off and each send reads the
 * membership in its own transaction. Before the writer starts. */
void chat_member_cache_enable(int on);

int chat_send(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t sender,
              const char *body, size_t body_len, const char *cmid, size_t cmid_len, int64_t now_ms,
              struct chat_out *out, struct chat_sent *res);

/* Create a group room owned by creator with the other members (deduplicated; unknown users give
 * CD_E_NOT_FOUND). Emits one member "join" event per member. */
int chat_room_create(const struct store_ops *ops, struct store_conn *sc, int64_t creator,
                     const char *name, const char *topic, const int64_t *members, size_t n,
                     int64_t now_ms, struct chat_out *out, struct store_room *room);
/* The one direct room of users a and b, created on first call (*created = 1). Creating one
 * takes a's new-direct-chat quota: CD_E_RATE_LIMITED with *retry_ms when it is spent. */
int chat_dm_open(const struct store_ops *ops, struct store_conn *sc, int64_t a, int64_t b,
                 int64_t now_ms, struct chat_out *out, struct store_room *room, int *created,
                 int64_t *retry_ms);
/* Rename / change topic (admins). NULL leaves a field unchanged. Emits a "room" event. */
int chat_room_update(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                     int64_t actor, const char *name, const char *topic, int64_t now_ms,
                     struct chat_out *out);
/* Add user with role (admins add members; only the owner grants admin or changes roles;
 * role owner transfers ownership: the actor becomes admin). role < 0: member. */
int chat_member_add(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t actor,
                    int64_t user, int role, int64_t now_ms, struct chat_out *out);
/* Kick (actor != user; needs a higher role) or leave (actor == user). */
int chat_member_remove(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                       int64_t actor, int64_t user, int64_t now_ms, struct chat_out *out);
/* Move the read marker of user in room to seq (monotonic); returns the marker and the unread
 * messages among the next unread_max entries (*capped = 1 when more entries follow them). The
 * bound keeps the writer's cost per read O(unread_max) whatever the backlog. */
int chat_read(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
              int64_t seq, int64_t unread_max, int64_t *marker, int64_t *unread, int *capped);

#endif
