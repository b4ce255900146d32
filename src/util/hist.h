/* hist.h - a latency histogram with fixed buckets, lock-free (relaxed atomics), for /metrics.
 * One set of bucket bounds for every histogram chatd exports (250 us .. 2.5 s, then +Inf), so
 * dashboards can compare them. */
#ifndef CD_HIST_H
#define CD_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define HIST_NBUCKETS 14 /* the bounds below + Inf */

/* Upper bounds of the buckets, microseconds (the last bucket, +Inf, has none). */
extern const uint64_t hist_bounds_us[HIST_NBUCKETS - 1];

struct hist {
    _Atomic uint64_t bucket[HIST_NBUCKETS]; /* per bucket; cumulated when rendered */
    _Atomic uint64_t sum_us, count;
};

/* Record one observation of us microseconds. Any thread; three relaxed atomic adds. */
void hist_add(struct hist *h, uint64_t us);

#endif
