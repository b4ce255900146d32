#include "chat/people.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chat/attach.h"
#include "net/ws_codec.h"
#include "util/rbuf.h"
#include "util/status.h"

int64_t people_new_user_id(void)
{
    uint64_t r;
    randombytes_buf(&r, sizeof(r));
    return PEOPLE_ID_MIN + (int64_t)(r % (uint64_t)(PEOPLE_ID_MAX - PEOPLE_ID_MIN));
}

int people_user_create(const struct store_ops *ops, struct store_conn *sc, const char *username,
                       const char *pwhash, int64_t now_ms, int64_t *id)
{
    int rc = CD_E_CONFLICT;
    for (int tries = 0; rc == CD_E_CONFLICT && tries < 8; tries++) {
        *id = people_new_user_id();
        rc = ops->user_insert_id(sc, *id, username, pwhash, now_ms);
    }
    return rc;
}

int people_text_valid(const char *s, size_t len, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    if (len > max || !ws_utf8_valid(p, len)) return 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) return 0;
        /* C1 controls U+0080-U+009F are encoded C2 80 - C2 9F */
        if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return 0;
    }
    return 1;
}

int people_avatar_valid(const char *s, size_t len)
{
    char id[STORE_ATT_ID_LEN + 1];
    return len == 0 || (len <= STORE_AVATAR_MAX && attach_id_parse(s, len, id));
}

int people_avatar_check(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                        const char *avatar, const char **why)
{
    char id[STORE_ATT_ID_LEN + 1];
    struct store_attachment a;
    int rc;
    *why = NULL;
    if (!attach_id_parse(avatar, strlen(avatar), id)) {
        *why = "avatar must be an upload id (att_ and 32 hex digits)";
        return CD_E_INVALID_FIELD;
    }
    rc = ops->attachment_get(sc, id, &a);
    if (rc == CD_E_NOT_FOUND || (rc == CD_OK && a.owner != user)) {
        *why = "avatar: no upload of yours with this id (upload the picture first, or it expired)";
        return CD_E_NOT_FOUND;
    }
    if (rc != CD_OK) return rc;
    if (strncmp(a.content_type, "image/", 6) != 0 || a.content_type[6] == '\0') {
        *why = "avatar must be an image upload (Content-Type image/...)";
        return CD_E_INVALID_FIELD;
    }
    return CD_OK;
}

int people_prefix_range(const char *prefix, size_t len, char *lo, char *hi)
{
    if (len < PEOPLE_PREFIX_MIN || len > STORE_USERNAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = prefix[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
              ch == '-'))
            return 0;
    }
    memcpy(lo, prefix, len);
    lo[len] = '\0';
    memcpy(hi, prefix, len + 1);
    hi[len - 1]++; /* every alphabet byte is below 0x7f: no carry */
    return 1;
}

/* ---- the block set: a chained hash of (user, other) pairs under one lock ---- */

struct block_ent {
    int64_t user, other;
    struct block_ent *next;
};

static struct {
    pthread_mutex_t mu;
    struct block_ent **slot;
    size_t nslots, n;
    atomic_size_t count; /* read without the lock: 0 = nothing to look up */
} bs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static size_t block_hash(int64_t user, int64_t other, size_t nslots)
{
    uint64_t x = (uint64_t)user * 0x9e3779b97f4a7c15ULL ^ (uint64_t)other * 0xc2b2ae3d27d4eb4fULL;
    return (size_t)(x >> 17) & (nslots - 1);
}

static void block_grow(void)
{
    size_t n = bs.nslots ? bs.nslots * 2 : 256;
    struct block_ent **slot = xcalloc(n, sizeof(*slot));
    for (size_t i = 0; i < bs.nslots; i++)
        for (struct block_ent *e = bs.slot[i], *next; e; e = next) {
            size_t h = block_hash(e->user, e->other, n);
            next = e->next;
            e->next = slot[h];
            slot[h] = e;
        }
    free(bs.slot);
    bs.slot = slot;
    bs.nslots = n;
}

