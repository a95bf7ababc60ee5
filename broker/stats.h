/* stats: counters of the loop thread, plain increments, read by /metrics and admin.stats. */
#ifndef MOONPOST_STATS_H
#define MOONPOST_STATS_H

#include <stdint.h>

#define STATS_CODES 12 /* 200 400 401 403 404 408 409 413 429 500 503 507 */
#define STATS_LATENCY_BUCKETS 16

struct stats {
    uint64_t connections_total;
    uint64_t connections_rejected_total;
    uint64_t frames_in_total;
    uint64_t frames_out_total;
    uint64_t bytes_in_total;
    uint64_t bytes_out_total;
    uint64_t malformed_frames_total;
    uint64_t replies_total[STATS_CODES];
    uint64_t slow_consumers_total;
    uint64_t output_budget_drops_total; /* slow readers dropped for output_budget (also above) */
    uint64_t rate_limited_total;        /* requests refused 429 for request_rate */
    uint64_t http_rejected_total;       /* HTTP connections refused at http_max_connections */
    uint64_t idle_timeouts_total;
    uint64_t handler_errors_total;
    uint64_t requests_busy_total; /* refused 503: requests in flight hold their memory budget */
    uint64_t worker_jobs_total;         /* jobs the worker threads ran */
    uint64_t worker_jobs_dropped_total; /* skipped: nobody waited for them any more */
    uint64_t worker_jobs_refused_total; /* not queued: the queue or the address's share was full */
    uint64_t broadcast_deliveries_total;
    uint64_t deliveries_total;
    uint64_t mid_regressions_total; /* live mailbox pushes whose mid was not above the last */
    uint64_t resyncs_total;         /* sessions that read their mailbox again (a gap in mids) */
    uint64_t live_held_total;       /* live messages held until an earlier one was pushed */
    uint64_t bus_messages_total;    /* messages received on the node channels */
    uint64_t cluster_kicks_total;   /* sessions closed because their user logged in elsewhere */
    uint64_t redis_commands_total;
    uint64_t redis_errors_total;
    uint64_t redis_reconnects_total;
    uint64_t redis_redirects_moved_total; /* a cluster's MOVED followed */
    uint64_t redis_redirects_ask_total;   /* a cluster's ASK followed */
    uint64_t redis_redirects_tryagain_total; /* a cluster's TRYAGAIN: sent again later */
    uint64_t redis_slot_map_reads_total;  /* CLUSTER SLOTS answered */
    uint64_t redis_wait_failures_total;   /* writes answered 503: too few replicas confirmed */
    uint64_t reloads_total;
    uint64_t reload_failures_total;
    uint64_t handler_latency_us_sum;
    uint64_t handler_latency_count;
    uint64_t handler_latency_buckets[STATS_LATENCY_BUCKETS]; /* <= 2^i * 50 us */
    uint64_t redis_latency_us_sum;
    uint64_t redis_latency_count;
    uint64_t redis_latency_buckets[STATS_LATENCY_BUCKETS];
};

/* The loop thread's counters, one set per process: every module counts into it without
 * knowing the broker's state (plain increments, never from the worker threads). */
extern struct stats stats;

extern const int stats_codes[STATS_CODES];

void stats_count_reply(struct stats *s, int code);
void stats_observe(uint64_t buckets[STATS_LATENCY_BUCKETS], uint64_t *sum, uint64_t *count,
                   uint64_t us);
/* Upper bound in microseconds of latency bucket I. */
uint64_t stats_bucket_bound_us(int i);

#endif
