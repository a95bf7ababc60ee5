/* worker: a small thread pool for CPU-heavy work (password hashing). Jobs run on a worker
 * thread; their completion runs on the loop thread, woken through one eventfd. */
#ifndef MOONPOST_WORKER_H
#define MOONPOST_WORKER_H

struct worker_job;
typedef void (*worker_run_fn)(struct worker_job *job);  /* on a worker thread */
typedef void (*worker_done_fn)(struct worker_job *job); /* on the loop thread */

struct worker_job {
    worker_run_fn run;
    worker_done_fn done;
    int cancelled; /* set when the pool stopped before the job ran */
    struct worker_job *next;
};

int worker_start(int threads);
/* Stops the threads; completes every job still queued with cancelled = 1. */
void worker_stop(void);
/* Queues JOB (run and done set by the caller). Returns 0 or -1. */
int worker_submit(struct worker_job *job);

#endif
