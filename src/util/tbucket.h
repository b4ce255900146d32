/* tbucket.h - token bucket rate limiter (pure arithmetic; no clock reads, no locks).
 *
 * A bucket holds up to `burst` tokens and refills at `rate` tokens per second. The caller passes
 * the current time in milliseconds so tests control time and the hot path reads the clock once
 * per loop iteration.
 */
#ifndef CD_TBUCKET_H
#define CD_TBUCKET_H

#include <stdint.h>

struct tbucket {
    double tokens;   /* tokens available at `last_ms` */
    int64_t last_ms; /* time of the last update */
};

struct tbucket_rule {
    double rate;  /* tokens per second; <= 0 means unlimited */
    double burst; /* bucket capacity */
};

/* Initialise a full bucket at now_ms. */
void tbucket_init(struct tbucket *b, const struct tbucket_rule *rule, int64_t now_ms);
/* Take `cost` tokens. Returns 0 when allowed; otherwise leaves the bucket unchanged and returns
 * the milliseconds until enough tokens will be available (>= 1). */
int64_t tbucket_take(struct tbucket *b, const struct tbucket_rule *rule, int64_t now_ms,
                     double cost);

#endif
