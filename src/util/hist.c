#include "util/hist.h"

const uint64_t hist_bounds_us[HIST_NBUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

void hist_add(struct hist *h, uint64_t us)
{
    int b = HIST_NBUCKETS - 1;
    for (int i = 0; i < HIST_NBUCKETS - 1; i++)
        if (us <= hist_bounds_us[i]) {
            b = i;
            break;
        }
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}
