/* plugin_timer: timers of C plugins, named by id (never a pointer, as a one-shot timer is gone
 * once it fired). A periodic timer is re-armed before its callback runs, so a slow callback
 * does not stretch the period; a timer cancelled from its own callback is freed when the
 * callback returns. */
#include "plugin_timer.h"

#include <stdlib.h>

struct plugin_timer {
    mp_timer id;
    const void *owner;
    void *const *state;
    uint64_t every_ms;
    mp_timer_fn fn;
    void *arg;
    struct event *ev;
    int firing;
    int cancelled;
    struct plugin_timer *next;
};

static struct plugin_timer *timers;
static mp_timer last_id;

static void arm(struct plugin_timer *t, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(t->ev, &tv);
}

static void unlink_and_free(struct plugin_timer *t)
{
    for (struct plugin_timer **at = &timers; *at != NULL; at = &(*at)->next) {
        if (*at == t) {
            *at = t->next;
            break;
        }
    }
    event_free(t->ev);
    free(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct plugin_timer *t = arg;
    if (t->every_ms > 0) arm(t, t->every_ms);
    t->firing = 1;
    t->fn(*t->state, t->arg);
    t->firing = 0;
    if (t->cancelled || t->every_ms == 0) unlink_and_free(t);
}

mp_timer plugin_timer_start(struct event_base *base, const void *owner, void *const *state,
                            uint64_t after_ms, uint64_t every_ms, mp_timer_fn fn, void *arg)
{
    struct plugin_timer *t = calloc(1, sizeof *t);
    if (t == NULL) return 0;
    t->ev = evtimer_new(base, on_timer, t);
    if (t->ev == NULL) {
        free(t);
        return 0;
    }
    t->id = ++last_id;
    t->owner = owner;
    t->state = state;
    t->every_ms = every_ms;
    t->fn = fn;
    t->arg = arg;
    t->next = timers;
    timers = t;
    arm(t, after_ms);
    return t->id;
}

void plugin_timer_cancel(const void *owner, mp_timer id)
{
    struct plugin_timer *t = timers;
    while (t != NULL && (t->id != id || t->owner != owner))
        t = t->next;
    if (t == NULL || t->cancelled) return;
    if (t->firing) {
        t->cancelled = 1;
        event_del(t->ev);
    } else {
        unlink_and_free(t);
    }
}

void plugin_timer_stop_all(void)
{
    while (timers != NULL)
        unlink_and_free(timers);
}