void people_blocks_note(int64_t user, int64_t other, int on)
{
    struct block_ent **pp;
    pthread_mutex_lock(&bs.mu);
    if (on && bs.n >= bs.nslots) block_grow();
    for (pp = bs.nslots ? &bs.slot[block_hash(user, other, bs.nslots)] : NULL; pp && *pp;
         pp = &(*pp)->next)
        if ((*pp)->user == user && (*pp)->other == other) break;
    if (on && pp && !*pp) {
        struct block_ent *e = xcalloc(1, sizeof(*e));
        e->user = user;
        e->other = other;
        *pp = e;
        bs.n++;
    } else if (!on && pp && *pp) {
        struct block_ent *e = *pp;
        *pp = e->next;
        free(e);
        bs.n--;
    }
    atomic_store(&bs.count, bs.n);
    pthread_mutex_unlock(&bs.mu);
}

void people_blocks_forget_user(int64_t user)
{
    pthread_mutex_lock(&bs.mu);
    for (size_t i = 0; i < bs.nslots; i++)
        for (struct block_ent **pp = &bs.slot[i]; *pp;) {
            if ((*pp)->user == user || (*pp)->other == user) {
                struct block_ent *e = *pp;
                *pp = e->next;
                free(e);
                bs.n--;
            } else {
                pp = &(*pp)->next;
            }
        }
    atomic_store(&bs.count, bs.n);
    pthread_mutex_unlock(&bs.mu);
}

int people_blocks(int64_t user, int64_t other)
{
    int found = 0;
    if (atomic_load_explicit(&bs.count, memory_order_relaxed) == 0) return 0;
    pthread_mutex_lock(&bs.mu);
    for (struct block_ent *e = bs.nslots ? bs.slot[block_hash(user, other, bs.nslots)] : NULL;
         e && !found; e = e->next)
        found = e->user == user && e->other == other;
    pthread_mutex_unlock(&bs.mu);
    return found;
}

static int load_row(void *ud, int64_t user, int64_t other)
{
    (void)ud;
    people_blocks_note(user, other, 1);
    return 0;
}

int people_blocks_load(const struct store_ops *ops, struct store_conn *sc)
{
    return ops->blocks_all(sc, load_row, NULL);
}

static int blocklist_row(void *ud, const struct store_profile *p, const struct store_member *m,
                         int64_t at)
{
    struct people_blocklist *bl = ud;
    (void)m;
    (void)at;
    if ((bl->n & (bl->n + 1)) == 0 || !bl->ids) /* 0, 1, 3, 7, ...: grow */
        bl->ids = xrealloc(bl->ids, (bl->n * 2 + 2) * sizeof(int64_t));
    bl->ids[bl->n++] = p->id;
    return 0;
}

int people_blocklist_read(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                          struct people_blocklist *bl)
{
    int rc;
    bl->ids = NULL;
    bl->n = 0;
    rc = ops->pair_list(sc, STORE_BLOCKS, user, 0, PEOPLE_BLOCKLIST_MAX, blocklist_row, bl);
    if (rc != CD_OK) people_blocklist_free(bl);
    return rc;
}

int people_blocklist_has(const struct people_blocklist *bl, int64_t other)
{
    size_t lo = 0, hi = bl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bl->ids[mid] == other) return 1;
        if (bl->ids[mid] < other)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int people_blocklist_marks(const struct people_blocklist *bl, const struct store_event *ev)
{
    return bl->n && ev->kind == EV_MESSAGE && people_blocklist_has(bl, ev->sender);
}

void people_blocklist_free(struct people_blocklist *bl)
{
    free(bl->ids);
    bl->ids = NULL;
    bl->n = 0;
}

