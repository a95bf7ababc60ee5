/* wl_private: every client sends to random others (any, or only those of another broker, or of
 * its own: --recipients), at --rate in total or as fast as its window of undelivered messages
 * allows; receivers ack in batches (client.c). */
#include "client.h"
#include "proto.h"
#include "rng.h"
#include "workload.h"

#define LOST_CHECK_NS 100000000LL

/* How many clients broker B has: B, B + brokers, B + 2 brokers, ... below run.total. */
static uint32_t clients_of(uint32_t b)
{
    uint32_t n = (uint32_t)run.targets;
    return ((uint32_t)run.total - b + n - 1) / n;
}

/* A random recipient other than the sender ME, under --recipients (main.c checked that one
 * exists). */
static uint32_t pick_recipient(struct worker *w, uint32_t me)
{
    uint32_t n = (uint32_t)run.targets, mine = (uint32_t)broker_of(me);
    if (run.opt.recipients == RCPT_CROSS) {
        uint32_t b = (mine + 1 + rng_below(&w->rng, n - 1)) % n;
        return b + n * rng_below(&w->rng, clients_of(b));
    }
    if (run.opt.recipients == RCPT_LOCAL) {
        uint32_t k = rng_below(&w->rng, clients_of(mine) - 1);
        if (k >= me / n) k++; /* anyone of its broker but itself */
        return mine + n * k;
    }
    uint32_t to = rng_below(&w->rng, (uint32_t)run.total - 1);
    return to >= me ? to + 1 : to; /* anyone but itself */
}

static void send_one(struct worker *w, struct client *c, int64_t now)
{
    uint32_t to = pick_recipient(w, c->index);
    payload_for(c, w->body, now);
    run.proto->send_private(c, to, w->body, (size_t)run.opt.size, now);
    sender_took((int)c->index, now);
    atomic_fetch_add_explicit(&w->ctr.sent, 1, memory_order_relaxed);
    if (in_measured_window(now)) w->ctr.sent_window++;
}

static void fill_windows(struct worker *w, int64_t now)
{
    for (size_t i = 0; i < w->count; i++) {
        struct client *c = &w->clients[i];
        while (c->state == CL_READY && sender_has_room((int)c->index))
            send_one(w, c, now);
    }
}

static void send_at_rate(struct worker *w, long due, int64_t now)
{
    size_t tried = 0;
    while (due > 0 && tried < w->count) {
        struct client *c = &w->clients[w->next_sender];
        w->next_sender = (w->next_sender + 1) % w->count;
        if (c->state != CL_READY || !sender_has_room((int)c->index)) {
            tried++;
            continue;
        }
        send_one(w, c, now);
        w->rate_sent += 1;
        due--;
        tried = 0;
    }
}

static void private_tick(struct worker *w, int64_t now)
{
    long due = rate_due(w, now);
    if (due < 0)
        fill_windows(w, now);
    else
        send_at_rate(w, due, now);
    if (now < w->next_lost_check) return;
    w->next_lost_check = now + LOST_CHECK_NS;
    for (size_t i = 0; i < w->count; i++)
        sender_check_lost(w, &w->clients[i], (int)w->clients[i].index, now);
}

static void private_delivered(struct worker *w, const struct payload *p, int64_t now)
{
    (void)w;
    sender_release((int)p->sender, now);
}

static void private_failed(struct worker *w, struct client *c, int code)
{
    (void)w, (void)code;
    sender_release((int)c->index, bench_now());
}

const struct workload workload_private = {
    .name = "private",
    .tick = private_tick,
    .delivered = private_delivered,
    .failed = private_failed,
    .in_flight = senders_in_flight,
};
