#include "util/tbucket.h"

#include <math.h>

void tbucket_init(struct tbucket *b, const struct tbucket_rule *rule, int64_t now_ms)
{
    b->tokens = rule->burst;
    b->last_ms = now_ms;
}

int64_t tbucket_take(struct tbucket *b, const struct tbucket_rule *rule, int64_t now_ms,
                     double cost)
{
    double tokens;
    int64_t wait;

    if (rule->rate <= 0) return 0;
    tokens = b->tokens;
    if (now_ms > b->last_ms) {
        tokens += (double)(now_ms - b->last_ms) * rule->rate / 1000.0;
        if (tokens > rule->burst) tokens = rule->burst;
    }
    if (tokens >= cost) {
        b->tokens = tokens - cost;
        if (now_ms > b->last_ms) b->last_ms = now_ms;
        return 0;
    }
    if (cost > rule->burst) return INT64_MAX; /* can never pass */
    wait = (int64_t)ceil((cost - tokens) * 1000.0 / rule->rate);
    return wait < 1 ? 1 : wait;
}
