/* phases: driving a run through its phases from the main thread. */
#include "phases.h"

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "barrier.h"
#include "loop.h"
#include "procstat.h"
#include "workload.h"

#define POLL_NS 20000000LL

volatile sig_atomic_t phases_interrupted;
static int64_t t_begin, hard_deadline, next_progress;
static struct result *result;

static const char *const phase_names[] = {"init",  "setup", "run", "drain",
                                          "close", "storm", "done"};

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

static void set_phase(enum phase ph)
{
    atomic_store(&run.phase, ph);
}

static uint64_t sum(size_t offset)
{
    uint64_t n = 0;
    for (int i = 0; i < run.opt.threads; i++)
        n += atomic_load((atomic_ullong *)((char *)&run.workers[i].ctr + offset));
    return n;
}
#define SUM(field) sum(offsetof(struct counters, field))

/* Sleeps one poll interval; prints progress; returns 0 when the run must end now. */
static int poll_once(void)
{
    sleep_ns(POLL_NS);
    int64_t now = bench_now();
    if (run.opt.progress && now >= next_progress) {
        report_progress(phase_names[atomic_load(&run.phase)], (double)(now - t_begin) / 1e9,
                        stderr);
        next_progress += 1000000000LL;
    }
    if (now >= hard_deadline) {
        result->hard_stop = 1;
        fprintf(stderr, "\nmoonpost-bench: hard stop after %.0f s\n", run.opt.hard_timeout);
        return 0;
    }
    return !phases_interrupted;
}

/* Waits until DONE() or DEADLINE; returns 0 when the run must end. */
static int wait_until(int (*done)(void), int64_t deadline)
{
    while (bench_now() < deadline) {
        if (done && done()) return 1;
        if (!poll_once()) return 0;
    }
    return 1;
}

static int all_set_up(void)
{
    return SUM(ready) + SUM(failed) >= (uint64_t)run.total;
}

static uint64_t failed_before_storm;
static int all_back(void)
{
    return SUM(back) + (SUM(failed) - failed_before_storm) >= (uint64_t)run.total;
}

static int all_closed(void)
{
    return atomic_load(&workers_closed) >= run.opt.threads;
}

/* Every worker has seen the drain begin (a worker sends while it still runs the run phase's
 * loop pass), and no message is in flight. */
static int drained(void)
{
    const struct workload *wl = workload_for(run.opt.workload);
    if (atomic_load(&workers_draining) < run.opt.threads) return 0;
    return wl->in_flight == NULL || wl->in_flight() == 0;
}

static int64_t after(double seconds)
{
    return bench_now() + (int64_t)(seconds * 1e9);
}

static void cpu_begin(struct result *r)
{
    const struct options *o = &run.opt;
    int64_t now = bench_now();
    int servers[BENCH_MAX_BROKERS + 1];
    int n = 0;
    for (int i = 0; i < o->brokers; i++)
        servers[n++] = o->broker_pid[i];
    if (o->redis_pid) servers[n++] = o->redis_pid;
    cpu_sample_begin(&r->cpu_self, 0, now);
    cpu_sample_begin(&r->cpu_system, -1, now);
    others_begin(&r->cpu_others, servers, n, now);
    for (int i = 0; i < o->brokers; i++)
        cpu_sample_begin(&r->cpu_broker[i], o->broker_pid[i], now);
    cpu_sample_begin(&r->cpu_redis, o->redis_pid, now);
    if (!o->redis_pid) r->cpu_redis.cpu0 = -1;
}

static void cpu_end(struct result *r)
{
    const struct options *o = &run.opt;
    int64_t now = bench_now();
    cpu_sample_end(&r->cpu_self, now);
    cpu_sample_end(&r->cpu_system, now);
    others_end(&r->cpu_others, now);
    for (int i = 0; i < o->brokers; i++)
        cpu_sample_end(&r->cpu_broker[i], now);
    if (o->redis_pid) cpu_sample_end(&r->cpu_redis, now);
}

/* The brokers' VmRSS summed, or -1 without --broker-pid (or when one is gone). */
static long brokers_rss_kib(void)
{
    long sum = run.opt.brokers ? 0 : -1;
    for (int i = 0; i < run.opt.brokers && sum >= 0; i++) {
        long kib = procstat_rss_kib(run.opt.broker_pid[i]);
        sum = kib < 0 ? -1 : sum + kib;
    }
    return sum;
}

static int barrier_go(void)
{
    return barrier_open(run.opt.barrier);
}

/* --barrier: says this process is ready and waits for the go (at most --setup-timeout).
 * Returns 0 when the run must end. */
