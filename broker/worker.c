/* worker: pthreads fed one job at a time from a fair queue the loop thread owns, and a
 * completion queue drained on the loop.
 *
 * Jobs wait on the loop thread, not in the threads' queue, so that whether a job is still
 * wanted (its client still connected) is asked at the moment it would start: a job of a client
 * that left costs nothing. Waiting jobs are grouped by owner (client address) and owners take
 * turns, so a flood from one address delays others by at most one job per turn. */
#include "worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "stats.h"
#include "clock.h"
#include "log.h"

#define OWNER_BUCKETS 256

struct queue {
    struct worker_job *head, *tail;
};

/* An owner with jobs waiting; freed when its last job leaves the queue. */
struct owner {
    char key[WORKER_OWNER_MAX];
    struct queue jobs;
    int queued;
    struct owner *next_turn;   /* the round-robin list of owners with jobs */
    struct owner *next_bucket; /* hash chain */
};

static struct {
    pthread_t *threads;
    int count;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct queue todo; /* handed to the threads: at most one job per idle thread */
    struct queue done;
    int stopping;
    int wake_fd;
    struct event *wake;
    /* loop thread only */
    struct owner *buckets[OWNER_BUCKETS];
    struct owner *turn_head, *turn_tail;
    int queued, running;
    int queue_max, per_owner_max;
    int64_t max_wait_us;
    int64_t avg_run_us; /* moving average of a job's run time, for retry_after */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER, .wake_fd = -1};

static void push(struct queue *q, struct worker_job *job)
{
    job->next = NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
}

static struct worker_job *pop(struct queue *q)
{
    struct worker_job *job = q->head;
    if (job == NULL) return NULL;
    q->head = job->next;
    if (q->head == NULL) q->tail = NULL;
    return job;
}

static struct worker_job *take_all(struct queue *q)
{
    struct worker_job *all = q->head;
    q->head = q->tail = NULL;
    return all;
}

/* ---- the threads ---- */

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stopping && pool.todo.head == NULL) pthread_cond_wait(&pool.ready, &pool.lock);
        if (pool.stopping) break;
        struct worker_job *job = pop(&pool.todo);
        pthread_mutex_unlock(&pool.lock);
        int64_t start = clock_monotonic_us();
        job->run(job);
        job->run_us = clock_monotonic_us() - start;
        pthread_mutex_lock(&pool.lock);
        push(&pool.done, job);
        uint64_t one = 1;
        if (write(pool.wake_fd, &one, sizeof one) < 0) { /* the counter only saturates */ }
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* ---- the fair queue (loop thread) ---- */

static unsigned owner_bucket(const char *key)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const char *c = key; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    return h % OWNER_BUCKETS;
}

/* Puts O at the back of the line of owners taking turns. */
static void take_turn(struct owner *o)
{
    if (pool.turn_tail)
        pool.turn_tail->next_turn = o;
    else
        pool.turn_head = o;
    pool.turn_tail = o;
}

static struct owner *owner_find(const char *key, int create)
{
    struct owner **slot = &pool.buckets[owner_bucket(key)];
    for (struct owner *o = *slot; o != NULL; o = o->next_bucket)
        if (strcmp(o->key, key) == 0) return o;
    if (!create) return NULL;
    struct owner *o = calloc(1, sizeof *o);
    if (o == NULL) return NULL;
    snprintf(o->key, sizeof o->key, "%s", key);
    o->next_bucket = *slot;
    *slot = o;
    take_turn(o);
    return o;
}

static void owner_free(struct owner *o)
{
    struct owner **slot = &pool.buckets[owner_bucket(o->key)];
    while (*slot != o) slot = &(*slot)->next_bucket;
    *slot = o->next_bucket;
    free(o);
}

/* The first job of the owner whose turn it is; the owner goes to the back of the line. */
static struct worker_job *next_in_turn(void)
{
    struct owner *o = pool.turn_head;
    if (o == NULL) return NULL;
    pool.turn_head = o->next_turn;
    if (pool.turn_head == NULL) pool.turn_tail = NULL;
    o->next_turn = NULL;
    struct worker_job *job = pop(&o->jobs);
    o->queued--;
    pool.queued--;
    if (o->queued == 0)
        owner_free(o);
    else
        take_turn(o);
    return job;
}

static void complete(struct worker_job *list)
{
    while (list != NULL) {
        struct worker_job *next = list->next;
        list->done(list);
        list = next;
    }
}

