/* others: CPU used by every other process on the machine during the measured window (other
 * people's builds and tests on a shared machine), so that a disturbed run can be told apart. */
#ifndef MOONPOST_BENCH_OTHERS_H
#define MOONPOST_BENCH_OTHERS_H

#include <stdint.h>

#define OTHERS_EXCLUDE_MAX 20

struct others_sample {
    int exclude[OTHERS_EXCLUDE_MAX]; /* this process, the brokers, redis (0 = unused) */
    int count;
    struct others_proc *procs;
    int64_t t0;
    double percent; /* of one core; -1 when unknown */
};

/* Snapshots every user-space process but this one and the N in PIDS (the servers measured). */
void others_begin(struct others_sample *s, const int *pids, int n, int64_t now);

/* CPU those processes used since others_begin, children they reaped included (so compilers that
 * came and went are counted through their parents), in % of one core. */
void others_end(struct others_sample *s, int64_t now);

#endif
