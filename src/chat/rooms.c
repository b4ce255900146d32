#include "chat/rooms.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/events.h"
#include "util/jsonw.h"
#include "util/status.h"

/* Writer-thread cache of known memberships, for the check every message makes. Direct-mapped,
 * positive entries only: filled from successful reads, and an entry is dropped whenever that
 * membership changes (even in a job that is later rolled back: a drop only costs a re-read).
 * On a single node every membership change goes through this file on the one writer thread, so
 * it cannot go stale. In a cluster other nodes' writers change memberships too: an entry then
 * lives at most member_ttl ms, and a removal that arrives from the bus drops it at once
 * (chat_member_cache_forget, from the bus thread, applied before the next check). */
#define MEMBER_CACHE 65536
static struct {
    int64_t room, user;
    int64_t until; /* unix ms the entry is trusted until; 0: for ever (single node) */
} member_cache[MEMBER_CACHE];
static int64_t member_ttl; /* 0: no expiry */

/* Removals learnt by other threads, applied by the writer. */
#define FORGET_MAX 4096
static pthread_mutex_t forget_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int64_t room, user;
} forget_q[FORGET_MAX];
static uint32_t forget_n;
static int forget_all; /* the queue overflowed: drop every entry */
static atomic_int forget_pending;

static struct chat_quota quota;

void chat_quota_set(const struct chat_quota *q)
{
    quota = *q;
}

/* CD_OK when user may own one more group room (owning) and join one more (joining). O(rooms of
 * the user), only when such a quota is set. */
static int user_room_quota(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                           int owning, int joining)
{
    int64_t groups = 0, owned = 0;
    int rc;
    owning = owning && quota.max_owned_rooms;
    joining = joining && quota.max_user_rooms;
    if (!owning && !joining) return CD_OK;
    if ((rc = ops->user_room_counts(sc, user, &groups, &owned)) != CD_OK) return rc;
    if (owning && owned >= quota.max_owned_rooms) return CD_E_QUOTA_OWNED_ROOMS;
    if (joining && groups >= quota.max_user_rooms) return CD_E_QUOTA_USER_ROOMS;
    return CD_OK;
}

static uint32_t member_slot(int64_t room, int64_t user)
{
    uint64_t x = (uint64_t)room * 0x9e3779b97f4a7c15ULL ^ (uint64_t)user * 0xc2b2ae3d27d4eb4fULL;
    return (uint32_t)(x >> 40) & (MEMBER_CACHE - 1);
}

void chat_member_cache_ttl(int64_t ttl_ms)
{
    member_ttl = ttl_ms > 0 ? ttl_ms : 0;
}

void chat_member_cache_reset(void)
{
    memset(member_cache, 0, sizeof(member_cache));
}

static void member_forget(int64_t room, int64_t user)
{
    uint32_t i = member_slot(room, user);
    if (member_cache[i].room == room && member_cache[i].user == user) member_cache[i].room = 0;
}

void chat_member_cache_forget(int64_t room, int64_t user)
{
    pthread_mutex_lock(&forget_mu);
    if (forget_n < FORGET_MAX) {
        forget_q[forget_n].room = room;
        forget_q[forget_n++].user = user;
    } else {
        forget_all = 1;
    }
    atomic_store(&forget_pending, 1);
    pthread_mutex_unlock(&forget_mu);
}

/* Writer thread: apply the removals other threads queued (one relaxed load when none). */
static void forget_apply(void)
{
    if (!atomic_load_explicit(&forget_pending, memory_order_relaxed)) return;
    pthread_mutex_lock(&forget_mu);
    if (forget_all)
        chat_member_cache_reset();
    else
        for (uint32_t i = 0; i < forget_n; i++)
            member_forget(forget_q[i].room, forget_q[i].user);
    forget_n = 0;
    forget_all = 0;
    atomic_store(&forget_pending, 0);
    pthread_mutex_unlock(&forget_mu);
}

void chat_member_forget(int64_t room, int64_t user)
{
    member_forget(room, user);
}

