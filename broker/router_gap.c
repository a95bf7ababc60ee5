/* router_gap: live mailbox messages that came before an earlier one wait a moment for it.
 *
 * A node gets a user's messages over two connections: the replies of its own stores and the
 * channel other nodes publish to. Both follow Redis's order, but not each other: under load a
 * message stored here often arrives just before one stored a moment earlier on another node.
 * Resyncing the session each time would read the mailbox for most messages; instead the later
 * message is held (a copy of its frame) until the earlier one is pushed, and only when it has
 * not come within ROUTER_GAP_WAIT_MS (it was lost with a channel connection; under a heavy load
 * the two connections can be hundreds of ms apart), or too many wait, does the session
 * resync. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "router.h"
#include "router_gap.h"
#include "stats.h"

#define GAP_HOLD_MAX 1024 /* messages held for one session before it resyncs instead */
#define GAP_HOLD_FIRST 8  /* room of a new hold; it doubles up to GAP_HOLD_MAX */

struct held_msg {
    uint64_t mid, prev;
    size_t len;
    uint8_t *frame;
};

struct gap_hold {
    session_handle session;
    int64_t since_us; /* when the oldest held message came */
    size_t n, room;
    struct gap_hold *next; /* the holds of every session, for the timer */
    struct held_msg *msgs;
};

static struct gap_hold *holds;
static struct event *sweep;

static void drop(struct gap_hold *h)
{
    for (size_t i = 0; i < h->n; i++) free(h->msgs[i].frame);
    h->n = 0;
}

/* Unlinks and frees H (its session forgets it: S may be NULL when the session is gone). */
static void forget(struct gap_hold *h, struct session *s)
{
    for (struct gap_hold **p = &holds; *p != NULL; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    drop(h);
    free(h->msgs);
    free(h);
    if (s != NULL) s->held = NULL;
}

void router_drop_held(struct session *s)
{
    if (s->held != NULL) forget(s->held, s);
}

void router_hold(struct session *s, const void *frame, size_t frame_len, uint64_t mid,
                 uint64_t prev)
{
    struct gap_hold *h = s->held;
    if (h == NULL) {
        h = calloc(1, sizeof *h);
        if (h == NULL) {
            router_request_resync(s, 1);
            return;
        }
        h->session = s->handle;
        h->since_us = clock_monotonic_us();
        h->next = holds;
        holds = h;
        s->held = h;
    }
    if (h->n == h->room) {
        size_t room = h->room ? h->room * 2 : GAP_HOLD_FIRST;
        struct held_msg *grown = room <= GAP_HOLD_MAX ? realloc(h->msgs, room * sizeof *grown)
                                                      : NULL;
        if (grown == NULL) { /* the resync drops what is held */
            router_request_resync(s, 1);
            return;
        }
        h->msgs = grown;
        h->room = room;
    }
    struct held_msg *m = &h->msgs[h->n];
    m->frame = malloc(frame_len);
    if (m->frame == NULL) {
        router_request_resync(s, 1);
        return;
    }
    memcpy(m->frame, frame, frame_len);
    m->mid = mid;
    m->prev = prev;
    m->len = frame_len;
    h->n++;
    stats.live_held_total++;
}

/* Removes message I of H (the last one takes its place) and returns it. */
static struct held_msg take(struct gap_hold *h, size_t i)
{
    struct held_msg m = h->msgs[i];
    h->n--;
    if (i != h->n) h->msgs[i] = h->msgs[h->n];
    h->msgs[h->n].frame = NULL;
    return m;
}

void router_release_held(struct session *s)
{
    struct gap_hold *h = s->held;
    for (;;) {
        size_t next = h->n;
        for (size_t i = 0; i < h->n; i++) {
            const struct held_msg *m = &h->msgs[i];
            if (m->mid > s->last_mid && m->prev <= s->last_mid &&
                (next == h->n || m->mid < h->msgs[next].mid))
                next = i;
        }
        if (next == h->n) break;
        struct held_msg m = take(h, next);
        router_push_live(s, m.frame, m.len, m.mid);
        free(m.frame);
    }
    /* what the pushes overtook is a repeat now */
    size_t kept = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->msgs[i].mid <= s->last_mid)
            free(h->msgs[i].frame);
        else
            h->msgs[kept++] = h->msgs[i];
    }
    h->n = kept;
    if (h->n == 0) forget(h, s);
}

/* Every ROUTER_GAP_WAIT_MS / 2: a session whose held messages waited too long resyncs. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int64_t now = clock_monotonic_us();
    struct gap_hold *h = holds;
    while (h != NULL) {
        struct gap_hold *next = h->next;
        struct session *s = session_get(h->session);
        if (s == NULL || s->held != h)
            forget(h, NULL);
        else if (now - h->since_us >= (int64_t)ROUTER_GAP_WAIT_MS * 1000)
            router_request_resync(s, 1); /* drops the held messages: the mailbox has them */
        h = next;
    }
}

static void on_session_event(void *state, struct session *s, enum session_event event)
{
    (void)state;
    if (event == SESSION_CLOSED) router_drop_held(s);
}

int router_start(struct event_base *base)
{
    sweep = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
    struct timeval every = {0, (suseconds_t)ROUTER_GAP_WAIT_MS * 500};
    if (sweep == NULL || event_add(sweep, &every) != 0) return -1;
    return session_subscribe(on_session_event, NULL);
}

void router_stop(void)
{
    while (holds != NULL) forget(holds, NULL);
    if (sweep != NULL) event_free(sweep);
    sweep = NULL;
}
