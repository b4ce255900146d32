/* hist.c - log-linear latency histogram (see cb.h). Recording is a few instructions and no
 * allocation; merging two histograms is adding their arrays. */
#include "cb.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * CB_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    unsigned shift = msb - 6;                          /* v >> shift is in [64, 128) */
    unsigned idx = CB_HIST_SUB * (shift + 1) + (unsigned)(v >> shift) - CB_HIST_SUB;
    return idx < CB_HIST_BUCKETS ? idx : CB_HIST_BUCKETS - 1;
}

/* Largest value that lands in bucket idx. */
static uint64_t bucket_top(unsigned idx)
{
    if (idx < 2 * CB_HIST_SUB)
        return idx;
    unsigned shift = idx / CB_HIST_SUB - 1;
    uint64_t base = (uint64_t)(idx % CB_HIST_SUB + CB_HIST_SUB) << shift;
    return base + ((uint64_t)1 << shift) - 1;
}

void cb_hist_add(struct cb_hist *h, uint64_t v)
{
    h->count[bucket_of(v)]++;
    h->total++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

void cb_hist_merge(struct cb_hist *dst, const struct cb_hist *src)
{
    for (unsigned i = 0; i < CB_HIST_BUCKETS; i++)
        dst->count[i] += src->count[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t cb_hist_pct(const struct cb_hist *h, double p)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < CB_HIST_BUCKETS; i++)
        total += h->count[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)total + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < CB_HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return h->max && top > h->max ? h->max : top;
        }
    }
    return h->max;
}
