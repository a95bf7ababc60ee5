/* wl_broadcast: P publishers send to everyone; a message leaves its publisher's window when
 * every receiver has it (or --lost-after passes), so the broker's fan-out sets the pace.
 * The room workload is the same with room.send: P publishers to one room of every receiver, or
 * (--room-size K) every client to its own room, a message done when the K - 1 others have it. */
#include "client.h"
#include "proto.h"
#include "workload.h"

#define LOST_CHECK_NS 100000000LL

static struct bcast_slot *slot_of(uint32_t publisher, uint32_t seq)
{
    return &run.bcast[(size_t)publisher * BCAST_RING + seq % BCAST_RING];
}

static void send_one(struct worker *w, struct client *c, int64_t now)
{
    struct bcast_slot *slot = slot_of(c->index, c->seq);
    atomic_store_explicit(&slot->count, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->seq, c->seq, memory_order_release);
    payload_for(c, w->body, now);
    if (run.opt.workload == WL_ROOM)
        run.proto->send_room(c, w->body, (size_t)run.opt.size, now);
    else
        run.proto->send_broadcast(c, w->body, (size_t)run.opt.size, now);
    sender_took((int)c->index, now);
    atomic_fetch_add_explicit(&w->ctr.sent, 1, memory_order_relaxed);
    if (in_measured_window(now)) w->ctr.sent_window++;
}

static int is_publisher(const struct client *c)
{
    return (int)c->index < run.senders;
}

/* Clients are dealt to workers in index order, so a worker's publishers come first. */
static size_t publishers_here(const struct worker *w)
{
    size_t n = 0;
    while (n < w->count && is_publisher(&w->clients[n]))
        n++;
    return n;
}

static void broadcast_tick(struct worker *w, int64_t now)
{
    size_t pubs = publishers_here(w);
    if (pubs == 0) return;
    long due = rate_due(w, now);
    size_t tried = 0;
    while (due != 0 && tried < pubs) {
        struct client *c = &w->clients[w->next_sender % pubs];
        if (c->state != CL_READY || !sender_has_room((int)c->index)) {
            w->next_sender = (w->next_sender + 1) % pubs;
            tried++;
            continue;
        }
        send_one(w, c, now);
        if (due > 0) {
            due--;
            w->rate_sent += 1;
            w->next_sender = (w->next_sender + 1) % pubs;
        }
        tried = 0;
    }
    if (now < w->next_lost_check) return;
    w->next_lost_check = now + LOST_CHECK_NS;
    for (size_t i = 0; i < pubs; i++)
        sender_check_lost(w, &w->clients[i], (int)w->clients[i].index, now);
}

/* How many deliveries complete a message of SENDER: every receiver ready, or the other members
 * of its room. */
static unsigned audience(uint32_t sender)
{
    if (workload_fans_out(&run.opt)) return (unsigned)atomic_load(&run.receivers_ready);
    uint32_t k = (uint32_t)run.opt.room_size, first = room_of(sender) * k;
    uint32_t members = (uint32_t)run.opt.clients - first < k ? (uint32_t)run.opt.clients - first : k;
    return members - 1;
}

static void broadcast_delivered(struct worker *w, const struct payload *p, int64_t now)
{
    (void)w;
    struct bcast_slot *slot = slot_of(p->sender, p->seq);
    if (atomic_load_explicit(&slot->seq, memory_order_acquire) != p->seq) return; /* too late */
    unsigned n = atomic_fetch_add_explicit(&slot->count, 1, memory_order_relaxed) + 1;
    if (n == audience(p->sender)) sender_release((int)p->sender, now);
}

static void broadcast_failed(struct worker *w, struct client *c, int code)
{
    (void)w, (void)code;
    sender_release((int)c->index, bench_now());
}

const struct workload workload_broadcast = {
    .name = "broadcast",
    .tick = broadcast_tick,
    .delivered = broadcast_delivered,
    .failed = broadcast_failed,
    .in_flight = senders_in_flight,
};

const struct workload workload_room = {
    .name = "room",
    .tick = broadcast_tick,
    .delivered = broadcast_delivered,
    .failed = broadcast_failed,
    .in_flight = senders_in_flight,
};
