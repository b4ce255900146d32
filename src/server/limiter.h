/* limiter.h - node-wide keyed token buckets (per client IP, per username, ...).
 *
 * A fixed table of buckets indexed by a keyed hash of the key: memory is bounded whatever the
 * number of distinct keys. Two keys that collide share a bucket, which can only make the limit
 * stricter, never looser. A short mutex guards the table: it is used on login/register and
 * connection setup, not on the per-message path.
 */
#ifndef CD_LIMITER_H
#define CD_LIMITER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/tbucket.h"

#define LIMITER_SLOTS 16384

struct limiter {
    struct tbucket_rule rule;
    int enabled;
    uint64_t seed[2];
    uv_mutex_t lock;
    struct limiter_slot {
        uint64_t key;
        struct tbucket b;
    } * slots;
};

void limiter_init(struct limiter *l, double rate, double burst, int enabled);
void limiter_free(struct limiter *l);
/* Take one token for key at now_ms: 0 if allowed, else milliseconds to wait. Any thread. */
int64_t limiter_take(struct limiter *l, const char *key, size_t len, int64_t now_ms);
/* Look at key's bucket without taking: milliseconds until one token is available (0 = now).
 * *used (unless NULL) is 1 when the key has taken tokens that have not refilled yet. A key whose
 * slot another key holds reads as unused and ready: a collision never marks a client that has
 * taken nothing. Any thread. */
int64_t limiter_peek(struct limiter *l, const char *key, size_t len, int64_t now_ms, int *used);

#endif
