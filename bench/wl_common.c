/* wl_common: what the sending workloads share: per-sender windows, the --rate schedule, the
 * payload of a new message, and the table of workloads. */
#include <stdatomic.h>

#include "bench.h"
#include "payload.h"
#include "workload.h"

int sender_has_room(int s)
{
    return atomic_load_explicit(&run.sender[s].inflight, memory_order_relaxed) < run.opt.window;
}

void sender_took(int s, int64_t now)
{
    struct sender *sd = &run.sender[s];
    if (atomic_fetch_add_explicit(&sd->inflight, 1, memory_order_relaxed) == 0)
        atomic_store_explicit(&sd->last_progress_ns, now, memory_order_relaxed);
}

void sender_release(int s, int64_t now)
{
    struct sender *sd = &run.sender[s];
    int v = atomic_load_explicit(&sd->inflight, memory_order_relaxed);
    /* never below 0: a message declared lost may still turn up */
    while (v > 0 && !atomic_compare_exchange_weak_explicit(
                        &sd->inflight, &v, v - 1, memory_order_relaxed, memory_order_relaxed)) {
    }
    atomic_store_explicit(&sd->last_progress_ns, now, memory_order_relaxed);
}

void sender_check_lost(struct worker *w, struct client *c, int s, int64_t now)
{
    (void)c;
    struct sender *sd = &run.sender[s];
    int v = atomic_load_explicit(&sd->inflight, memory_order_relaxed);
    if (v == 0) return;
    int64_t last = atomic_load_explicit(&sd->last_progress_ns, memory_order_relaxed);
    if (now - last < (int64_t)(run.opt.lost_after * 1e9)) return;
    int taken = atomic_exchange_explicit(&sd->inflight, 0, memory_order_relaxed);
    w->ctr.local[LERR_LOST] += (uint64_t)taken;
    atomic_fetch_add_explicit(&w->ctr.errors, (uint64_t)taken, memory_order_relaxed);
    atomic_store_explicit(&sd->last_progress_ns, now, memory_order_relaxed);
}

long senders_in_flight(void)
{
    long n = 0;
    for (int s = 0; s < run.senders; s++)
        n += atomic_load(&run.sender[s].inflight);
    return n;
}

long rate_due(struct worker *w, int64_t now)
{
    if (run.opt.rate <= 0) return -1;
    double per_worker = run.opt.rate / run.opt.threads;
    double elapsed = (double)(now - atomic_load(&run.t_run_start)) / 1e9;
    double due = per_worker * elapsed - w->rate_sent;
    /* a worker that fell behind by more than 10 ms of sends does not burst to catch up */
    double cap = per_worker * 0.010 + 1;
    if (due > cap) {
        w->rate_sent += due - cap;
        due = cap;
    }
    return due < 1 ? 0 : (long)due;
}

int64_t rate_next_due(const struct worker *w)
{
    if (run.opt.rate <= 0) return 0;
    double per_worker = run.opt.rate / run.opt.threads;
    return atomic_load(&run.t_run_start) + (int64_t)((w->rate_sent + 1) * 1e9 / per_worker);
}

void payload_for(struct client *c, uint8_t *body, int64_t now)
{
    struct payload p = {.sent_ns = now, .sender = c->index, .seq = c->seq++, .run_id = run.run_id};
    payload_write(body, (size_t)run.opt.size, &p);
}

const struct workload workload_none = {.name = "none"};

const struct workload *workload_for(enum workload_kind kind)
{
    switch (kind) {
    case WL_PRIVATE:
        return &workload_private;
    case WL_BROADCAST:
        return &workload_broadcast;
    case WL_ROOM:
        return &workload_room;
    default:
        return &workload_none;
    }
}