/* CD_OK when user may write to room: a member of an active room, not blocked by the other
 * member of a direct room (cached, else read in one statement and remembered). Whatever can
 * revoke that (leaving, archiving, a block) drops the cache entries it affects. Errors:
 * CD_E_NOT_FOUND (no room), CD_E_NOT_MEMBER, CD_E_ROOM_ARCHIVED, CD_E_BLOCKED. */
static int member_known(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                        int64_t user, int64_t now_ms)
{
    uint32_t i = member_slot(room, user);
    struct store_access a;
    int rc;
    forget_apply();
    if (member_cache[i].room == room && member_cache[i].user == user &&
        (!member_cache[i].until || member_cache[i].until > now_ms))
        return CD_OK;
    if ((rc = ops->member_access(sc, room, user, &a)) != CD_OK) return rc;
    if (a.state == ROOM_DELETED) return CD_E_NOT_FOUND;
    if (!a.member) return CD_E_NOT_MEMBER;
    if (a.state == ROOM_ARCHIVED) return CD_E_ROOM_ARCHIVED;
    if (a.dm_blocked) return CD_E_BLOCKED;
    member_cache[i].room = room;
    member_cache[i].user = user;
    member_cache[i].until = member_ttl ? now_ms + member_ttl : 0;
    return CD_OK;
}

void chat_out_add(struct chat_out *o, const struct fan_ev *ev)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 4;
        o->ev = xrealloc(o->ev, o->cap * sizeof(*o->ev));
    }
    o->ev[o->n++] = *ev;
}

void chat_out_settle(struct chat_out *o, int status, struct fanout *f)
{
    if (status == CD_OK)
        chat_out_commit(o, f);
    else
        chat_out_discard(o);
}

void chat_out_commit(struct chat_out *o, struct fanout *f)
{
    for (uint32_t i = 0; i < o->n; i++)
        fanout_add(f, &o->ev[i]);
    free(o->ev);
    memset(o, 0, sizeof(*o));
}

void chat_out_discard(struct chat_out *o)
{
    for (uint32_t i = 0; i < o->n; i++)
        rbuf_unref(o->ev[i].frame);
    free(o->ev);
    memset(o, 0, sizeof(*o));
}

/* Append a member or room entry with the details in w; the store assigns its seq (*seq_out). */
static int append_meta(const struct store_ops *ops, struct store_conn *sc, int64_t room, int kind,
                       int64_t actor, int64_t now_ms, struct jsonw *w, struct chat_out *out,
                       uint8_t member, int64_t subject, int64_t count, int64_t *seq_out)
{
    struct store_event ev = {.room_id = room, .kind = kind, .sender = actor, .ts = now_ms};
    struct fan_ev fe = {
        .kind = FAN_LOG, .member = member, .room = room, .user = subject, .member_count = count};
    int rc;

    ev.body = jsonw_text(w);
    ev.body_len = jsonw_text_len(w);
    if ((rc = ops->event_append(sc, &ev)) != CD_OK) return rc;
    fe.seq = ev.seq;
    fe.frame = events_log_frame(&ev);
    chat_out_add(out, &fe);
    if (seq_out) *seq_out = ev.seq;
    return CD_OK;
}

/* Log a member entry. count: the room's member count after the change, or -1 to read it (the
 * change is already stored). */
static int member_event(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                        int64_t user, const char *action, int role, int64_t actor, int64_t now_ms,
                        struct chat_out *out, int64_t count, int64_t *seq_out)
{
    struct jsonw w;
    uint8_t m = !strcmp(action, "join")                                 ? FAN_M_JOIN
                : (!strcmp(action, "leave") || !strcmp(action, "kick")) ? FAN_M_LEAVE
                                                                        : FAN_M_NONE;
    int rc;
    if (count < 0) {
        struct store_room r;
        if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
        count = r.member_count;
    }
    jsonw_init(&w, 256);
    events_member_json(&w, user, action, role, actor, count, now_ms);
    rc = append_meta(ops, sc, room, EV_MEMBER, actor, now_ms, &w, out, m, user, count, seq_out);
    jsonw_free(&w);
    return rc;
}

