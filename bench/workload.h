/* workload: what the clients do once they are logged in. One file per workload; the storms
 * and idle need no sending and use the core alone. */
#ifndef MOONPOST_BENCH_WORKLOAD_H
#define MOONPOST_BENCH_WORKLOAD_H

#include <stdint.h>

#include "bench.h"
#include "payload.h"

struct workload {
    const char *name;
    /* Sends what is due (called on every loop pass of the measured phase). */
    void (*tick)(struct worker *w, int64_t now);
    /* A message of this run arrived: frees its slot in the sender's window. */
    void (*delivered)(struct worker *w, const struct payload *p, int64_t now);
    /* A request failed with CODE: its message will never arrive. */
    void (*failed)(struct worker *w, struct client *c, int code);
    /* Messages still travelling (the drain phase waits for 0). */
    long (*in_flight)(void);
};

extern const struct workload workload_private;
extern const struct workload workload_broadcast;
extern const struct workload workload_room; /* wl_broadcast.c: a fan-out with a room's size */
extern const struct workload workload_none; /* idle, login, resume */

const struct workload *workload_for(enum workload_kind kind);

/* Shared by the sending workloads: the window of sender S, and its release. */
int sender_has_room(int s);
void sender_took(int s, int64_t now);
void sender_release(int s, int64_t now);
/* Declares the window of every sender whose messages stopped arriving for --lost-after lost. */
void sender_check_lost(struct worker *w, struct client *c, int s, int64_t now);
long senders_in_flight(void);

/* How many sends the --rate schedule allows now on this worker (0 without --rate: unlimited
 * is returned as -1). */
long rate_due(struct worker *w, int64_t now);

/* When the next send under --rate is due on this worker (CLOCK_MONOTONIC ns); 0 without --rate. */
int64_t rate_next_due(const struct worker *w);

/* Writes the benchmark payload of a new message from C. */
void payload_for(struct client *c, uint8_t *body, int64_t now);

#endif
