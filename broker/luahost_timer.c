/* luahost_timer: moonpost.sleep (yields), moonpost.every (a periodic function), s:drain (yields
 * until a session's output drains, with a deadline) and moonpost.waiter (a request yields until
 * another wakes it). */
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <event2/event.h>

#include "broker.h"
#include "clock.h"
#include "log.h"
#include "luahost_api.h"
#include "luahost.h"
#include "luahost_timer.h"
#include "session.h"

struct timer {
    struct event *ev;
    struct request *sleeper; /* sleep and drain: the request to resume */
    session_handle session;  /* drain: whose output */
    size_t low_water;        /* drain: done at or below this many queued bytes */
    double timeout;          /* drain: seconds allowed, for the log */
    unsigned vm_generation;  /* every: the scripts generation it belongs to */
    int fn_ref;              /* every: the function, in that state's registry */
    struct timer *prev, *next;
};

static struct timer *timers;

static void unlink_timer(struct timer *t)
{
    if (t->prev) t->prev->next = t->next; else timers = t->next;
    if (t->next) t->next->prev = t->prev;
    event_free(t->ev);
    free(t);
}

/* A timer in the list, its event not armed yet. */
static struct timer *link_timer(int persist, event_callback_fn fn)
{
    struct timer *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->ev = event_new(broker.base, -1, persist ? EV_PERSIST : 0, fn, t);
    if (t->ev == NULL) {
        free(t);
        return NULL;
    }
    t->next = timers;
    if (timers) timers->prev = t;
    timers = t;
    return t;
}

static struct timer *new_timer(double seconds, int persist, event_callback_fn fn)
{
    struct timer *t = link_timer(persist, fn);
    if (t == NULL) return NULL;
    struct timeval tv = clock_timeval(seconds);
    event_add(t->ev, &tv);
    return t;
}

static void on_sleep_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct timer *t = arg;
    struct request *r = t->sleeper;
    unlink_timer(t);
    luahost_resume(r, 0);
}

static double check_seconds(lua_State *L, int idx)
{
    double seconds = luaL_checknumber(L, idx);
    luaL_argcheck(L, seconds >= 0 && seconds <= 86400 * 365, idx, "seconds between 0 and a year");
    return seconds;
}

int mpl_sleep(lua_State *L)
{
    double seconds = check_seconds(L, 1);
    struct request *r = luahost_current(L);
    if (r == NULL) return luaL_error(L, "moonpost.sleep can only be called from a handler or timer");
    if (seconds == 0) { /* the end of this pass's I/O: no timer */
        if (luahost_resume_soon(r, 0) != 0) return luaL_error(L, "out of memory");
        return luahost_yield(L, r);
    }
    struct timer *t = new_timer(seconds, 0, on_sleep_done);
    if (t == NULL) return luaL_error(L, "out of memory");
    t->sleeper = r;
    return luahost_yield(L, r);
}

/* Woken by the session (EV_WRITE: drained or closing) or by the deadline (EV_TIMEOUT). */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct timer *t = arg;
    struct request *r = t->sleeper;
    struct session *s = session_get(t->session);
    int drained = s != NULL && session_queued(s) <= t->low_water;
    if (s != NULL) session_cancel_drain(s, t->ev);
    if (s != NULL && !drained && (what & EV_TIMEOUT)) {
        char addr[64];
        stats.slow_consumers_total++;
        log_warn("session %s (%s): output not read for %.1f s, dropped as a slow reader",
                 s->user_len ? s->user : "-", session_addr_text(s, addr, sizeof addr),
                 t->timeout);
        session_close(s, 429, "slow reader: output not read");
    }
    unlink_timer(t);
    lua_checkstack(r->co, 1);
    lua_pushboolean(r->co, drained);
    luahost_resume(r, 1);
}

int luahost_timer_wait_drain(lua_State *L, struct request *r, struct session *s, size_t low_water,
                         double timeout)
{
    struct timer *t = link_timer(0, on_drain);
    if (t == NULL) return luaL_error(L, "s:drain: out of memory");
    if (session_wait_drain(s, low_water, t->ev) != 0) {
        unlink_timer(t);
        return luaL_error(L, "s:drain: another drain waits on this session");
    }
    struct timeval tv = clock_timeval(timeout);
    if (timeout > 0) event_add(t->ev, &tv);
    t->sleeper = r;
    t->session = s->handle;
    t->low_water = low_water;
    t->timeout = timeout;
    return luahost_yield(L, r);
}

