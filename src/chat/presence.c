#include "chat/presence.h"

#include <stdlib.h>
#include <uv.h>

#include "util/rbuf.h"

#define STRIPES 64

struct pentry {
    int64_t user;
    uint32_t conns;
    int64_t last_seen;
    struct tbucket msg;
    struct pentry *next;
};

struct stripe {
    uv_mutex_t lock;
    struct pentry **b;
    uint32_t nb, n;
};

struct presence {
    struct tbucket_rule msg_rule;
    int rate_limits;
    uint32_t max_conns;
    struct stripe s[STRIPES];
};

static uint64_t mix(int64_t v)
{
    uint64_t x = (uint64_t)v;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

struct presence *presence_new(const struct tbucket_rule *msg_rule, int rate_limits,
                              uint32_t max_conns_per_user)
{
    struct presence *p = xcalloc(1, sizeof(*p));
    p->msg_rule = *msg_rule;
    p->rate_limits = rate_limits;
    p->max_conns = max_conns_per_user;
    for (int i = 0; i < STRIPES; i++) {
        uv_mutex_init(&p->s[i].lock);
        p->s[i].nb = 64;
        p->s[i].b = xcalloc(64, sizeof(struct pentry *));
    }
    return p;
}

void presence_free(struct presence *p)
{
    for (int i = 0; i < STRIPES; i++) {
        for (uint32_t j = 0; j < p->s[i].nb; j++)
            for (struct pentry *e = p->s[i].b[j], *n; e; e = n) {
                n = e->next;
                free(e);
            }
        free(p->s[i].b);
        uv_mutex_destroy(&p->s[i].lock);
    }
    free(p);
}

/* Find (create) the entry of user in its locked stripe. */
static struct pentry *entry(struct presence *p, struct stripe *s, int64_t user, uint64_t h,
                            int create)
{
    struct pentry **slot, *e;
    if (create && s->n >= s->nb * 2) { /* grow */
        uint32_t nb = s->nb * 2;
        struct pentry **b = xcalloc(nb, sizeof(*b));
        for (uint32_t i = 0; i < s->nb; i++)
            for (struct pentry *x = s->b[i], *n; x; x = n) {
                uint32_t k = (uint32_t)((mix(x->user) >> 6) & (nb - 1));
                n = x->next;
                x->next = b[k];
                b[k] = x;
            }
        free(s->b);
        s->b = b;
        s->nb = nb;
    }
    slot = &s->b[(h >> 6) & (s->nb - 1)];
    for (e = *slot; e; e = e->next)
        if (e->user == user) return e;
    if (!create) return NULL;
    e = xcalloc(1, sizeof(*e));
    e->user = user;
    e->msg.tokens = p->msg_rule.burst;
    e->next = *slot;
    *slot = e;
    s->n++;
    return e;
}

uint32_t presence_connect(struct presence *p, int64_t user)
{
    uint64_t h = mix(user);
    struct stripe *s = &p->s[h % STRIPES];
    struct pentry *e;
    uint32_t n = 0;

    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, h, 1);
    if (!p->rate_limits || p->max_conns == 0 || e->conns < p->max_conns) n = ++e->conns;
    uv_mutex_unlock(&s->lock);
    return n;
}

uint32_t presence_disconnect(struct presence *p, int64_t user, int64_t now_ms)
{
    uint64_t h = mix(user);
    struct stripe *s = &p->s[h % STRIPES];
    struct pentry *e;
    uint32_t n = 0;

    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, h, 0);
    if (e && e->conns) {
        n = --e->conns;
        if (!n) e->last_seen = now_ms;
    }
    uv_mutex_unlock(&s->lock);
    return n;
}

int presence_get(struct presence *p, int64_t user, int64_t *last_seen)
{
    uint64_t h = mix(user);
    struct stripe *s = &p->s[h % STRIPES];
    struct pentry *e;
    int online = 0;

    *last_seen = 0;
    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, h, 0);
    if (e) {
        online = e->conns > 0;
        *last_seen = e->last_seen;
    }
    uv_mutex_unlock(&s->lock);
    return online;
}

int64_t presence_take_msg(struct presence *p, int64_t user, int64_t now_ms)
{
    uint64_t h = mix(user);
    struct stripe *s = &p->s[h % STRIPES];
    struct pentry *e;
    int64_t wait;

    if (!p->rate_limits) return 0;
    uv_mutex_lock(&s->lock);
    e = entry(p, s, user, h, 1);
    if (e->msg.last_ms == 0) e->msg.last_ms = now_ms;
    wait = tbucket_take(&e->msg, &p->msg_rule, now_ms, 1);
    uv_mutex_unlock(&s->lock);
    return wait;
}
