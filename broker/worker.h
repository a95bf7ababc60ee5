/* worker: a small thread pool for CPU-heavy work (password hashing). Jobs wait in a bounded
 * queue on the loop thread, taken round-robin across their owners (client addresses), and run
 * on a worker thread; their completion runs on the loop thread, woken through one eventfd. */
#ifndef MOONPOST_WORKER_H
#define MOONPOST_WORKER_H

#include <stdint.h>

struct event_base;

#define WORKER_OWNER_MAX 64 /* bytes of an owner key (an address as text), longer ones are cut */

struct worker_job;
typedef void (*worker_run_fn)(struct worker_job *job);   /* on a worker thread */
typedef void (*worker_done_fn)(struct worker_job *job);  /* on the loop thread */
typedef int (*worker_wanted_fn)(struct worker_job *job); /* on the loop thread */

enum worker_cancel { WORKER_RAN = 0, WORKER_STOPPED, WORKER_UNWANTED };

struct worker_job {
    worker_run_fn run;
    worker_done_fn done;
    worker_wanted_fn wanted;      /* NULL or: asked when the job's turn comes; 0 = skip the run */
    enum worker_cancel cancelled; /* why the job did not run, or WORKER_RAN */
    int64_t run_us;               /* private to the pool */
    struct worker_job *next;      /* private to the pool */
};

enum worker_status { WORKER_OK = 0, WORKER_NO_THREADS = -1, WORKER_FULL = -2 };

/* Starts THREADS threads, waking the loop of BASE when jobs are done; at most QUEUE_MAX jobs
 * wait in all, PER_OWNER_MAX per owner, and none when the queue would take more than
 * MAX_WAIT_MS to reach it (0 = no such bound). */
int worker_start(struct event_base *base, int threads, int queue_max, int per_owner_max,
                 int max_wait_ms);
/* Stops the threads; completes every job still queued with cancelled = WORKER_STOPPED. */
void worker_stop(void);
/* Queues JOB (run, done and wanted set by the caller) for OWNER (the client's address; "" for
 * the broker's own work). WORKER_FULL when the queue or the owner's share of it is full, or
 * the job would wait too long. */
enum worker_status worker_submit(struct worker_job *job, const char *owner);
/* Seconds a job queued now would likely wait (at least 1): what a refused client is told. */
int worker_retry_after(void);
/* Jobs waiting for a thread. */
int worker_queued(void);

#endif