/* Hands waiting jobs to idle threads. Those nobody wants any more complete unrun, from the
 * wake event like the others: never from here, which runs inside worker_submit (a completion
 * resumes a coroutine, perhaps the very one submitting). */
static void feed(void)
{
    int unwanted = 0;
    while (pool.running < pool.count && pool.queued > 0) {
        struct worker_job *job = next_in_turn();
        int wanted = job->wanted == NULL || job->wanted(job);
        if (!wanted) {
            job->cancelled = WORKER_UNWANTED;
            stats.worker_jobs_dropped_total++;
            unwanted = 1;
        } else {
            pool.running++;
        }
        pthread_mutex_lock(&pool.lock);
        if (wanted) {
            push(&pool.todo, job);
            pthread_cond_signal(&pool.ready);
        } else {
            push(&pool.done, job);
        }
        pthread_mutex_unlock(&pool.lock);
    }
    if (unwanted) event_active(pool.wake, EV_READ, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) { /* EAGAIN: another pass drained it */ }
    pthread_mutex_lock(&pool.lock);
    struct worker_job *list = take_all(&pool.done);
    pthread_mutex_unlock(&pool.lock);
    for (struct worker_job *j = list; j != NULL; j = j->next) {
        if (j->cancelled == WORKER_UNWANTED) continue; /* never ran */
        pool.running--;
        pool.avg_run_us += (j->run_us - pool.avg_run_us) / 8;
        stats.worker_jobs_total++;
    }
    feed(); /* before the completions, which run scripts: the threads need not wait for them */
    complete(list);
}

/* How long a job queued now would take to run: the jobs ahead of it at the average speed. */
static int64_t expected_wait_us(void)
{
    int threads = pool.count > 0 ? pool.count : 1;
    return (int64_t)(pool.queued + pool.running) * pool.avg_run_us / threads;
}

int worker_start(struct event_base *base, int threads, int queue_max, int per_owner_max,
                 int max_wait_ms)
{
    pool.queue_max = queue_max;
    pool.per_owner_max = per_owner_max;
    pool.max_wait_us = (int64_t)max_wait_ms * 1000;
    pool.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool.wake_fd < 0) return -1;
    pool.wake = event_new(base, pool.wake_fd, EV_READ | EV_PERSIST, on_wake, NULL);
    if (pool.wake == NULL || event_add(pool.wake, NULL) != 0) return -1;
    pool.threads = calloc((size_t)threads, sizeof *pool.threads);
    if (pool.threads == NULL) return -1;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker_main, NULL) != 0) return -1;
        pool.count++;
    }
    return 0;
}

enum worker_status worker_submit(struct worker_job *job, const char *owner)
{
    if (pool.count == 0) return WORKER_NO_THREADS;
    char key[WORKER_OWNER_MAX];
    snprintf(key, sizeof key, "%s", owner);
    struct owner *o = owner_find(key, 0);
    /* a job that would wait longer than its client does (the login timeout) would be wasted */
    int too_late =
        pool.max_wait_us > 0 && pool.queued > 0 && expected_wait_us() > pool.max_wait_us;
    if (too_late || pool.queued >= pool.queue_max ||
        (o != NULL && o->queued >= pool.per_owner_max)) {
        stats.worker_jobs_refused_total++;
        return WORKER_FULL;
    }
    if (o == NULL && (o = owner_find(key, 1)) == NULL) return WORKER_FULL;
    job->cancelled = WORKER_RAN;
    push(&o->jobs, job);
    o->queued++;
    pool.queued++;
    feed();
    return WORKER_OK;
}

int worker_retry_after(void)
{
    int seconds = (int)(expected_wait_us() / 1000000) + 1;
    return seconds < 60 ? seconds : 60;
}

int worker_queued(void)
{
    return pool.queued;
}

void worker_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.ready);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.count; i++) pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.count = 0; /* from here on, submit refuses: completions cannot queue more */
    struct queue unrun = {NULL, NULL};
    for (struct worker_job *j = take_all(&pool.todo); j != NULL;) {
        struct worker_job *next = j->next;
        push(&unrun, j);
        j = next;
    }
    while (pool.queued > 0) push(&unrun, next_in_turn());
    for (struct worker_job *j = unrun.head; j != NULL; j = j->next) j->cancelled = WORKER_STOPPED;
    pool.running = 0;
    complete(take_all(&pool.done));
    complete(unrun.head);
    if (pool.wake) event_free(pool.wake);
    pool.wake = NULL;
    if (pool.wake_fd >= 0) close(pool.wake_fd);
    pool.wake_fd = -1;
}
