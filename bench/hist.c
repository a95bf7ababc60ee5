/* hist: log-bucketed histogram. */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB) return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

uint64_t hist_bucket_low(unsigned idx)
{
    if (idx < HIST_SUB) return idx;
    unsigned e = idx / HIST_SUB + HIST_SUB_BITS - 1;
    uint64_t sub = idx % HIST_SUB;
    return (HIST_SUB + sub) << (e - HIST_SUB_BITS);
}

static uint64_t bucket_width(unsigned idx)
{
    if (idx < HIST_SUB) return 1;
    unsigned e = idx / HIST_SUB + HIST_SUB_BITS - 1;
    return (uint64_t)1 << (e - HIST_SUB_BITS);
}

void hist_record(struct hist *h, int64_t value)
{
    uint64_t v = value < 0 ? 0 : (uint64_t)value;
    h->bucket[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    if (from->count == 0) return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->bucket[i] += from->bucket[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0) return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen < rank) continue;
        uint64_t v = hist_bucket_low(i) + bucket_width(i) / 2;
        if (v < h->min) v = h->min;
        if (v > h->max) v = h->max;
        return v;
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
