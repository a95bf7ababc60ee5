/* procstat: /proc/PID/status and /proc/PID/stat readers. */
#include "procstat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void proc_path(char *out, size_t len, int pid, const char *file)
{
    if (pid == 0)
        snprintf(out, len, "/proc/self/%s", file);
    else
        snprintf(out, len, "/proc/%d/%s", pid, file);
}

long procstat_rss_kib(int pid)
{
    char path[64], line[256];
    proc_path(path, sizeof path, pid, "status");
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

int procstat_read_stat(int pid, long long *f, int max)
{
    char path[64], line[1024];
    proc_path(path, sizeof path, pid, "stat");
    FILE *file = fopen(path, "r");
    if (file == NULL) return -1;
    size_t n = fread(line, 1, sizeof line - 1, file);
    fclose(file);
    line[n] = '\0';
    /* the command may hold spaces and parentheses: the fields start after the last ')' */
    char *p = strrchr(line, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0') return -1;
    p += 3; /* ") S": past the state */
    int k = 3;
    while (k + 1 < max) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno != 0) break;
        f[++k] = v;
        p = end;
    }
    return k > 3 ? k : -1;
}

double procstat_cpu_seconds(int pid)
{
    long long f[STAT_STIME + 1];
    if (procstat_read_stat(pid, f, STAT_STIME + 1) < STAT_STIME) return -1;
    return (double)(f[STAT_UTIME] + f[STAT_STIME]) / (double)sysconf(_SC_CLK_TCK);
}

double procstat_system_busy_seconds(void)
{
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL) return -1;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    if (ok == NULL || strncmp(line, "cpu ", 4) != 0) return -1;
    /* user nice system idle iowait ...: idle and iowait are the 4th and 5th */
    unsigned long long v[5];
    char *p = line + 4;
    for (int i = 0; i < 5; i++) {
        char *end;
        errno = 0;
        v[i] = strtoull(p, &end, 10);
        if (end == p || errno != 0) return -1;
        p = end;
    }
    /* Busy = wall time of every core minus idle and iowait. Idle is measured precisely by the
     * tickless kernel, while the busy fields are sampled at ticks and miss work done between
     * them on a mostly idle machine. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    double idle = (double)(v[3] + v[4]) / (double)sysconf(_SC_CLK_TCK);
    return wall * (double)sysconf(_SC_NPROCESSORS_ONLN) - idle;
}

static double cpu_seconds(int pid)
{
    return pid < 0 ? procstat_system_busy_seconds() : procstat_cpu_seconds(pid);
}

void cpu_sample_begin(struct cpu_sample *s, int pid, int64_t now)
{
    s->pid = pid;
    s->cpu0 = cpu_seconds(pid);
    s->t0 = now;
    s->percent = -1;
}

void cpu_sample_end(struct cpu_sample *s, int64_t now)
{
    double cpu1 = cpu_seconds(s->pid);
    if (s->cpu0 < 0 || cpu1 < 0 || now <= s->t0) return;
    s->percent = 100.0 * (cpu1 - s->cpu0) / ((double)(now - s->t0) / 1e9);
}
