/* idle_trim: see idle_trim.h. */
#include "idle_trim.h"

#include <malloc.h>
#include <stdint.h>

#include <event2/event.h>

#include "log.h"
#include "luahost.h"
#include "stats.h"

static struct event *tick;
static uint64_t frames_seen;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    uint64_t frames = stats.frames_in_total;
    int idle = frames == frames_seen;
    frames_seen = frames;
    if (!idle) return;
    size_t freed = luahost_collect_garbage();
    if (freed == 0) return;
    /* the collector gave its blocks back to the allocator; this gives free pages back to the
     * system */
    malloc_trim(0);
    log_debug("idle: Lua collected %zu KiB of garbage; free memory handed back", freed / 1024);
}

int idle_trim_start(struct event_base *base)
{
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval every = {1, 0};
    return tick != NULL && event_add(tick, &every) == 0 ? 0 : -1;
}

void idle_trim_stop(void)
{
    if (tick != NULL) event_free(tick);
    tick = NULL;
}
