/* client: the events of one client, from the codec up to the counters and the workload. */
#include "client.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "payload.h"
#include "proto.h"
#include "tls.h"
#include "workload.h"

void client_mark_dirty(struct client *c)
{
    if (c->dirty) return;
    c->dirty = 1;
    c->w->dirty[c->w->dirty_count++] = c;
}

uint64_t client_next_id(struct client *c, int64_t now)
{
    uint64_t id = (uint64_t)now;
    if (id <= c->last_id) id = c->last_id + 1;
    c->last_id = id;
    return id;
}

static void note_back(int64_t now)
{
    long long last = atomic_load(&run.t_last_back);
    while (now > last && !atomic_compare_exchange_weak(&run.t_last_back, &last, now)) {
    }
}

void client_setup_done(struct client *c, int64_t now)
{
    if (c->state != CL_SETUP) return;
    struct worker *w = c->w;
    w->open_setups--;
    c->state = CL_READY;
    if (atomic_load(&run.phase) == PH_STORM) {
        hist_record(&w->latency, now - c->t_start);
        note_back(now);
        atomic_fetch_add(&w->ctr.back, 1);
    } else {
        hist_record(&w->setup, now - c->t_start);
        atomic_fetch_add(&w->ctr.ready, 1);
        if (c->receiver) atomic_fetch_add(&run.receivers_ready, 1);
    }
    if (c->mode == SETUP_REGISTER) client_close(c);
}

void client_setup_failed(struct client *c, int code)
{
    if (c->state != CL_SETUP && c->state != CL_CONNECTING) return;
    if (code > 0) count_res_error(c->w, code);
    atomic_fetch_add(&c->w->ctr.failed, 1);
    client_close(c);
}

void client_token(struct client *c, const uint8_t *token, size_t len)
{
    if (run.tokens == NULL) return;
    free(run.tokens[c->index]);
    run.tokens[c->index] = strndup((const char *)token, len);
}

void client_ack_now(struct client *c)
{
    run.proto->ack(c, c->max_mid);
    c->unacked = 0;
    c->w->ctr.acks++;
}

/* Acks now when the batch is full; otherwise within --ack-delay (loop.c sends those). */
static void note_ack(struct client *c, uint64_t mid, int64_t now)
{
    if (run.proto->ack == NULL || mid == 0) return;
    if (mid > c->max_mid) c->max_mid = mid;
    c->unacked++;
    if (run.opt.ack_every == ACK_EVERY_READ) return; /* loop.c acks after the read */
    if (c->unacked >= (uint32_t)run.opt.ack_every) {
        client_ack_now(c);
        return;
    }
    if (!c->ack_listed) {
        c->ack_listed = 1;
        c->t_ack_due = now + (int64_t)(run.opt.ack_delay * 1e9);
        c->w->ack_list[c->w->ack_count++] = c;
    }
}

void client_delivery(struct client *c, enum delivery_kind kind, const uint8_t *body, size_t len,
                     uint64_t mid, int offline, int64_t now)
{
    struct worker *w = c->w;
    if (kind == DELIVERY_PRIVATE) note_ack(c, mid, now);
    if (!c->receiver) return; /* a publisher hearing another publisher */
    struct payload p;
    if (payload_read(body, len, &p) != 0 || p.run_id != run.run_id ||
        (int)p.sender >= run.senders) {
        w->ctr.stale++;
        return;
    }
    /* a message of this run pushed from the mailbox: the broker resynced the session (a
     * cluster node does when a live message comes out of mid order); still a delivery */
    if (offline) w->ctr.from_mailbox++;
    atomic_fetch_add_explicit(&w->ctr.delivered, 1, memory_order_relaxed);
    if (in_measured_window(now)) w->ctr.delivered_window++;
    if (in_measured_window(p.sent_ns)) hist_record(&w->latency, now - p.sent_ns);
    const struct workload *wl = workload_for(run.opt.workload);
    if (wl->delivered) wl->delivered(w, &p, now);
}

void client_reply(struct client *c, uint64_t id, int code, int64_t now)
{
    struct worker *w = c->w;
    if (id != 0 && in_measured_window((int64_t)id)) hist_record(&w->reply, now - (int64_t)id);
    if (code == 200) return;
    count_res_error(w, code);
    const struct workload *wl = workload_for(run.opt.workload);
    if (id != 0 && wl->failed) wl->failed(w, c, code);
}

void client_bye(struct client *c, int code)
{
    count_bye(c->w, code);
    if (c->state == CL_SETUP || c->state == CL_CONNECTING) atomic_fetch_add(&c->w->ctr.failed, 1);
    client_close(c);
}

void client_close(struct client *c)
{
    if (c->state == CL_DONE || c->state == CL_IDLE) return;
    if (c->state == CL_SETUP || c->state == CL_CONNECTING) c->w->open_setups--;
    if (c->ssl) bench_tls_close(c);
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    buf_free(&c->in);
    buf_free(&c->out);
    c->state = CL_DONE;
    c->want_out = 0;
    c->unacked = 0;
}
