/* pending: the requests waiting for their `res`, matched by id.
 *
 * Ids are handed out in increasing order, so the table is an array sorted by id: lookups are a
 * binary search, freed slots are trimmed from both ends, and the array is compacted when the
 * dead prefix grows large. */
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"

static void trim(struct mp_pending_table *t)
{
    while (t->head < t->len && !t->items[t->head].used)
        t->head++;
    while (t->len > t->head && !t->items[t->len - 1].used)
        t->len--;
    if (t->head == t->len) t->head = t->len = 0;
}

struct mp_pending *mp_pending_add(mp_client *c, uint64_t id, int64_t deadline_ms)
{
    struct mp_pending_table *t = &c->pending;
    if (t->len == t->cap && t->head > 0 && t->head >= t->cap / 2) {
        memmove(t->items, t->items + t->head, (t->len - t->head) * sizeof *t->items);
        t->len -= t->head;
        t->head = 0;
    }
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct mp_pending *items = realloc(t->items, cap * sizeof *items);
        if (items == NULL) return NULL;
        t->items = items;
        t->cap = cap;
    }
    struct mp_pending *p = &t->items[t->len++];
    memset(p, 0, sizeof *p);
    p->id = id;
    p->deadline_ms = deadline_ms;
    p->used = 1;
    t->live++;
    if (t->live == 1 || deadline_ms < t->next_deadline_ms) t->next_deadline_ms = deadline_ms;
    return p;
}

struct mp_pending *mp_pending_find(mp_client *c, uint64_t id)
{
    struct mp_pending_table *t = &c->pending;
    size_t lo = t->head, hi = t->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->len && t->items[lo].id == id && t->items[lo].used) return &t->items[lo];
    return NULL;
}

void mp_pending_remove(mp_client *c, struct mp_pending *p)
{
    free(p->reply);
    p->reply = NULL;
    p->used = 0;
    c->pending.live--;
    trim(&c->pending);
}

void mp_pending_complete(mp_client *c, struct mp_pending *p, mp_err err, struct mp_reply *reply)
{
    if (p->blocking) {
        p->done = 1;
        p->err = err;
        p->reply = reply;
        return;
    }
    mp_reply_fn fn = p->fn;
    void *ud = p->ud;
    mp_pending_remove(c, p); /* before the callback: it may add requests and move the table */
    if (fn == NULL) return;
    c->depth++;
    fn(c, err, reply, ud);
    c->depth--;
}

/* Completes one expired async entry per pass: its callback may change the table. */
void mp_pending_expire(mp_client *c, int64_t now_ms)
{
    struct mp_pending_table *t = &c->pending;
    if (t->live == 0 || now_ms < t->next_deadline_ms) return;
    for (;;) {
        struct mp_pending *late = NULL;
        int64_t next = INT64_MAX;
        for (size_t i = t->head; i < t->len; i++) {
            struct mp_pending *p = &t->items[i];
            if (!p->used || p->done) continue;
            if (p->deadline_ms <= now_ms && !p->blocking && late == NULL) {
                late = p;
                continue;
            }
            if (p->deadline_ms < next) next = p->deadline_ms;
        }
        t->next_deadline_ms = next;
        if (late == NULL) return;
        mp_fail(c, MP_ERR_TIMEOUT, 0, "no reply within %d ms", c->timeout_ms);
        mp_pending_complete(c, late, MP_ERR_TIMEOUT, NULL);
    }
}

/* Fails everything in flight; blocking waiters see it when they look at their entry. */
void mp_pending_fail_all(mp_client *c, mp_err err)
{
    struct mp_pending_table *t = &c->pending;
    for (;;) {
        struct mp_pending *victim = NULL;
        for (size_t i = t->head; i < t->len && victim == NULL; i++) {
            struct mp_pending *p = &t->items[i];
            if (p->used && !p->done) victim = p;
        }
        if (victim == NULL) return;
        mp_pending_complete(c, victim, err, NULL);
    }
}

void mp_pending_free(mp_client *c)
{
    struct mp_pending_table *t = &c->pending;
    for (size_t i = t->head; i < t->len; i++)
        free(t->items[i].reply);
    free(t->items);
    memset(t, 0, sizeof *t);
}

size_t mp_client_pending(const mp_client *c)
{
    return c ? c->pending.live : 0;
}
