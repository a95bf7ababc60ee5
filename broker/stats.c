/* stats: the code table and the latency histogram of the loop thread's counters. */
#include "stats.h"

struct stats stats;

const int stats_codes[STATS_CODES] = {200, 400, 401, 403, 404, 408, 409, 413, 429, 500, 503, 507};

void stats_count_reply(struct stats *s, int code)
{
    for (int i = 0; i < STATS_CODES; i++) {
        if (stats_codes[i] == code) {
            s->replies_total[i]++;
            return;
        }
    }
}

uint64_t stats_bucket_bound_us(int i)
{
    return (uint64_t)50 << i;
}

void stats_observe(uint64_t buckets[STATS_LATENCY_BUCKETS], uint64_t *sum, uint64_t *count,
                   uint64_t us)
{
    *sum += us;
    (*count)++;
    for (int i = 0; i < STATS_LATENCY_BUCKETS; i++) {
        if (us <= stats_bucket_bound_us(i)) {
            buckets[i]++;
            return;
        }
    }
}
