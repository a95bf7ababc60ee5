/* counters: the clock and the error counters every part uses. */
#include <time.h>

#include "bench.h"

int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void one_more_error(struct worker *w)
{
    atomic_fetch_add_explicit(&w->ctr.errors, 1, memory_order_relaxed);
}

void count_res_error(struct worker *w, int code)
{
    if (code >= 0 && code < BENCH_CODES)
        w->ctr.res_err[code]++;
    else
        w->ctr.other_err++;
    one_more_error(w);
}

void count_bye(struct worker *w, int code)
{
    if (code >= 0 && code < BENCH_CODES)
        w->ctr.bye[code]++;
    else
        w->ctr.other_err++;
    one_more_error(w);
}

void count_local(struct worker *w, enum local_error e)
{
    w->ctr.local[e]++;
    one_more_error(w);
}