static int push_timer_fn(lua_State *L, void *ud)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, *(const int *)ud);
    return 1;
}

static void on_every(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct timer *t = arg;
    lua_State *L = luahost_state();
    if (L == NULL || t->vm_generation != luahost_generation()) {
        unlink_timer(t); /* its scripts were replaced by a reload */
        return;
    }
    luahost_spawn("timer", push_timer_fn, &t->fn_ref);
}

int mpl_every(lua_State *L)
{
    double seconds = check_seconds(L, 1);
    luaL_argcheck(L, seconds >= 0.01, 1, "at least 0.01 seconds");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    struct timer *t = new_timer(seconds, 1, on_every);
    if (t == NULL) return luaL_error(L, "out of memory");
    t->fn_ref = ref;
    t->vm_generation = luahost_loading_generation();
    return 0;
}

/* ---- waiters ---- */

#define WAITER_META "moonpost.waiter"

struct waiter {
    struct request *owner; /* the request that waits; NULL once it has its values */
    int waiting;           /* owner yielded in wait() */
    int woken;             /* wake() ran */
    int nvalues;           /* woken before the wait: the values are the uservalue table */
};

/* Pushes the values wake() kept in W's uservalue table (W at WAITER_INDEX of L). */
static int push_kept_values(lua_State *L, int waiter_index, const struct waiter *w)
{
    int n = w->nvalues;
    if (!lua_checkstack(L, n + 1)) return -1;
    lua_getiuservalue(L, waiter_index, 1);
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

/* w:wait() -- yields until w:wake(...) and returns its values (at once when it ran already).
 * Only the request that made w may wait on it, once. */
static int waiter_wait(lua_State *L)
{
    struct waiter *w = luaL_checkudata(L, 1, WAITER_META);
    struct request *r = luahost_current(L);
    if (r == NULL || r != w->owner || w->waiting)
        return luaL_error(L, "a waiter is waited on once, by the request that made it");
    if (w->woken) {
        w->owner = NULL;
        int n = push_kept_values(L, 1, w);
        return n < 0 ? luaL_error(L, "waiter: no stack left for the values") : n;
    }
    w->waiting = 1;
    return luahost_yield(L, r);
}

/* w:wake(...) -- the waiting request goes on with these values, after the I/O of this loop
 * pass (never inside the coroutine that woke it); once. */
static int waiter_wake(lua_State *L)
{
    struct waiter *w = luaL_checkudata(L, 1, WAITER_META);
    if (w->woken) return luaL_error(L, "a waiter is woken once");
    int n = lua_gettop(L) - 1;
    if (w->waiting) { /* the values go onto the owner's stack, the arguments of its resume */
        lua_State *co = w->owner->co;
        if (!lua_checkstack(co, n)) return luaL_error(L, "waiter: no stack left for the values");
        lua_xmove(L, co, n);
        if (luahost_resume_soon(w->owner, n) != 0) {
            lua_pop(co, n);
            return luaL_error(L, "out of memory");
        }
        w->owner = NULL;
        w->woken = 1;
        return 0;
    }
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i + 1);
        lua_rawseti(L, -2, i);
    }
    lua_setiuservalue(L, 1, 1);
    w->nvalues = n;
    w->woken = 1;
    return 0;
}

/* moonpost.waiter() -- a waiter for the calling request: it yields in w:wait() until another
 * request (or a timer) calls w:wake(...). */
int mpl_waiter(lua_State *L)
{
    struct request *r = luahost_current(L);
    if (r == NULL) return luaL_error(L, "moonpost.waiter can only be called from a handler or timer");
    struct waiter *w = lua_newuserdatauv(L, sizeof *w, 1);
    *w = (struct waiter){r, 0, 0, 0};
    if (luaL_newmetatable(L, WAITER_META)) {
        static const luaL_Reg methods[] = {{"wait", waiter_wait}, {"wake", waiter_wake}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    return 1;
}

void luahost_timer_stop_all(void)
{
    struct timer *t = timers;
    while (t != NULL) {
        struct timer *next = t->next;
        struct session *s = t->session ? session_get(t->session) : NULL;
        if (s != NULL) session_cancel_drain(s, t->ev); /* no dangling drain waiter */
        event_free(t->ev);
        free(t);
        t = next;
    }
    timers = NULL;
}