int people_block_exec(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                      int64_t other, int64_t now_ms)
{
    struct store_profile p;
    char key[48];
    int64_t room;
    int rc;
    if (user == other) return CD_E_INVALID_FIELD;
    if ((rc = ops->profile_get(sc, other, &p)) != CD_OK) return rc;
    if (p.deleted_at) return CD_E_NOT_FOUND;
    if ((rc = ops->pair_put(sc, STORE_BLOCKS, user, other, now_ms)) != CD_OK) return rc;
    /* the writer may have other's right to write to their direct room cached */
    snprintf(key, sizeof(key), "%lld:%lld", (long long)(user < other ? user : other),
             (long long)(user < other ? other : user));
    rc = ops->room_by_dm_key(sc, key, &room);
    if (rc == CD_OK) chat_member_forget(room, other);
    return rc == CD_E_NOT_FOUND ? CD_OK : rc;
}

/* ---- account deletion ---- */

struct ids {
    int64_t *v;
    size_t n, cap;
};

static void ids_add(struct ids *a, int64_t id)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = id;
}

static int room_id_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    (void)m;
    ids_add(ud, room->id);
    return 0;
}

static int session_row(void *ud, const struct store_session *s)
{
    ids_add(ud, s->id);
    return 0;
}

/* Revoke every live session of user; their ids are appended to sess. */
static int revoke_sessions(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                           int64_t now_ms, struct ids *sess)
{
    int rc = ops->sessions_of_user(sc, user, 0, session_row, sess);
    for (size_t i = 0; i < sess->n && rc == CD_OK; i++)
        rc = ops->session_revoke(sc, sess->v[i], now_ms);
    return rc;
}

int people_user_disabled(const struct store_user *u)
{
    return u->pwhash[0] == PEOPLE_DISABLED_MARK;
}

int people_user_set_enabled(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                            int enabled, int64_t now_ms, int64_t **sids, size_t *nsids)
{
    struct store_user u;
    struct ids sess = {0};
    char hash[STORE_PWHASH_MAX];
    int rc;

    *sids = NULL;
    *nsids = 0;
    if ((rc = ops->user_get(sc, user, &u)) != CD_OK) return rc;
    if (enabled) {
        if (!people_user_disabled(&u)) return CD_OK;
        return ops->user_set_pwhash(sc, user, u.pwhash + 1);
    }
    if (!people_user_disabled(&u)) {
        if (strlen(u.pwhash) + 2 > sizeof(hash)) return CD_E_INTERNAL;
        hash[0] = PEOPLE_DISABLED_MARK;
        memcpy(hash + 1, u.pwhash, strlen(u.pwhash) + 1);
        if ((rc = ops->user_set_pwhash(sc, user, hash)) != CD_OK) return rc;
    }
    /* Sessions created while disabled (none should be) are ended too: idempotent. */
    if ((rc = revoke_sessions(ops, sc, user, now_ms, &sess)) != CD_OK) {
        free(sess.v);
        return rc;
    }
    *sids = sess.v;
    *nsids = sess.n;
    return CD_OK;
}

int people_account_delete(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                          int64_t now_ms, struct chat_out *out, int64_t **sids, size_t *nsids)
{
    struct ids rooms = {0}, sess = {0};
    int rc;

    *sids = NULL;
    *nsids = 0;
    if ((rc = ops->rooms_of_user(sc, user, 0, -1, room_id_row, &rooms)) != CD_OK) goto done;
    for (size_t i = 0; i < rooms.n && rc == CD_OK; i++)
        rc = chat_member_drop(ops, sc, rooms.v[i], user, now_ms, out);
    if (rc != CD_OK) goto done;
    if ((rc = revoke_sessions(ops, sc, user, now_ms, &sess)) != CD_OK) goto done;
    rc = ops->user_erase(sc, user, now_ms);
done:
    free(rooms.v);
    if (rc == CD_OK) {
        *sids = sess.v;
        *nsids = sess.n;
    } else {
        free(sess.v);
    }
    return rc;
}
