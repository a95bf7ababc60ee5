/* loop: the worker thread. Each pass: wait for events, read whole frames into client events,
 * let the workload send, ack what is due, then write every client's coalesced output once. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "net.h"
#include "proto.h"
#include "tls.h"
#include "workload.h"

#define RBUF_SIZE ((size_t)256 * 1024)
#define MAX_EVENTS 512
#define CONNECTS_PER_PASS 512  /* a storm starts in slices so replies keep being read */
#define BUSY_WAIT_NS 1000000LL /* the longest wait while messages are travelling */
#define SETUP_WAIT_NS 10000000LL

atomic_int workers_closed;
atomic_int workers_draining;

int worker_init(struct worker *w, int id)
{
    w->id = id;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->rbuf = malloc(RBUF_SIZE);
    w->body = malloc((size_t)run.opt.size);
    w->dirty = calloc(w->count ? w->count : 1, sizeof *w->dirty);
    w->ack_list = calloc(w->count ? w->count : 1, sizeof *w->ack_list);
    w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 32) ^ (uint64_t)bench_now();
    if (w->rng == 0) w->rng = 1;
    hist_init(&w->latency);
    hist_init(&w->reply);
    hist_init(&w->setup);
    if (w->epfd < 0 || !w->rbuf || !w->body || !w->dirty || !w->ack_list) return -1;
    return 0;
}

void worker_free(struct worker *w)
{
    for (size_t i = 0; i < w->count; i++)
        client_close(&w->clients[i]);
    if (w->epfd >= 0) close(w->epfd);
    free(w->rbuf);
    free(w->body);
    free(w->dirty);
    free(w->ack_list);
}

static void set_events(struct client *c, int want_out)
{
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)want_out;
}

static void lost_connection(struct client *c)
{
    int ph = atomic_load(&run.phase);
    if (c->state == CL_SETUP || c->state == CL_CONNECTING) {
        atomic_fetch_add(&c->w->ctr.failed, 1);
        count_local(c->w, LERR_CLOSED);
    } else if (ph == PH_RUN || ph == PH_SETUP || ph == PH_STORM) {
        count_local(c->w, LERR_CLOSED);
    }
    client_close(c);
}

static void flush_client(struct client *c)
{
    while (buf_pending(&c->out) > 0) {
        const uint8_t *from = c->out.data + c->out.off;
        ssize_t n = c->ssl ? bench_tls_write(c, from, buf_pending(&c->out))
                           : write(c->fd, from, buf_pending(&c->out));
        if (n > 0) {
            c->out.off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, 1);
            return;
        }
        lost_connection(c);
        return;
    }
    buf_compact(&c->out);
    set_events(c, 0);
}

static void flush_dirty(struct worker *w)
{
    for (size_t i = 0; i < w->dirty_count; i++) {
        struct client *c = w->dirty[i];
        c->dirty = 0;
        if (c->state == CL_SETUP || c->state == CL_READY) flush_client(c);
    }
    w->dirty_count = 0;
}

/* Parses what was read; keeps a partial frame in the client's own buffer. */
static int consume(struct client *c, const uint8_t *data, size_t len, int own, int64_t now)
{
    long used = run.proto->parse(c, data, len, now);
    if (c->state == CL_DONE) return -1;
    if (used < 0) {
        count_local(c->w, LERR_PROTOCOL);
        lost_connection(c);
        return -1;
    }
    if (own) {
        c->in.off += (size_t)used;
        buf_compact(&c->in);
    } else if ((size_t)used < len && buf_append(&c->in, data + used, len - (size_t)used) != 0) {
        lost_connection(c);
        return -1;
    }
    return 0;
}

static void read_available(struct worker *w, struct client *c, int64_t now)
{
    for (;;) {
        int own = buf_pending(&c->in) > 0;
        uint8_t *dst = own ? buf_reserve(&c->in, RBUF_SIZE) : w->rbuf;
        if (dst == NULL) return lost_connection(c);
        ssize_t n = c->ssl ? bench_tls_read(c, dst, RBUF_SIZE) : read(c->fd, dst, RBUF_SIZE);
        if (n == 0) return lost_connection(c);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) lost_connection(c);
            return;
        }
        now = bench_now();
        if (own) {
            c->in.len += (size_t)n;
            if (consume(c, c->in.data + c->in.off, buf_pending(&c->in), 1, now) != 0) return;
        } else if (consume(c, dst, (size_t)n, 0, now) != 0) {
            return;
        }
        /* a short TLS read is one record: more may wait inside TLS, which wakes no epoll */
        if ((size_t)n < RBUF_SIZE && c->ssl == NULL) return;
    }
}

/* Reads what the socket has; with --ack-every read, acks what that brought. */
static void read_client(struct worker *w, struct client *c, int64_t now)
{
    read_available(w, c, now);
    if (run.opt.ack_every == ACK_EVERY_READ && c->unacked > 0 && c->state == CL_READY)
        client_ack_now(c);
}

/* --tls: the handshake after the TCP connect; the client is still connecting meanwhile. */
static int tls_ready(struct client *c)
{
    int want_write = 0;
    int rc = bench_tls_handshake(c, &want_write);
    if (rc < 0) {
        count_local(c->w, LERR_CONNECT);
        client_setup_failed(c, 0);
        return 0;
    }
    if (rc == 0) {
        c->want_out = !want_write;
        set_events(c, want_write);
    }
    return rc;
}