static int pass_barrier(struct result *r)
{
    if (run.opt.barrier == NULL) return 1;
    if (barrier_arrive(run.opt.barrier) != 0) {
        r->local[LERR_BARRIER]++;
        return 0;
    }
    if (!wait_until(barrier_go, after(run.opt.setup_timeout))) return 0;
    if (barrier_go()) return 1;
    fprintf(stderr, "moonpost-bench: no go in %s within %.0f s\n", run.opt.barrier,
            run.opt.setup_timeout);
    r->local[LERR_BARRIER]++;
    return 0;
}

static int setup(struct result *r)
{
    set_phase(PH_SETUP);
    int go = wait_until(all_set_up, after(run.opt.setup_timeout));
    uint64_t done = SUM(ready) + SUM(failed);
    if (done < (uint64_t)run.total) {
        r->setup_missing = (uint64_t)run.total - done;
        r->local[LERR_SETUP] += r->setup_missing;
    }
    return go;
}

static void measure(struct result *r)
{
    if (!pass_barrier(r)) return;
    int64_t now = bench_now();
    int64_t start = now + (int64_t)(run.opt.warmup * 1e9);
    int64_t end = start + (int64_t)(run.opt.duration * 1e9);
    atomic_store(&run.t_run_start, now);
    atomic_store(&run.t_measure_start, start);
    atomic_store(&run.t_measure_end, end);
    r->t_measure_start = start;
    set_phase(PH_RUN);
    if (!wait_until(NULL, start)) return;
    cpu_begin(r);
    int go = wait_until(NULL, end);
    cpu_end(r);
    r->measured_s = (double)(bench_now() < end ? bench_now() - start : end - start) / 1e9;
    set_phase(PH_DRAIN);
    if (go) wait_until(drained, after(run.opt.drain));
}

static void hold_idle(struct result *r)
{
    if (!pass_barrier(r)) return;
    if (!wait_until(NULL, after(run.opt.settle))) return;
    cpu_begin(r);
    int64_t start = bench_now();
    wait_until(NULL, after(run.opt.duration));
    cpu_end(r);
    r->measured_s = (double)(bench_now() - start) / 1e9;
    r->rss_after_kib = brokers_rss_kib();
}

static void storm(struct result *r)
{
    int prep = !(run.opt.workload == WL_LOGIN && run.opt.no_register);
    if (prep && !setup(r)) return;
    if (prep) {
        set_phase(PH_CLOSE);
        if (!wait_until(all_closed, after(run.opt.setup_timeout))) return;
        if (!wait_until(NULL, after(run.opt.settle))) return; /* the broker sees the closes */
    }
    if (!pass_barrier(r)) return;
    failed_before_storm = SUM(failed);
    int64_t start = bench_now();
    r->t_storm_start = start;
    atomic_store(&run.t_storm_start, start);
    atomic_store(&run.t_last_back, start);
    cpu_begin(r);
    set_phase(PH_STORM);
    wait_until(all_back, start + (int64_t)(run.opt.duration * 1e9));
    cpu_end(r);
    uint64_t back = SUM(back);
    r->measured_s = (double)(bench_now() - start) / 1e9;
    r->all_back_ms = -1;
    r->t_last_back = atomic_load(&run.t_last_back);
    if (back >= (uint64_t)run.total)
        r->all_back_ms = (double)(atomic_load(&run.t_last_back) - start) / 1e6;
    uint64_t failed = SUM(failed) - failed_before_storm;
    if (back + failed < (uint64_t)run.total) r->local[LERR_STORM] += run.total - back - failed;
}

void phases_run(struct result *r)
{
    result = r;
    t_begin = bench_now();
    next_progress = t_begin + 1000000000LL;
    hard_deadline = t_begin + (int64_t)(run.opt.hard_timeout * 1e9);
    r->rss_before_kib = brokers_rss_kib();
    r->rss_after_kib = -1;
    r->all_back_ms = -1;
    r->cpu_self.percent = r->cpu_redis.percent = -1;
    for (int i = 0; i < BENCH_MAX_BROKERS; i++)
        r->cpu_broker[i].percent = -1;
    r->cpu_system.percent = -1;
    r->cpu_others.percent = -1;
    switch (run.opt.workload) {
    case WL_PRIVATE:
    case WL_BROADCAST:
    case WL_ROOM:
        if (setup(r)) measure(r);
        break;
    case WL_IDLE:
        if (setup(r)) hold_idle(r);
        break;
    case WL_LOGIN:
    case WL_RESUME:
        storm(r);
        break;
    }
    set_phase(PH_DONE);
    if (run.opt.progress) {
        report_progress("done", (double)(bench_now() - t_begin) / 1e9, stderr);
        fputc('\n', stderr);
    }
}
