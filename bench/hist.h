/* hist: a log-bucketed latency histogram (64 sub-buckets per power of two, so a percentile is
 * within 1.6% of the true value) that costs one array increment per sample and merges by
 * adding arrays. Values are nanoseconds. */
#ifndef MOONPOST_BENCH_HIST_H
#define MOONPOST_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min, max;
    uint64_t bucket[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, int64_t value);
void hist_merge(struct hist *into, const struct hist *from);

/* The value at quantile Q (0..1): the middle of the bucket holding it, clamped to [min, max].
 * 0 when the histogram is empty. */
uint64_t hist_quantile(const struct hist *h, double q);
double hist_mean(const struct hist *h);

/* Bucket index of a value and the smallest value of a bucket (exposed for the self-test). */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_low(unsigned idx);

#endif