/* Above an owner for the checks below; never stored. */
#define ROLE_SYSTEM (ROLE_OWNER + 1)

static int role_of(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                   struct store_member *m)
{
    int rc;
    if (user == CHAT_SYSTEM) {
        memset(m, 0, sizeof(*m));
        m->room_id = room;
        m->role = ROLE_SYSTEM;
        return CD_OK;
    }
    rc = ops->member_get(sc, room, user, m);
    return rc == CD_E_NOT_FOUND ? CD_E_NOT_MEMBER : rc;
}

/* CD_OK for a live account; CD_E_NOT_FOUND for none or a deleted one (nobody adds those). */
static int user_exists(const struct store_ops *ops, struct store_conn *sc, int64_t user)
{
    struct store_profile p;
    int rc = ops->profile_get(sc, user, &p);
    return rc == CD_OK && p.deleted_at ? CD_E_NOT_FOUND : rc;
}

/* CD_E_BLOCKED when `user` blocks `other` (other may not open a DM with, nor add, user). */
static int blocks(const struct store_ops *ops, struct store_conn *sc, int64_t user, int64_t other)
{
    int b = 0;
    int rc = ops->pair_exists(sc, STORE_BLOCKS, user, other, &b);
    if (rc != CD_OK) return rc;
    return b ? CD_E_BLOCKED : CD_OK;
}

static int put_member(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                      int64_t user, int role, int64_t joined_seq)
{
    /* What was said before the user joined is history, not unread. */
    struct store_member m = {.room_id = room,
                             .user_id = user,
                             .role = role,
                             .joined_seq = joined_seq,
                             .read_seq = joined_seq - 1};
    member_forget(room, user);
    return ops->member_put(sc, &m);
}

/* Add a new member (not one already) and log the join; the membership starts at the seq the
 * store gave the join entry. */
static int join(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                int role, int64_t actor, int64_t now_ms, struct chat_out *out)
{
    struct store_room r;
    int64_t seq = 0;
    int rc = ops->room_get(sc, room, &r);
    if (rc == CD_OK)
        rc = member_event(ops, sc, room, user, "join", role, actor, now_ms, out, r.member_count + 1,
                          &seq);
    if (rc == CD_OK) rc = put_member(ops, sc, room, user, role, seq);
    return rc;
}

int chat_send(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t sender,
              const char *body, size_t body_len, const char *cmid, size_t cmid_len, int64_t now_ms,
              struct chat_out *out, struct chat_sent *res)
{
    return chat__send(ops, sc, room, sender, body, body_len, cmid, cmid_len, 0, 0, now_ms, out,
                      res);
}

int chat__send(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t sender,
               const char *body, size_t body_len, const char *cmid, size_t cmid_len,
               int64_t reply_to, int64_t thread, int64_t now_ms, struct chat_out *out,
               struct chat_sent *res)
{
    struct store_event ev = {.room_id = room,
                             .kind = EV_MESSAGE,
                             .sender = sender,
                             .ts = now_ms,
                             .body = body,
                             .body_len = body_len,
                             .client_msg_id = cmid,
                             .cmid_len = cmid_len,
                             .reply_to = reply_to,
                             .thread = thread};
    struct fan_ev fe = {.kind = FAN_LOG, .room = room};
    int rc;

