/* rng: a per-thread xorshift64* generator; the benchmark needs speed, not quality. */
#ifndef MOONPOST_BENCH_RNG_H
#define MOONPOST_BENCH_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) (n > 0), with negligible bias for the n a benchmark uses. */
static inline uint32_t rng_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)(((rng_next(state) >> 32) * (uint64_t)n) >> 32);
}

#endif
