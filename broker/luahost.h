/* luahost: the Lua 5.4 state that runs the scripts, one coroutine per request.
 *
 * A C function that waits on I/O (Redis, a worker, a timer) takes the running request with
 * luahost_current(), starts the I/O with the request as its context, and returns
 * luahost_yield(). When the I/O completes, its callback pushes the results onto request->co
 * and calls luahost_resume(). A request stays alive (anchored in the registry) until its
 * coroutine ends, so such a context is always valid; the *session* may be gone by then, which
 * is why requests hold a session handle and look it up each time. */
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
    lua_State *co;
    int ref;                /* registry reference that keeps this request and co alive */
    struct luahost_vm *vm;
    uint64_t instructions;  /* VM instructions since the last resume */
    int64_t started_us;
};

/* Creates the state and loads every configured script. Returns 0, or -1 after logging the
 * script error (file:line). */
int luahost_start(void);

/* Loads the scripts into a fresh state and swaps it in only when all of them load. Returns 0,
 * or -1 with the error in errbuf (the running state stays). */
int luahost_reload(char *errbuf, size_t errlen);

void luahost_stop(void);

/* Runs the Lua handler of a frame the router has checked; SLOT is the one router_add_lua got. */
void luahost_dispatch(struct session *s, const struct frame_info *info, const uint8_t *body,
                      size_t len, int slot);

/* Forgets the scripts' per-session table (s.data) of a session being freed. */
void luahost_session_freed(session_handle handle);

/* Pushes the per-session table of HANDLE onto L, creating it when CREATE (else nil). */
void luahost_push_session_data(lua_State *L, session_handle handle);

/* An authenticated session ended and its user is no longer online here. */
void luahost_user_gone(const char *user, size_t len);

/* The request whose coroutine is CO, or NULL outside of a handler. */
struct request *luahost_current(lua_State *co);

/* Yields the running request until luahost_resume(). */
int luahost_yield(lua_State *co, struct request *r);

/* Resumes R with NARGS values already pushed onto r->co. */
void luahost_resume(struct request *r, int nargs);

/* Starts FN (at the top of the main state's stack, popped) in a new coroutine with NARGS
 * arguments below it... see luahost.c: used by timers and hooks. Returns 0 or -1. */
int luahost_spawn(lua_State *L, int nargs);

/* The main state of the request's Lua state: idle whenever an I/O callback runs, so callbacks
 * build results there under lua_pcall and lua_xmove them onto the coroutine. */
lua_State *luahost_main_state(const struct request *r);

/* Every load of the scripts has a generation number: the one serving requests, and the one
 * being loaded (they differ only while a load runs). */
unsigned luahost_generation(void);
unsigned luahost_loading_generation(void);

/* The state the current scripts run on (for registering metadata at load time). */
lua_State *luahost_state(void);

/* The directory of the first script (where require() and redis libraries are looked up). */
const char *luahost_script_dir(void);

/* Sources registered with moonpost.redis_library(), loaded into Redis on every connect. */
size_t luahost_redis_library_count(void);
const char *luahost_redis_library_at(size_t i, size_t *len);

#endif