    memset(res, 0, sizeof(*res));
    if (sender == CHAT_SYSTEM) {
        struct store_access a; /* the system writes into any room that exists */
        if ((rc = ops->member_access(sc, room, sender, &a)) != CD_OK) return rc;
        if (a.state == ROOM_DELETED) return CD_E_NOT_FOUND;
        if (a.state == ROOM_ARCHIVED) return CD_E_ROOM_ARCHIVED;
    } else if ((rc = member_known(ops, sc, room, sender, now_ms)) != CD_OK) {
        return rc;
    }
    rc = ops->event_append(sc, &ev);
    if (rc == CD_E_CONFLICT) return CD_E_CONFLICT; /* the caller looks up the original */
    if (rc != CD_OK) return rc;
    if ((reply_to || thread) &&
        (rc = ops->msg_thread_put(sc, room, ev.seq, reply_to, thread)) != CD_OK)
        return rc;
    res->seq = ev.seq;
    res->ts = ev.ts;
    fe.seq = ev.seq;
    fe.frame = events_log_frame(&ev);
    chat_out_add(out, &fe);
    return CD_OK;
}

int chat_room_create(const struct store_ops *ops, struct store_conn *sc, int64_t creator,
                     const char *name, const char *topic, const int64_t *members, size_t n,
                     int64_t now_ms, struct chat_out *out, struct store_room *room)
{
    int64_t joined = 1;
    int rc;

    if (n > CHAT_MAX_INITIAL_MEMBERS) return CD_E_INVALID_FIELD;
    if ((rc = user_room_quota(ops, sc, creator, 1, 1)) != CD_OK) return rc;
    memset(room, 0, sizeof(*room));
    room->kind = ROOM_GROUP;
    snprintf(room->name, sizeof(room->name), "%s", name);
    snprintf(room->topic, sizeof(room->topic), "%s", topic ? topic : "");
    room->created_by = creator;
    room->created_at = now_ms;
    for (size_t i = 0; i < n; i++) {
        if ((rc = user_exists(ops, sc, members[i])) != CD_OK) return rc;
        if (members[i] != creator && (rc = blocks(ops, sc, members[i], creator)) != CD_OK)
            return rc;
    }
    if ((rc = ops->room_insert(sc, room, NULL)) != CD_OK) return rc;
    if ((rc = join(ops, sc, room->id, creator, ROLE_OWNER, creator, now_ms, out)) != CD_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int dup = members[i] == creator;
        for (size_t k = 0; k < i && !dup; k++)
            dup = members[k] == members[i];
        if (dup) continue;
        if (quota.max_room_members && ++joined > quota.max_room_members)
            return CD_E_QUOTA_ROOM_MEMBERS;
        if ((rc = user_room_quota(ops, sc, members[i], 0, 1)) != CD_OK) return rc;
        if ((rc = join(ops, sc, room->id, members[i], ROLE_MEMBER, creator, now_ms, out)) != CD_OK)
            return rc;
    }
    return ops->room_get(sc, room->id, room);
}

int chat_dm_open(const struct store_ops *ops, struct store_conn *sc, int64_t a, int64_t b,
                 int64_t now_ms, struct chat_out *out, struct store_room *room, int *created,
                 int64_t *retry_ms)
{
    char key[48];
    int64_t id;
    int rc;

    *created = 0;
    if (a == b) return CD_E_INVALID_FIELD;
    snprintf(key, sizeof(key), "%lld:%lld", (long long)(a < b ? a : b), (long long)(a < b ? b : a));
    if ((rc = blocks(ops, sc, b, a)) != CD_OK) return rc;
    rc = ops->room_by_dm_key(sc, key, &id);
    if (rc == CD_OK) {
        /* opening it again shows it again in a's listing if a had left it */
        if ((rc = ops->member_hide(sc, id, a, 0)) != CD_OK && rc != CD_E_NOT_FOUND) return rc;
        return ops->room_get(sc, id, room);
    }
    if (rc != CD_E_NOT_FOUND) return rc;
    if ((rc = user_exists(ops, sc, b)) != CD_OK) return rc;
    if (quota.dm_admit && (*retry_ms = quota.dm_admit(quota.dm_ud, a)) != 0)
        return CD_E_RATE_LIMITED;
    memset(room, 0, sizeof(*room));
    room->kind = ROOM_DIRECT;
    room->created_by = a;
    room->created_at = now_ms;
    if ((rc = ops->room_insert(sc, room, key)) != CD_OK) return rc;
    if ((rc = join(ops, sc, room->id, a, ROLE_MEMBER, a, now_ms, out)) != CD_OK) return rc;
    if ((rc = join(ops, sc, room->id, b, ROLE_MEMBER, a, now_ms, out)) != CD_OK) return rc;
    *created = 1;
    return ops->room_get(sc, room->id, room);
}

