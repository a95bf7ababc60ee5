/* report: the result of a run, summed over the workers, as a human table or as JSON. */
#ifndef MOONPOST_BENCH_REPORT_H
#define MOONPOST_BENCH_REPORT_H

#include <stdio.h>

#include "bench.h"
#include "others.h"
#include "procstat.h"

struct result {
    double measured_s; /* the measured window (idle: the hold; storms: until all were back) */
    uint64_t ready, failed, setup_missing;
    uint64_t sent, sent_window, delivered, delivered_window, stale, from_mailbox, acks;
    uint64_t res_err[BENCH_CODES], bye[BENCH_CODES], local[LERR_COUNT], other_err;
    uint64_t errors_total;
    struct hist latency, reply, setup;
    long rss_before_kib, rss_after_kib; /* the brokers' sum, idle workload */
    uint64_t storm_back;
    double all_back_ms;
    /* CLOCK_MONOTONIC, the same clock in every process of the machine: the runs of several
     * processes are put together with these */
    int64_t t_measure_start, t_storm_start, t_last_back;
    struct cpu_sample cpu_broker[BENCH_MAX_BROKERS], cpu_redis, cpu_self, cpu_system;
    struct others_sample cpu_others;
    int hard_stop;
};

/* The brokers' CPU summed, in % of one core; -1 when not measured. */
double report_brokers_cpu(const struct result *r);

/* Adds every worker's counters and histograms into R. */
void report_collect(struct result *r);

void report_table(const struct result *r, FILE *out);
void report_json(const struct result *r, FILE *out);

/* One progress line (with \r) from the live atomics. */
void report_progress(const char *phase, double elapsed_s, FILE *out);

#endif
