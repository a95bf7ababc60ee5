/* procstat: what /proc says about a process: resident memory and CPU time used. */
#ifndef MOONPOST_BENCH_PROCSTAT_H
#define MOONPOST_BENCH_PROCSTAT_H

#include <stdint.h>

/* VmRSS of PID in KiB (from /proc/PID/status), or -1. PID 0 means this process. */
long procstat_rss_kib(int pid);

/* The numeric fields of /proc/PID/stat (PID 0: this process): F[k] is field k of proc(5), for
 * 4 <= k < MAX (the fields after the command and the state; F[0..3] are left alone). Returns the
 * highest field read, or -1. */
int procstat_read_stat(int pid, long long *f, int max);
#define STAT_FLAGS 9
#define STAT_UTIME 14
#define STAT_STIME 15
#define STAT_CUTIME 16
#define STAT_CSTIME 17
#define STAT_STARTTIME 22

/* User + system CPU time of PID in seconds (utime + stime of /proc/PID/stat), or -1. */
double procstat_cpu_seconds(int pid);

/* Busy CPU time of the whole machine in seconds, every core summed, counted from an arbitrary
 * origin (only differences mean something): everything but idle and iowait in /proc/stat, so
 * softirq time spent on loopback TCP is in. -1 when unknown. */
double procstat_system_busy_seconds(void);

/* A CPU-use sample over an interval: cpu seconds and wall nanoseconds at its start. */
struct cpu_sample {
    int pid; /* 0: this process, -1: the whole machine */
    double cpu0;
    int64_t t0;
    double percent; /* of one core, over the interval; -1 when unknown */
};

void cpu_sample_begin(struct cpu_sample *s, int pid, int64_t now);
void cpu_sample_end(struct cpu_sample *s, int64_t now);

#endif
