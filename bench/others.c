/* others: summing /proc/PID/stat over every other process. */
#include "others.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procstat.h"

#define PF_KTHREAD 0x00200000u

struct others_proc {
    int pid;
    unsigned long long start;
    double cpu; /* utime + stime + cutime + cstime, seconds */
};

/* Reads one process; 0 when it is a user-space process. */
static int read_proc(int pid, struct others_proc *p)
{
    long long f[STAT_STARTTIME + 1];
    if (procstat_read_stat(pid, f, STAT_STARTTIME + 1) < STAT_STARTTIME) return -1;
    if ((unsigned long long)f[STAT_FLAGS] & PF_KTHREAD) return -1; /* softirq threads work for us */
    p->pid = pid;
    p->start = (unsigned long long)f[STAT_STARTTIME];
    p->cpu = (double)(f[STAT_UTIME] + f[STAT_STIME] + f[STAT_CUTIME] + f[STAT_CSTIME]) /
             (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* A /proc entry that is a process id, else 0. */
static int pid_of(const char *name)
{
    char *end;
    long v = strtol(name, &end, 10);
    return (end != name && *end == '\0' && v > 0 && v <= INT32_MAX) ? (int)v : 0;
}

static int excluded(const struct others_sample *s, int pid)
{
    for (int i = 0; i < OTHERS_EXCLUDE_MAX; i++)
        if (s->exclude[i] == pid) return 1;
    return 0;
}

/* Every process but the excluded ones, in /proc order (ascending pids). */
static int snapshot(const struct others_sample *s, struct others_proc **out)
{
    DIR *d = opendir("/proc");
    if (d == NULL) return -1;
    int cap = 256, n = 0;
    struct others_proc *v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d)) != NULL) {
        int pid = pid_of(e->d_name);
        if (pid == 0 || excluded(s, pid)) continue;
        if (n == cap) {
            struct others_proc *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (nv == NULL) break;
            v = nv;
        }
        if (read_proc(pid, &v[n]) == 0) n++;
    }
    closedir(d);
    *out = v;
    return v ? n : -1;
}

void others_begin(struct others_sample *s, const int *pids, int n, int64_t now)
{
    memset(s->exclude, 0, sizeof s->exclude);
    s->exclude[0] = getpid();
    for (int i = 0; i < n && i + 1 < OTHERS_EXCLUDE_MAX; i++)
        s->exclude[i + 1] = pids[i];
    s->count = snapshot(s, &s->procs);
    s->t0 = now;
    s->percent = -1;
}

static const struct others_proc *find(const struct others_proc *v, int n, int pid)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v[mid].pid == pid) return &v[mid];
        if (v[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static int by_pid(const void *a, const void *b)
{
    return ((const struct others_proc *)a)->pid - ((const struct others_proc *)b)->pid;
}

static int same(const struct others_proc *a, const struct others_proc *b)
{
    return a != NULL && b != NULL && a->start == b->start;
}

/* Live processes add what they used; one born in the window adds all of it; one that died in
 * the window gave all of its time to the parent that reaped it, so what it had used before the
 * window is taken back out. */
void others_end(struct others_sample *s, int64_t now)
{
    if (s->count < 0 || now <= s->t0) return;
    struct others_proc *after;
    int n = snapshot(s, &after);
    if (n < 0) return;
    qsort(s->procs, (size_t)s->count, sizeof *s->procs, by_pid);
    qsort(after, (size_t)n, sizeof *after, by_pid);
    double used = 0;
    for (int i = 0; i < n; i++) {
        const struct others_proc *before = find(s->procs, s->count, after[i].pid);
        used += after[i].cpu - (same(before, &after[i]) ? before->cpu : 0);
    }
    for (int i = 0; i < s->count; i++)
        if (!same(find(after, n, s->procs[i].pid), &s->procs[i])) used -= s->procs[i].cpu;
    free(after);
    free(s->procs);
    s->procs = NULL;
    s->percent = used < 0 ? 0 : 100.0 * used / ((double)(now - s->t0) / 1e9);
}
