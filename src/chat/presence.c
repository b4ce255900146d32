#include "chat/presence.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "util/imap.h"
#include "util/rbuf.h"

#define STRIPES 64

struct pentry {
    uint32_t conns;
    int64_t last_seen;
    struct tbucket msg;
    struct tbucket dm;     /* new direct chats (a quota: applies with rate limits off too) */
    uint32_t unreported;   /* messages taken here since presence_collect_sent (cluster) */
    int64_t blocked_until; /* unix ms: the cluster-wide bucket is empty until then */
};

struct stripe {
    uv_mutex_t lock;
    struct imap users; /* user id -> struct pentry */
};

struct presence {
    struct tbucket_rule msg_rule, dm_rule;
    int rate_limits;
    uint32_t max_conns;
    _Atomic uint64_t online; /* users with at least one connection */
    struct stripe s[STRIPES];
};

static struct stripe *stripe_of(struct presence *p, int64_t user)
{
    uint64_t x = (uint64_t)user * 0xff51afd7ed558ccdULL;
    return &p->s[(x >> 32) % STRIPES];
}

struct presence *presence_new(const struct tbucket_rule *msg_rule,
                              const struct tbucket_rule *dm_rule, int rate_limits,
                              uint32_t max_conns_per_user)
{
    struct presence *p = xcalloc(1, sizeof(*p));
    p->msg_rule = *msg_rule;
    p->dm_rule = *dm_rule;
    p->rate_limits = rate_limits;
    p->max_conns = max_conns_per_user;
    for (int i = 0; i < STRIPES; i++) {
        uv_mutex_init(&p->s[i].lock);
        imap_init(&p->s[i].users);
    }
    return p;
}

void presence_free(struct presence *p)
{
    for (int i = 0; i < STRIPES; i++) {
        uint32_t k;
        for (struct imap_ent *e = imap_first(&p->s[i].users, &k); e;
             e = imap_next(&p->s[i].users, e, &k))
            free(e->val);
        imap_free(&p->s[i].users);
        uv_mutex_destroy(&p->s[i].lock);
    }
    free(p);
}

/* The entry of user in its locked stripe, created when asked. */
static struct pentry *entry(struct presence *p, struct stripe *s, int64_t user, int create)
{
    struct pentry *e = imap_get(&s->users, user);
    if (e || !create) return e;
    e = xcalloc(1, sizeof(*e));
    e->msg.tokens = p->msg_rule.burst;
    e->dm.tokens = p->dm_rule.burst;
    imap_put(&s->users, user, e);
    return e;
}

uint32_t presence_connect(struct presence *p, int64_t user)
{
    struct stripe *s = stripe_of(p, user);
    struct pentry *e;
    uint32_t n = 0;

    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, 1);
    /* A cap on resources, not a rate: it holds with --rate-limits off too. */
    if (p->max_conns == 0 || e->conns < p->max_conns) n = ++e->conns;
    uv_mutex_unlock(&s->lock);
    if (n == 1) atomic_fetch_add_explicit(&p->online, 1, memory_order_relaxed);
    return n;
}

uint32_t presence_disconnect(struct presence *p, int64_t user, int64_t now_ms)
{
    struct stripe *s = stripe_of(p, user);
    struct pentry *e;
    uint32_t n = 0;

    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, 0);
    if (e && e->conns) {
        n = --e->conns;
        if (!n) e->last_seen = now_ms;
        if (!n) atomic_fetch_sub_explicit(&p->online, 1, memory_order_relaxed);
    }
    uv_mutex_unlock(&s->lock);
    return n;
}

int presence_get(struct presence *p, int64_t user, int64_t *last_seen)
{
    struct stripe *s = stripe_of(p, user);
    struct pentry *e;
    int online = 0;

    *last_seen = 0;
    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, 0);
    if (e) {
        online = e->conns > 0;
        *last_seen = e->last_seen;
    }
    uv_mutex_unlock(&s->lock);
    return online;
}

int64_t presence_take_msg(struct presence *p, int64_t user, int64_t now_ms)
{
    struct stripe *s = stripe_of(p, user);
    struct pentry *e;
    int64_t wait;

    if (!p->rate_limits) return 0;
    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, 1);
    if (e->blocked_until > now_ms) {
        wait = e->blocked_until - now_ms;
    } else {
        if (e->msg.last_ms == 0) e->msg.last_ms = now_ms;
        wait = tbucket_take(&e->msg, &p->msg_rule, now_ms, 1);
        if (wait == 0) e->unreported++;
    }
    uv_mutex_unlock(&s->lock);
    return wait;
}

void presence_collect_sent(struct presence *p, void (*cb)(void *ud, int64_t user, uint32_t n),
                           void *ud)
{
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &p->s[i];
        uint32_t k;
        uv_mutex_lock(&s->lock);
        for (struct imap_ent *e = imap_first(&s->users, &k); e; e = imap_next(&s->users, e, &k)) {
            struct pentry *pe = e->val;
            if (!pe->unreported) continue;
            cb(ud, e->key, pe->unreported);
            pe->unreported = 0;
        }
        uv_mutex_unlock(&s->lock);
    }
}

void presence_block_msg(struct presence *p, int64_t user, int64_t until_ms)
{
    struct stripe *s = stripe_of(p, user);
    struct pentry *e;
    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, 1);
    if (until_ms > e->blocked_until) e->blocked_until = until_ms;
    uv_mutex_unlock(&s->lock);
}

int64_t presence_take_dm(struct presence *p, int64_t user, int64_t now_ms)
{
    struct stripe *s = stripe_of(p, user);
    struct pentry *e;
    int64_t wait;

    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, 1);
    if (e->dm.last_ms == 0) e->dm.last_ms = now_ms;
    wait = tbucket_take(&e->dm, &p->dm_rule, now_ms, 1);
    uv_mutex_unlock(&s->lock);
    return wait;
}

uint64_t presence_online_users(struct presence *p)
{
    return atomic_load_explicit(&p->online, memory_order_relaxed);
}
