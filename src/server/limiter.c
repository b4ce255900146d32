#include "server/limiter.h"

#include <sodium.h>
#include <string.h>

#include "util/rbuf.h"

void limiter_init(struct limiter *l, double rate, double burst, int enabled)
{
    memset(l, 0, sizeof(*l));
    l->rule.rate = rate;
    l->rule.burst = burst;
    l->enabled = enabled && rate > 0;
    randombytes_buf(l->seed, sizeof(l->seed));
    uv_mutex_init(&l->lock);
    l->slots = xcalloc(LIMITER_SLOTS, sizeof(*l->slots));
}

void limiter_free(struct limiter *l)
{
    uv_mutex_destroy(&l->lock);
    free(l->slots);
    l->slots = NULL;
}

static uint64_t key_hash(const struct limiter *l, const char *key, size_t len)
{
    uint64_t h;
    crypto_shorthash((unsigned char *)&h, (const unsigned char *)key, len,
                     (const unsigned char *)l->seed);
    return h ? h : 1;
}

int64_t limiter_take(struct limiter *l, const char *key, size_t len, int64_t now_ms)
{
    uint64_t h;
    struct limiter_slot *s;
    int64_t wait;

    if (!l->enabled) return 0;
    h = key_hash(l, key, len);
    uv_mutex_lock(&l->lock);
    s = &l->slots[h % LIMITER_SLOTS];
    if (s->key != h) {
        /* Take over the slot only when its bucket is full again (its owner is idle). */
        struct tbucket probe = s->b;
        if (s->key == 0 || tbucket_take(&probe, &l->rule, now_ms, l->rule.burst) == 0) {
            s->key = h;
            tbucket_init(&s->b, &l->rule, now_ms);
        }
    }
    wait = tbucket_take(&s->b, &l->rule, now_ms, 1);
    uv_mutex_unlock(&l->lock);
    return wait;
}

int64_t limiter_peek(struct limiter *l, const char *key, size_t len, int64_t now_ms, int *used)
{
    uint64_t h;
    struct limiter_slot *s;
    int64_t wait = 0;
    int u = 0;

    if (l->enabled) {
        h = key_hash(l, key, len);
        uv_mutex_lock(&l->lock);
        s = &l->slots[h % LIMITER_SLOTS];
        if (s->key == h) {
            struct tbucket probe = s->b;
            u = tbucket_take(&probe, &l->rule, now_ms, l->rule.burst) != 0;
            probe = s->b;
            wait = tbucket_take(&probe, &l->rule, now_ms, 1);
        }
        uv_mutex_unlock(&l->lock);
    }
    if (used) *used = u;
    return wait;
}
