/* clock: the time conversions and the monotonic clock that the broker's modules share. */
#ifndef MOONPOST_CLOCK_H
#define MOONPOST_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* SECONDS (a duration from the config, may have a fraction) as a timeval for libevent. */
static inline struct timeval clock_timeval(double seconds)
{
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
    return tv;
}

/* Microseconds of a clock that never goes back (for intervals, not dates). */
static inline int64_t clock_monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