int chat_room_update(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                     int64_t actor, const char *name, const char *topic, int64_t now_ms,
                     struct chat_out *out)
{
    struct store_member m;
    struct store_room r;
    struct jsonw w;
    int rc;

    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if ((rc = role_of(ops, sc, room, actor, &m)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT || m.role < ROLE_ADMIN) return CD_E_FORBIDDEN;
    if ((rc = ops->room_update(sc, room, name, topic)) != CD_OK) return rc;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    jsonw_init(&w, 256);
    events_room_json(&w, r.name, r.topic, actor, now_ms);
    rc = append_meta(ops, sc, room, EV_ROOM, actor, now_ms, &w, out, FAN_M_NONE, 0, 0, NULL);
    jsonw_free(&w);
    return rc;
}

int chat_member_add(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t actor,
                    int64_t user, int role, int64_t now_ms, struct chat_out *out)
{
    struct store_member am, um;
    struct store_room r;
    int given = role >= 0; /* without a role, an existing member keeps theirs */
    int rc;

    if (role < 0) role = ROLE_MEMBER;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if ((rc = role_of(ops, sc, room, actor, &am)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT) return CD_E_FORBIDDEN;
    if (am.role < ROLE_ADMIN) return CD_E_FORBIDDEN;
    if (role > ROLE_MEMBER && am.role < ROLE_OWNER) return CD_E_FORBIDDEN;
    if (actor == CHAT_SYSTEM && role == ROLE_OWNER) return CD_E_FORBIDDEN; /* owners transfer */
    if (r.state == ROOM_ARCHIVED) return CD_E_ROOM_ARCHIVED;
    if ((rc = user_exists(ops, sc, user)) != CD_OK) return rc;
    if (user != actor && (rc = blocks(ops, sc, user, actor)) != CD_OK) return rc;
    if (role == ROLE_OWNER && user != actor && (rc = user_room_quota(ops, sc, user, 1, 0)) != CD_OK)
        return rc; /* a transfer: the new owner's quota, counted before any join */
    rc = ops->member_get(sc, room, user, &um);
    if (rc == CD_E_NOT_FOUND) {
        if (quota.max_room_members && r.member_count >= quota.max_room_members)
            return CD_E_QUOTA_ROOM_MEMBERS;
        if ((rc = user_room_quota(ops, sc, user, 0, 1)) != CD_OK) return rc;
        if ((rc = join(ops, sc, room, user, role == ROLE_OWNER ? ROLE_MEMBER : role, actor, now_ms,
                       out)) != CD_OK)
            return rc;
        if (role != ROLE_OWNER) return CD_OK;
        if ((rc = ops->member_get(sc, room, user, &um)) != CD_OK) return rc;
    } else if (rc != CD_OK) {
        return rc;
    } else {
        if (!given) return CD_OK; /* re-adding a member changes nothing */
        if (am.role < ROLE_OWNER) return um.role == role ? CD_OK : CD_E_FORBIDDEN;
        if (user == actor) return CD_E_CONFLICT; /* the owner changes others, or transfers */
        if (um.role == role) return CD_OK;
        if (actor == CHAT_SYSTEM && um.role == ROLE_OWNER) return CD_E_CONFLICT;
    }
    um.role = role;
    member_forget(room, user);
    if ((rc = ops->member_put(sc, &um)) != CD_OK) return rc;
    if ((rc = member_event(ops, sc, room, user, "role", role, actor, now_ms, out, -1, NULL)) !=
        CD_OK)
        return rc;
    if (role == ROLE_OWNER) { /* transfer: the previous owner steps down to admin */
        am.role = ROLE_ADMIN;
        member_forget(room, actor);
        if ((rc = ops->member_put(sc, &am)) != CD_OK) return rc;
        rc = member_event(ops, sc, room, actor, "role", ROLE_ADMIN, actor, now_ms, out, -1, NULL);
    }
    return rc;
}

int chat_member_remove(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                       int64_t actor, int64_t user, int64_t now_ms, struct chat_out *out)
{
    struct store_member am, um;
    struct store_room r;
    int rc;

    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if ((rc = role_of(ops, sc, room, actor, &am)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT) return CD_E_FORBIDDEN;
    if (user == actor) {
        if (am.role == ROLE_OWNER) return CD_E_CONFLICT; /* hand ownership over first */
        um = am;
    } else {
        rc = ops->member_get(sc, room, user, &um);
        if (rc == CD_E_NOT_FOUND) return CD_E_NOT_FOUND;
        if (rc != CD_OK) return rc;
        if (am.role < ROLE_ADMIN || um.role >= am.role) return CD_E_FORBIDDEN;
        if (actor == CHAT_SYSTEM && um.role == ROLE_OWNER) return CD_E_CONFLICT; /* ownerless */
    }
    member_forget(room, user);
    if ((rc = ops->member_delete(sc, room, user)) != CD_OK) return rc;
    return member_event(ops, sc, room, user, user == actor ? "leave" : "kick", um.role, actor,
                        now_ms, out, -1, NULL);
}

int chat_read(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
              int64_t seq, int64_t unread_max, int64_t *prev, int64_t *marker, int64_t *unread,
              int *capped)
{
    int rc;
    if (prev) {
        struct store_member m;
        if ((rc = ops->member_get(sc, room, user, &m)) != CD_OK)
            return rc == CD_E_NOT_FOUND ? CD_E_NOT_MEMBER : rc;
        *prev = m.read_seq;
    }
    rc = ops->read_mark(sc, room, user, seq, marker);
    if (rc == CD_E_NOT_FOUND) return CD_E_NOT_MEMBER;
    if (rc != CD_OK) return rc;
    return ops->unread_count(sc, room, user, *marker, unread_max, unread, capped);
}

/* ---- room features: public rooms, archive, delete, invites, leaving a direct room ---- */

/* A room entry for a state change: the room's name and topic plus its flags. */
static int room_state_event(const struct store_ops *ops, struct store_conn *sc,
                            const struct store_room *r, int64_t actor, int64_t now_ms,
                            struct chat_out *out)
{
    struct jsonw w;
    int rc;
    jsonw_init(&w, 256);
    events_room_json(&w, r->name, r->topic, actor, now_ms);
    w.len--; /* reopen the object: the flags follow */
    jsonw_lit(&w, r->is_public ? ",\"public\":true" : ",\"public\":false");
    jsonw_lit(&w, r->state == ROOM_ARCHIVED ? ",\"archived\":true" : ",\"archived\":false");
    jsonw_lit(&w, r->state == ROOM_DELETED ? ",\"deleted\":true}" : ",\"deleted\":false}");
    rc = append_meta(ops, sc, r->id, EV_ROOM, actor, now_ms, &w, out, FAN_M_NONE, 0, 0, NULL);
    jsonw_free(&w);
    return rc;
}

/* Drop every cached membership of a room (O(members)): after its state changed. */
static int room_forget_members(const struct store_ops *ops, struct store_conn *sc, int64_t room);

static int forget_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    (void)ud;
    (void)room;
    member_forget(m->room_id, m->user_id);
    return 0;
}

static int room_forget_members(const struct store_ops *ops, struct store_conn *sc, int64_t room)
{
    return ops->members_list(sc, room, -1, forget_row, NULL);
}

/* The room (not deleted: CD_E_NOT_FOUND) and user's membership in it (CD_E_NOT_MEMBER). */
static int live_room_role(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                          int64_t user, struct store_room *r, struct store_member *m)
{
    int rc;
    if ((rc = ops->room_get(sc, room, r)) != CD_OK) return rc;
    if (r->state == ROOM_DELETED) return CD_E_NOT_FOUND;
    return role_of(ops, sc, room, user, m);
}

int chat_room_set_flags(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                        int64_t actor, int is_public, int archived, int64_t now_ms,
                        struct chat_out *out)
{
    struct store_member m;
    struct store_room r;
    int rc, state = archived < 0 ? -1 : archived ? ROOM_ARCHIVED : ROOM_ACTIVE;

    if ((rc = live_room_role(ops, sc, room, actor, &r, &m)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT || m.role < ROLE_OWNER) return CD_E_FORBIDDEN;
    if ((is_public < 0 || !!is_public == r.is_public) && (state < 0 || state == r.state))
        return CD_OK; /* nothing changes: no entry */
    if ((rc = ops->room_set_flags(sc, room, is_public < 0 ? -1 : !!is_public, state)) != CD_OK)
        return rc;
    if (state >= 0 && state != r.state && (rc = room_forget_members(ops, sc, room)) != CD_OK)
        return rc;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    return room_state_event(ops, sc, &r, actor, now_ms, out);
}

struct drop_ctx {
    int64_t *users;
    size_t n, cap;
};

static int collect_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct drop_ctx *d = ud;
    (void)room;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->users = xrealloc(d->users, d->cap * sizeof(*d->users));
    }
    d->users[d->n++] = m->user_id;
    return 0;
}

int chat_room_delete(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                     int64_t actor, int64_t now_ms, struct chat_out *out)
{
    struct store_member m;
    struct store_room r;
    struct drop_ctx d = {0};
    int rc;

    if ((rc = live_room_role(ops, sc, room, actor, &r, &m)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT || m.role < ROLE_OWNER) return CD_E_FORBIDDEN;
    /* the entry first, so the connected members learn it before the room goes */
    r.state = ROOM_DELETED;
    if ((rc = room_state_event(ops, sc, &r, actor, now_ms, out)) != CD_OK) return rc;
    if ((rc = ops->room_set_flags(sc, room, 0, ROOM_DELETED)) != CD_OK) return rc;
    if ((rc = ops->members_list(sc, room, -1, collect_row, &d)) != CD_OK) goto done;
    for (size_t i = 0; i < d.n && rc == CD_OK; i++) {
        member_forget(room, d.users[i]);
        rc = ops->member_delete(sc, room, d.users[i]);
    }
done:
    free(d.users);
    return rc;
}

/* A new member joins by themselves (public room, invite): quotas as for an addition. */
static int self_join(const struct store_ops *ops, struct store_conn *sc, const struct store_room *r,
                     int64_t user, int64_t now_ms, struct chat_out *out, int *joined)
{
    struct store_member m;
    int rc;
    *joined = 0;
    if (r->state == ROOM_DELETED || r->kind == ROOM_DIRECT) return CD_E_NOT_FOUND;
    if (r->state == ROOM_ARCHIVED) return CD_E_ROOM_ARCHIVED;
    rc = ops->member_get(sc, r->id, user, &m);
    if (rc == CD_OK) return CD_OK; /* already a member: nothing changes */
    if (rc != CD_E_NOT_FOUND) return rc;
    if (quota.max_room_members && r->member_count >= quota.max_room_members)
        return CD_E_QUOTA_ROOM_MEMBERS;
    if ((rc = user_room_quota(ops, sc, user, 0, 1)) != CD_OK) return rc;
    if ((rc = join(ops, sc, r->id, user, ROLE_MEMBER, user, now_ms, out)) != CD_OK) return rc;
    *joined = 1;
    return CD_OK;
}

int chat_room_join(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                   int64_t now_ms, struct chat_out *out)
{
    struct store_room r;
    int joined, rc;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if (!r.is_public) {
        struct store_member m; /* members may "join" again; others learn nothing */
        return ops->member_get(sc, room, user, &m) == CD_OK ? CD_OK : CD_E_NOT_FOUND;
    }
    return self_join(ops, sc, &r, user, now_ms, out, &joined);
}

int chat_invite_create(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                       int64_t actor, const struct store_invite *inv)
{
    struct store_member m;
    struct store_room r;
    int rc;
    if ((rc = live_room_role(ops, sc, room, actor, &r, &m)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT || m.role < ROLE_ADMIN) return CD_E_FORBIDDEN;
    if (r.state == ROOM_ARCHIVED) return CD_E_ROOM_ARCHIVED;
    return ops->invite_insert(sc, inv);
}

int chat_invite_accept(const struct store_ops *ops, struct store_conn *sc, const uint8_t hash[32],
                       int64_t user, int64_t now_ms, struct chat_out *out, int64_t *room)
{
    struct store_invite inv;
    struct store_room r;
    int joined, rc;
    if ((rc = ops->invite_get(sc, hash, &inv)) != CD_OK) return rc;
    *room = inv.room_id;
    if ((rc = ops->room_get(sc, inv.room_id, &r)) != CD_OK) return rc;
    if (r.state == ROOM_DELETED) return CD_E_NOT_FOUND;
    {
        struct store_member m; /* a member already: the invite is not spent */
        if ((rc = ops->member_get(sc, r.id, user, &m)) == CD_OK) return CD_OK;
        if (rc != CD_E_NOT_FOUND) return rc;
    }
    if (now_ms >= inv.expires_at || (inv.max_uses > 0 && inv.uses >= inv.max_uses))
        return CD_E_INVITE_GONE;
    if ((rc = self_join(ops, sc, &r, user, now_ms, out, &joined)) != CD_OK) return rc;
    return joined ? ops->invite_use(sc, hash) : CD_OK;
}

int chat_room_leave(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                    int64_t now_ms, struct chat_out *out)
{
    struct store_member m;
    struct store_room r;
    int rc;
    if ((rc = live_room_role(ops, sc, room, user, &r, &m)) != CD_OK) return rc;
    if (r.kind != ROOM_DIRECT) return chat_member_remove(ops, sc, room, user, user, now_ms, out);
    /* a direct room stays (the other member keeps it); it is hidden until a newer message */
    return ops->member_hide(sc, room, user, r.last_seq > 0 ? r.last_seq : 1);
}

/* The member to hand a group room over to when its owner goes: the first admin, else the first
 * member (user id order), 0 when nobody else is left. */
struct heir_ctx {
    int64_t owner, heir;
    int heir_role;
};

static int heir_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct heir_ctx *h = ud;
    (void)room;
    if (m->user_id != h->owner && (!h->heir || m->role > h->heir_role)) {
        h->heir = m->user_id;
        h->heir_role = m->role;
    }
    return 0;
}

int chat_member_drop(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                     int64_t now_ms, struct chat_out *out)
{
    struct store_member m;
    struct store_room r;
    int rc;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if ((rc = role_of(ops, sc, room, user, &m)) != CD_OK) return rc;
    if (r.kind == ROOM_GROUP && m.role == ROLE_OWNER) {
        struct heir_ctx h = {user, 0, 0};
        struct store_member hm;
        if ((rc = ops->members_list(sc, room, -1, heir_row, &h)) != CD_OK) return rc;
        if (h.heir) {
            if ((rc = ops->member_get(sc, room, h.heir, &hm)) != CD_OK) return rc;
            hm.role = ROLE_OWNER;
            member_forget(room, h.heir);
            if ((rc = ops->member_put(sc, &hm)) != CD_OK) return rc;
            if ((rc = member_event(ops, sc, room, h.heir, "role", ROLE_OWNER, user, now_ms, out, -1,
                                   NULL)) != CD_OK)
                return rc;
        }
    }
    member_forget(room, user);
    if ((rc = ops->member_delete(sc, room, user)) != CD_OK) return rc;
    return member_event(ops, sc, room, user, "leave", m.role, user, now_ms, out, -1, NULL);
}