static void on_connected(struct client *c, int64_t now)
{
    if (c->ssl == NULL) {
        int err = net_connect_result(c->fd);
        if (err != 0 || (run.opt.tls && bench_tls_start(c) != 0)) {
            count_local(c->w, LERR_CONNECT);
            client_setup_failed(c, 0);
            return;
        }
    }
    if (c->ssl != NULL && !tls_ready(c)) return;
    c->state = CL_SETUP;
    c->want_out = 1;
    set_events(c, 0);
    run.proto->start(c, now);
}

static void on_event(struct worker *w, struct client *c, uint32_t events, int64_t now)
{
    if (c->state == CL_DONE || c->state == CL_IDLE) return;
    if (c->state == CL_CONNECTING) {
        on_connected(c, now);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_client(w, c, now);
    if ((events & EPOLLOUT) && (c->state == CL_SETUP || c->state == CL_READY)) flush_client(c);
}

static void start_client(struct worker *w, struct client *c, int64_t now)
{
    c->fd = net_connect(&run.target[broker_of(c->index)], run.src_addrs, run.src_base, c->index);
    c->t_start = now;
    if (c->fd < 0) {
        count_local(w, LERR_CONNECT);
        atomic_fetch_add(&w->ctr.failed, 1);
        c->state = CL_DONE;
        return;
    }
    c->state = CL_CONNECTING;
    c->want_out = 1;
    w->open_setups++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void start_connects(struct worker *w, int storm, int64_t now)
{
    size_t limit =
        storm ? w->count
              : (size_t)(run.opt.setup_concurrency + run.opt.threads - 1) / (size_t)run.opt.threads;
    size_t started = 0;
    while (w->next_connect < w->count && w->open_setups < limit && started < CONNECTS_PER_PASS) {
        start_client(w, &w->clients[w->next_connect++], now);
        started++;
    }
}

static void flush_acks(struct worker *w, int64_t now, int all)
{
    size_t kept = 0;
    for (size_t i = 0; i < w->ack_count; i++) {
        struct client *c = w->ack_list[i];
        if (c->state != CL_READY || c->unacked == 0) {
            c->ack_listed = 0;
            continue;
        }
        if (!all && now < c->t_ack_due) {
            w->ack_list[kept++] = c;
            continue;
        }
        client_ack_now(c);
        c->ack_listed = 0;
    }
    w->ack_count = kept;
}

/* Work done once when the worker first sees a phase. */
static void enter_phase(struct worker *w, int ph)
{
    /* from here on this worker sends nothing new: what it sent before is in the count the
     * drain waits for */
    if (ph == PH_DRAIN) atomic_fetch_add(&workers_draining, 1);
    if (ph == PH_CLOSE) {
        for (size_t i = 0; i < w->count; i++)
            client_close(&w->clients[i]);
        atomic_fetch_add(&workers_closed, 1);
    } else if (ph == PH_STORM) {
        enum setup_mode mode = run.opt.workload == WL_LOGIN ? SETUP_LOGIN_ONLY : SETUP_RESUME;
        for (size_t i = 0; i < w->count; i++) {
            w->clients[i].state = CL_IDLE;
            w->clients[i].mode = (uint8_t)mode;
        }
        w->next_connect = 0;
        w->open_setups = 0;
    }
}

/* How long the next epoll wait may last: until the next send --rate asks for, else 1 ms while
 * messages travel (windows reopen from other threads), else 10 ms. */
static int64_t wait_ns(const struct worker *w, int ph, int64_t now)
{
    if (w->dirty_count) return 0;
    if (ph == PH_RUN && run.opt.rate > 0) {
        int64_t due = rate_next_due(w) - now;
        return due < 0 ? 0 : due < BUSY_WAIT_NS ? due : BUSY_WAIT_NS;
    }
    return (ph == PH_RUN || ph == PH_DRAIN || ph == PH_STORM) ? BUSY_WAIT_NS : SETUP_WAIT_NS;
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    const struct workload *wl = workload_for(run.opt.workload);
    int seen = -1;
    /* --rate paces sends tens of microseconds apart: wake up on time, not 50 us late */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    for (;;) {
        int ph = atomic_load(&run.phase);
        if (ph == PH_DONE) break;
        if (ph != seen) {
            enter_phase(w, ph);
            seen = ph;
        }
        int64_t wait = wait_ns(w, ph, bench_now());
        struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
        int n = epoll_pwait2(w->epfd, events, MAX_EVENTS, &ts, NULL);
        int64_t now = bench_now();
        for (int i = 0; i < n; i++)
            on_event(w, events[i].data.ptr, events[i].events, now);
        now = bench_now();
        if (ph == PH_SETUP || ph == PH_STORM) start_connects(w, ph == PH_STORM, now);
        if (ph == PH_RUN && wl->tick) wl->tick(w, now);
        if (run.proto->ack && w->ack_count) flush_acks(w, now, ph == PH_DRAIN);
        flush_dirty(w);
    }
    return NULL;
}
