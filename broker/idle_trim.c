/* idle_trim: see idle_trim.h. */
#include "idle_trim.h"

#include <malloc.h>
#include <stdint.h>

#include <event2/event.h>

#include "chain_pool.h"
#include "log.h"
#include "luahost.h"
#include "stats.h"

#define CHECK_MS 1000 /* how often idleness is checked */
#define SLICE_MS 20   /* between two slices of a collection */
#define SLICE_US 2000 /* the collector's work per slice: what a frame may wait for it */

static struct {
    struct event *tick;
    uint64_t frames_seen;
    int collecting;
} idle;

static void schedule(int ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(idle.tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    uint64_t frames = stats.frames_in_total;
    int quiet = frames == idle.frames_seen;
    idle.frames_seen = frames;
    if (!quiet) { /* traffic: its allocations drive the collector */
        idle.collecting = 0;
        return schedule(CHECK_MS);
    }
    if (chain_pool_bytes() > 0) { /* the output blocks a burst kept */
        chain_pool_trim();
        malloc_trim(0);
    }
    if (!idle.collecting && !luahost_garbage_worth_collecting()) return schedule(CHECK_MS);
    idle.collecting = 1;
    if (!luahost_collect_some(SLICE_US)) return schedule(SLICE_MS);
    idle.collecting = 0;
    /* the cycle gave Lua's blocks back; this gives the allocator's free pages to the system */
    malloc_trim(0);
    log_debug("idle: Lua garbage collected, free memory handed back");
    schedule(CHECK_MS);
}

int idle_trim_start(struct event_base *base)
{
    idle.tick = evtimer_new(base, on_tick, NULL);
    if (idle.tick == NULL) return -1;
    schedule(CHECK_MS);
    return 0;
}

void idle_trim_stop(void)
{
    if (idle.tick != NULL) event_free(idle.tick);
    idle.tick = NULL;
}
