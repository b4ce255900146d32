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
/* Append a copy of ev (its references move in). */
void chat_out_add(struct chat_out *o, const struct fan_ev *ev);
/* After the commit: move the events to the fanout (writer thread). */
void chat_out_commit(struct chat_out *o, struct fanout *f);
/* The job failed: release the events. */
void chat_out_discard(struct chat_out *o);
/* After the commit: the events go out when status is CD_OK, else they are dropped. */
void chat_out_settle(struct chat_out *o, int status, struct fanout *f);

struct chat_sent {
    int64_t seq, ts;
    int duplicate; /* (room, sender, client_msg_id) was stored before: original seq/ts */
    int changed;   /* chat_msg_op: 0 when a reaction was already so (no entry appended) */
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
/* The writer-side membership cache is exact while this node's writer makes every membership
 * change. With several nodes (cluster) an entry is trusted for ttl_ms at most (0: for ever, the
 * single node) and removals made on other nodes reach it by chat_member_cache_forget. Before
 * the writer starts. */
void chat_member_cache_ttl(int64_t ttl_ms);
/* user no longer belongs to room (a member entry from another node): the next check reads
 * storage. Any thread. */
void chat_member_cache_forget(int64_t room, int64_t user);

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
 * role owner transfers ownership: the actor becomes admin). role < 0 (not given): a new member
 * joins as member, an existing one keeps their role (nothing happens). */
int chat_member_add(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t actor,
                    int64_t user, int role, int64_t now_ms, struct chat_out *out);
/* Kick (actor != user; needs a higher role) or leave (actor == user). */
int chat_member_remove(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                       int64_t actor, int64_t user, int64_t now_ms, struct chat_out *out);
/* chat_send with the links of a reply (internal to chat/: chat_send_linked checks them). */
int chat__send(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t sender,
               const char *body, size_t body_len, const char *cmid, size_t cmid_len,
               int64_t reply_to, int64_t thread, int64_t now_ms, struct chat_out *out,
               struct chat_sent *res);
/* Move the read marker of user in room to seq (monotonic); *prev (unless NULL) gets the marker
 * before the move (one more read); returns the marker and the unread
 * messages among the next unread_max entries (*capped = 1 when more entries follow them). The
 * bound keeps the writer's cost per read O(unread_max) whatever the backlog. */
int chat_read(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
              int64_t seq, int64_t unread_max, int64_t *prev, int64_t *marker, int64_t *unread,
              int *capped);

/* ---- room features (issue 14 part 5). Writer thread, like the above. ---- */

/* Drop the cached membership of user in room (a block, a state change). */
void chat_member_forget(int64_t room, int64_t user);
/* Owner of a group room: set public (0/1) and/or archived (0/1); negative leaves one unchanged.
 * A change logs a room entry with the flags; an archived room refuses sends
 * (CD_E_ROOM_ARCHIVED) and additions until it is unarchived. */
int chat_room_set_flags(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                        int64_t actor, int is_public, int archived, int64_t now_ms,
                        struct chat_out *out);
/* Owner of a group room: a room entry with "deleted":true is logged first (connected members
 * learn it), then every membership is removed; the room is CD_E_NOT_FOUND from then on.
 * O(members). */
int chat_room_delete(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                     int64_t actor, int64_t now_ms, struct chat_out *out);
/* Join a public active group room as a member (quotas as for an addition); a member already:
 * CD_OK without an entry. A room that is not public: CD_E_NOT_FOUND (for non-members). */
int chat_room_join(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                   int64_t now_ms, struct chat_out *out);
/* Admins of an active group room store an invite (its hash, expiry, max uses). */
int chat_invite_create(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                       int64_t actor, const struct store_invite *inv);
/* Join the room of an invite: CD_E_NOT_FOUND (unknown token or deleted room), CD_E_INVITE_GONE
 * (expired or used up), quota errors; a member already: CD_OK, the invite is not spent. *room
 * gets the invite's room. */
int chat_invite_accept(const struct store_ops *ops, struct store_conn *sc, const uint8_t hash[32],
                       int64_t user, int64_t now_ms, struct chat_out *out, int64_t *room);
/* Leave: a group room as chat_member_remove(user, user); a direct room is hidden from the
 * user's listing until a message newer than now arrives (the membership stays). */
int chat_room_leave(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                    int64_t now_ms, struct chat_out *out);
/* Account deletion: remove user from room with a "leave" entry, whatever the room kind; a group
 * room's owner first hands ownership to the first admin (else member), logged as a "role"
 * entry. */
int chat_member_drop(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                     int64_t now_ms, struct chat_out *out);

#endif
