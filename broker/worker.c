/* worker: pthreads, a mutex-protected job queue and a completion queue drained on the loop. */
#include "worker.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker.h"
#include "log.h"

struct queue {
    struct worker_job *head, *tail;
};

static struct {
    pthread_t *threads;
    int count;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct queue todo;
    struct queue done;
    int stopping;
    int wake_fd;
    struct event *wake;
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

static struct worker_job *take_all(struct queue *q)
{
    struct worker_job *all = q->head;
    q->head = q->tail = NULL;
    return all;
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stopping && pool.todo.head == NULL) pthread_cond_wait(&pool.ready, &pool.lock);
        if (pool.stopping) break;
        struct worker_job *job = pool.todo.head;
        pool.todo.head = job->next;
        if (pool.todo.head == NULL) pool.todo.tail = NULL;
        pthread_mutex_unlock(&pool.lock);
        job->run(job);
        pthread_mutex_lock(&pool.lock);
        push(&pool.done, job);
        uint64_t one = 1;
        if (write(pool.wake_fd, &one, sizeof one) < 0) { /* the counter only saturates */ }
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

static void complete(struct worker_job *list)
{
    while (list != NULL) {
        struct worker_job *next = list->next;
        list->done(list);
        list = next;
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) { /* EAGAIN: another pass drained it */ }
    pthread_mutex_lock(&pool.lock);
    struct worker_job *list = take_all(&pool.done);
    pthread_mutex_unlock(&pool.lock);
    complete(list);
}

int worker_start(int threads)
{
    pool.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pool.wake_fd < 0) return -1;
    pool.wake = event_new(broker.base, pool.wake_fd, EV_READ | EV_PERSIST, on_wake, NULL);
    if (pool.wake == NULL || event_add(pool.wake, NULL) != 0) return -1;
    pool.threads = calloc((size_t)threads, sizeof *pool.threads);
    if (pool.threads == NULL) return -1;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker_main, NULL) != 0) return -1;
        pool.count++;
    }
    return 0;
}

int worker_submit(struct worker_job *job)
{
    if (pool.count == 0) return -1;
    job->cancelled = 0;
    pthread_mutex_lock(&pool.lock);
    push(&pool.todo, job);
    pthread_cond_signal(&pool.ready);
    pthread_mutex_unlock(&pool.lock);
    return 0;
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
    pool.count = 0;
    struct worker_job *unrun = take_all(&pool.todo);
    for (struct worker_job *j = unrun; j != NULL; j = j->next) j->cancelled = 1;
    complete(take_all(&pool.done));
    complete(unrun);
    if (pool.wake) event_free(pool.wake);
    pool.wake = NULL;
    if (pool.wake_fd >= 0) close(pool.wake_fd);
    pool.wake_fd = -1;
}
