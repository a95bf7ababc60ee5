/* session_budget: the output budget shared by every session (output_budget): past it, the
 * sessions with the longest queues are dropped with `bye` 429, and once a burst has drained the
 * freed memory is handed back to the system. */
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "session_internal.h"
#include "stats.h"

#define TRIM_MIN_BYTES (32u << 20) /* output freed since the last trim that is worth one */
#define TRIM_PERIOD_SECONDS 1

struct victim {
    size_t queued;
    struct session *s;
};

static struct event *trim_timer;
static struct log_every budget_log = LOG_EVERY(10);

void session_drop_slow(struct session *s, const char *why)
{
    stats.slow_consumers_total++;
    session_discard_output(s); /* freed now, not after the close grace period */
    session_close(s, 429, why);
}

static size_t budget(void)
{
    return session_ctx.limits.output_budget;
}

static void drop_for_budget(struct session *s)
{
    stats.output_budget_drops_total++;
    session_drop_slow(s, "slow reader: output budget exceeded");
}

int session_budget_victim(struct session *s, size_t queued)
{
    size_t clients = session_client_count();
    if (s->kind != SESSION_CLIENT || clients == 0 || queued <= session_output_total() / clients)
        return 0;
    log_every(&budget_log, LOG_LEVEL_WARN,
              "output budget (%zu bytes) exceeded: dropping the slowest readers", budget());
    drop_for_budget(s);
    return 1;
}

static void collect(struct session *s, void *arg)
{
    struct victim **end = arg;
    size_t queued = session_queued(s);
    if (s->kind == SESSION_CLIENT && queued > s->out_partial)
        *(*end)++ = (struct victim){queued, s};
}

static int longest_first(const void *a, const void *b)
{
    size_t qa = ((const struct victim *)a)->queued, qb = ((const struct victim *)b)->queued;
    return qa < qb ? 1 : qa > qb ? -1 : 0;
}

void session_budget_enforce(void)
{
    if (budget() == 0 || session_output_total() <= budget()) return;
    struct victim *all = malloc(session_client_count() * sizeof *all);
    if (all == NULL) return;
    struct victim *end = all;
    session_foreach(collect, &end);
    qsort(all, (size_t)(end - all), sizeof *all, longest_first);
    /* down to 90%, so that a budget held just full does not pick one victim per loop pass */
    size_t target = budget() - budget() / 10, dropped = 0;
    for (struct victim *v = all; v < end && session_output_total() > target; v++, dropped++)
        drop_for_budget(v->s);
    free(all);
    log_every(&budget_log, LOG_LEVEL_WARN,
              "output budget (%zu bytes) exceeded: dropped the %zu slowest reader(s)", budget(),
              dropped);
}

/* glibc keeps freed heap pages mapped: after a burst of output, RSS would stay at its peak. */
static void on_trim_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (session_output_peak() - session_output_total() < TRIM_MIN_BYTES) return;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    session_output_peak_reset();
}

int session_budget_init(void)
{
    trim_timer = event_new(session_ctx.base, -1, EV_PERSIST, on_trim_tick, NULL);
    struct timeval period = {TRIM_PERIOD_SECONDS, 0};
    return trim_timer != NULL && event_add(trim_timer, &period) == 0 ? 0 : -1;
}

void session_budget_free(void)
{
    if (trim_timer) event_free(trim_timer);
    trim_timer = NULL;
}
