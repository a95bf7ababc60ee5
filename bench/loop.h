/* loop: one worker thread: an epoll loop over its slice of the clients, following the phase the
 * main thread sets. */
#ifndef MOONPOST_BENCH_LOOP_H
#define MOONPOST_BENCH_LOOP_H

#include "bench.h"

/* Allocates the worker's epoll set and scratch buffers. Returns 0 or -1. */
int worker_init(struct worker *w, int id);
void worker_free(struct worker *w);

/* The thread body. */
void *worker_main(void *arg);

/* Set by a worker once it has closed every client after PH_CLOSE began. */
extern atomic_int workers_closed;
extern atomic_int workers_draining; /* workers that entered the drain phase */

#endif
