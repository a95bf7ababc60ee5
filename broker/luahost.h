/* luahost: the Lua 5.4 state that runs the scripts, one coroutine per request.
 *
 * A C function that waits on I/O (Redis, a worker, a timer) takes the running request with
 * luahost_current(), starts the I/O with the request as its context, and returns
 * luahost_yield(). When the I/O completes, its callback builds the results with
 * luahost_push_results() and calls luahost_resume(), or luahost_resume_error() when they could
 * not be built. A request stays alive (anchored in the registry) until its coroutine ends, so
 * such a context is always valid; the *session* may be gone by then, which is why requests
 * hold a session handle and look it up each time.
 *
 * Every Lua call made from C outside a running coroutine is protected: a Lua error there (a
 * full heap, most likely) fails that request or that hook, is logged, and the broker goes on. */
#ifndef MOONPOST_LUAHOST_H
#define MOONPOST_LUAHOST_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "frame.h"
#include "session.h"

#define LUAHOST_REQUEST_META "moonpost.session"

struct luahost_vm; /* one Lua state; the old one lives on after a reload until idle */

struct request {
    session_handle session; /* 0 for timers and hooks */
    uint64_t id;
    uint8_t has_id;
    uint8_t replied;
    uint8_t waiting;        /* yielded on I/O */
    uint8_t anonymous;      /* came before login: its charge counts in the anonymous share too */
    uint8_t detached;       /* runs for its session but answers nothing (a resync) */
    lua_State *co;
    int ref;                /* registry reference that keeps this request and co alive */
    struct luahost_vm *vm;
    uint64_t instructions;  /* VM instructions since the last resume */
    int64_t started_us;
    size_t charge;          /* what it counts against the requests' memory budget */
    int resume_nargs;       /* values the next resume hands to the waiting call */
    const char *resume_error; /* set: the waiting call raises this instead */
    struct request *next_ready; /* in the queue of luahost_resume_soon */
    char what[56];          /* the message type, "timer" or "the on_close hook for USER" */
};

/* Pushes values onto L and returns how many; may raise (it runs protected). */
typedef int (*luahost_push_fn)(lua_State *L, void *ud);

/* luahost_start's answer when the scripts load but the config sets an option that no script
 * or plugin declared, or gives one a bad value: a configuration error. */
#define LUAHOST_BAD_CONFIG (-2)

/* Creates the state and loads every configured script, their options (moonpost.option) read
 * from broker.conf; then checks every option the config sets (options.h). Returns 0, -1 after
 * logging the script error (file:line), or LUAHOST_BAD_CONFIG after logging the setting's
 * error ("FILE:LINE: unknown key 'x'"). */
int luahost_start(void);

/* Loads the scripts into a fresh state, their options read from broker.conf as it is now, and
 * swaps it in only when all of them load and the options check; the options in force (what
 * plugins read) are then the new ones. Returns 0, or -1 with the error in errbuf (the running
 * state and its options stay). */
int luahost_reload(char *errbuf, size_t errlen);

void luahost_stop(void);

/* The router handler of every script route: runs the Lua handler of a frame the router has
 * checked; STATE is the handler's slot in the scripts' routed table. */
void luahost_route(void *state, struct session *s, const struct frame_info *info,
                   const uint8_t *body, size_t len);

/* Pushes the per-session table of HANDLE onto L, creating it when CREATE (else nil). */
void luahost_push_session_data(lua_State *L, session_handle handle);

/* The request whose coroutine is CO, or NULL outside of a handler. */
struct request *luahost_current(lua_State *co);

/* Yields the running request until luahost_resume(). */
int luahost_yield(lua_State *co, struct request *r);

/* Resumes R with NARGS values already pushed onto r->co. */
void luahost_resume(struct request *r, int nargs);

/* Resumes R with NARGS values already pushed onto r->co on a callback of its own, after the
 * I/O of this loop pass (R must be waiting, or about to yield). 0, or -1 when out of memory. */
int luahost_resume_soon(struct request *r, int nargs);

/* Builds the values a waiting request resumes with: FN runs protected on R's main state and
 * what it pushed moves onto r->co. Returns how many, or -1 (nothing pushed) when FN failed. */
int luahost_push_results(struct request *r, luahost_push_fn fn, void *ud);

/* Resumes R so that the call it waits in raises WHY (a static string): for results that
 * could not be built. */
void luahost_resume_error(struct request *r, const char *why);

/* Runs FN protected on the main state L; what it pushed stays there. Returns how many, or -1
 * (L as before) when it raised. */
int luahost_protected(lua_State *L, luahost_push_fn fn, void *ud);

/* Runs, in a new coroutine of the current scripts, the function and arguments FN pushes
 * (protected). WHAT names it in logs. Returns 0, or -1 (logged). */
int luahost_spawn(const char *what, luahost_push_fn fn, void *ud);

/* The main state of the request's Lua state: idle whenever an I/O callback runs, so callbacks
 * build results there (luahost_protected) and move them onto the coroutine. */
lua_State *luahost_main_state(const struct request *r);

/* Bytes the current Lua state uses, and bytes the requests in flight are counted to hold. */
size_t luahost_memory_used(void);
/* Collecting what a burst of requests left behind, which the incremental collector only
 * reclaims as new allocations drive it: worth it when the current state's heap is over twice
 * what the last finished cycle left (and over 1 MiB). luahost_collect_some runs the collector
 * for about BUDGET_US and returns 1 once a cycle finished (the pages it emptied then go back to
 * the system), else 0: call it again. */
int luahost_garbage_worth_collecting(void);
int luahost_collect_some(int64_t budget_us);
size_t luahost_request_memory(void);

/* Every load of the scripts has a generation number: the one serving requests, and the one
 * being loaded (they differ only while a load runs). */
unsigned luahost_generation(void);
unsigned luahost_loading_generation(void);

/* The options the scripts of L's state declare into, while that state loads; else NULL. */
struct options *luahost_loading_options(lua_State *L);

/* The state the current scripts run on (for registering metadata at load time). */
lua_State *luahost_state(void);

/* The directory of the first script (where require() and redis libraries are looked up). */
const char *luahost_script_dir(void);


#endif
