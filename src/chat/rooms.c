#include "chat/rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/events.h"
#include "util/jsonw.h"
#include "util/status.h"

/* Writer-thread cache of known memberships, for the check every message makes. Direct-mapped,
 * positive entries only: filled from successful reads, and an entry is dropped whenever that
 * membership changes (even in a job that is later rolled back: a drop only costs a re-read). All
 * membership changes go through this file on the single writer thread, so it cannot go stale. */
#define MEMBER_CACHE 65536
static struct {
    int64_t room, user;
} member_cache[MEMBER_CACHE];

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

static int member_cache_on = 1;

void chat_member_cache_enable(int on)
{
    member_cache_on = on;
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

/* CD_OK when user is a member of room (cached, else read and remembered). */
static int member_known(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                        int64_t user)
{
    uint32_t i = member_slot(room, user);
    struct store_member m;
    int rc;
    if (member_cache_on && member_cache[i].room == room && member_cache[i].user == user)
        return CD_OK;
    rc = ops->member_get(sc, room, user, &m);
    if (rc == CD_E_NOT_FOUND) return CD_E_NOT_MEMBER;
    if (rc == CD_OK && member_cache_on) {
        member_cache[i].room = room;
        member_cache[i].user = user;
    }
    return rc;
}

static void out_add(struct chat_out *o, const struct fan_ev *ev)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 4;
        o->ev = xrealloc(o->ev, o->cap * sizeof(*o->ev));
    }
    o->ev[o->n++] = *ev;
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
    out_add(out, &fe);
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

static int user_exists(const struct store_ops *ops, struct store_conn *sc, int64_t user)
{
    struct store_user u;
    return ops->user_get(sc, user, &u);
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
    struct store_event ev = {.room_id = room,
                             .kind = EV_MESSAGE,
                             .sender = sender,
                             .ts = now_ms,
                             .body = body,
                             .body_len = body_len,
                             .client_msg_id = cmid,
                             .cmid_len = cmid_len};
    struct fan_ev fe = {.kind = FAN_LOG, .room = room};
    int rc;

    memset(res, 0, sizeof(*res));
    if (sender == CHAT_SYSTEM) {
        struct store_room r; /* the system writes into any room that exists */
        if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    } else if ((rc = member_known(ops, sc, room, sender)) != CD_OK) {
        struct store_room r; /* not a member: of an existing room, or of none (404) */
        if (rc == CD_E_NOT_MEMBER && ops->room_get(sc, room, &r) == CD_E_NOT_FOUND)
            return CD_E_NOT_FOUND;
        return rc;
    }
    rc = ops->event_append(sc, &ev);
    if (rc == CD_E_CONFLICT) return CD_E_CONFLICT; /* the caller looks up the original */
    if (rc != CD_OK) return rc;
    res->seq = ev.seq;
    res->ts = ev.ts;
    fe.seq = ev.seq;
    fe.frame = events_log_frame(&ev);
    out_add(out, &fe);
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
    for (size_t i = 0; i < n; i++)
        if ((rc = user_exists(ops, sc, members[i])) != CD_OK) return rc;
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
    rc = ops->room_by_dm_key(sc, key, &id);
    if (rc == CD_OK) return ops->room_get(sc, id, room);
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
    int rc;

    if (role < 0) role = ROLE_MEMBER;
    if ((rc = ops->room_get(sc, room, &r)) != CD_OK) return rc;
    if ((rc = role_of(ops, sc, room, actor, &am)) != CD_OK) return rc;
    if (r.kind == ROOM_DIRECT) return CD_E_FORBIDDEN;
    if (am.role < ROLE_ADMIN) return CD_E_FORBIDDEN;
    if (role > ROLE_MEMBER && am.role < ROLE_OWNER) return CD_E_FORBIDDEN;
    if (actor == CHAT_SYSTEM && role == ROLE_OWNER) return CD_E_FORBIDDEN; /* owners transfer */
    if ((rc = user_exists(ops, sc, user)) != CD_OK) return rc;
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
              int64_t seq, int64_t unread_max, int64_t *marker, int64_t *unread, int *capped)
{
    int rc = ops->read_mark(sc, room, user, seq, marker);
    if (rc == CD_E_NOT_FOUND) return CD_E_NOT_MEMBER;
    if (rc != CD_OK) return rc;
    return ops->unread_count(sc, room, user, *marker, unread_max, unread, capped);
}
