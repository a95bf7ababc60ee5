/* luahost: the sandboxed Lua state, script loading and reload, and the coroutine per request. */
#include "luahost.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "broker.h"
#include "codec.h"
#include "log.h"
#include "lua_pool.h"
#include "luahost_api.h"
#include "options.h"
#include "presence.h"
#include "router.h"
#include "store.h"

#define BUDGET_HOOK_EVERY 1000 /* instructions between two checks of the budget */
/* What a request is counted to hold against the requests' memory budget: its coroutine and
 * request object, the frame's bytes (strings) and a table slot or object per decoded value. */
#define REQUEST_BASE_COST 2048
#define REQUEST_VALUE_COST 80

struct luahost_vm {
    lua_State *L;
    struct lua_pool pool; /* the state's small blocks */
    size_t mem_used;
    size_t mem_after_collect; /* what luahost_collect_garbage left last */
    size_t mem_limit;
    int pending;  /* requests whose coroutine has not finished */
    int retired;  /* replaced by a reload: closed once pending drops to 0 */
    int loaded;   /* every script ran: its routes may be served */
    uint64_t load_instructions; /* run by the main thread for the script being loaded */
    unsigned generation;
    struct options *options; /* declared while loading; installed when the load succeeds */
    char **redis_libs;
    size_t *redis_lib_lens;
    size_t redis_lib_count;
};

static struct luahost_vm *current;
static unsigned generations;
static size_t request_memory; /* the charges of every request in flight, all states */
static size_t anonymous_memory; /* of those, the requests that came before a login */
static char script_dir[4096] = ".";

/* Registry keys: their addresses are unique. */
static const char handlers_key = 'h';
static const char flags_key = 'a'; /* type -> its route flags */
static const char close_hooks_key = 'c';
static const char session_data_key = 'd';
static const char thread_pool_key = 'p';
static const char resync_key = 's'; /* mp.on_resync's function */
static const char routed_key = 'r'; /* array of the handlers the router points at, by slot */

#define THREAD_POOL_MAX 256 /* finished coroutines kept for reuse */

/* The sanitizer build gives every block to malloc, where AddressSanitizer watches it. */
/* Requests that resume after this pass's I/O: one event for all of them, no allocation. */
static struct {
    struct request *head, **tail;
    struct event *ev;
} ready = {NULL, &ready.head, NULL};

static void *pool_or_malloc(struct luahost_vm *vm, void *ptr, size_t osize, size_t nsize)
{
#ifdef MOONPOST_SANITIZE
    (void)vm, (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
#else
    return lua_pool_realloc(&vm->pool, ptr, osize, nsize);
#endif
}

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct luahost_vm *vm = ud;
    if (ptr == NULL) osize = 0;
    if (nsize == 0) {
        pool_or_malloc(vm, ptr, osize, 0);
        vm->mem_used -= osize;
        return NULL;
    }
    if (vm->mem_limit > 0 && nsize > osize && vm->mem_used + (nsize - osize) > vm->mem_limit)
        return NULL;
    void *p = pool_or_malloc(vm, ptr, osize, nsize);
    if (p != NULL) vm->mem_used += nsize - osize;
    return p;
}

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* ---- sandbox ---- */

/* Counts the instructions of a request between two resumes, or of the main thread while it
 * loads a script (a loop at load time must not hang the start, `-t` or a reload). */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    int limit = broker.conf.lua_instruction_limit;
    if (limit <= 0) return;
    struct request *r = luahost_current(L);
    void *vm = NULL;
    if (r == NULL) lua_getallocf(L, &vm);
    uint64_t *count = r != NULL ? &r->instructions : &((struct luahost_vm *)vm)->load_instructions;
    *count += BUDGET_HOOK_EVERY;
    if (*count <= (uint64_t)limit) return;
    const char *src = "?";
    int line = -1;
    if (lua_getinfo(L, "Sl", ar)) {
        src = ar->short_src;
        line = ar->currentline;
    }
    lua_pushfstring(L, "%s:%d: instruction budget exceeded (%d)%s", src, line, limit,
                    r == NULL ? " while loading" : "");
    lua_error(L);
}

/* Last resort: an error outside any protected call. Everything is meant to run protected, so
 * this is a bug; say what it was before Lua aborts. */
static int on_panic(lua_State *L)
{
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a string)";
    log_error("Lua error outside any protected call, aborting: %s", msg);
    return 0;
}

/* load(chunk [, chunkname [, mode [, env]]]) with the mode forced to text; the real load is
 * this closure's upvalue, out of the scripts' reach. */
static int text_only_load(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    if (n >= 2)
        lua_pushvalue(L, 2);
    else
        lua_pushnil(L);
    lua_pushliteral(L, "t");
    if (n >= 4) lua_pushvalue(L, 4); /* an explicit env, even nil, must stay explicit */
    lua_call(L, n >= 4 ? 4 : 3, LUA_MULTRET);
    return lua_gettop(L) - n;
}

void luahost_join_args(lua_State *L, int first, char sep)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = first; i <= n; i++) {
        if (i > first) luaL_addchar(&b, sep);
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

static int lua_print_to_log(lua_State *L)
{
    luahost_join_args(L, 1, '\t');
    log_info("lua: %s", lua_tostring(L, -1));
    return 0;
}

/* require(name): "moonpost", or NAME.lua (dots as slashes) from the scripts' directory. */
static int sandboxed_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    if (strstr(name, "..") != NULL || name[0] == '/' || name[0] == '.')
        return luaL_error(L, "require: bad module name '%s'", name);
    luaL_Buffer path;
    luaL_buffinit(L, &path);
    luaL_addstring(&path, script_dir);
    luaL_addchar(&path, '/');
    for (const char *c = name; *c; c++) luaL_addchar(&path, *c == '.' ? '/' : *c);
    luaL_addstring(&path, ".lua");
    luaL_pushresult(&path);
    const char *file = lua_tostring(L, -1);
    if (luaL_loadfilex(L, file, "t") != LUA_OK) return lua_error(L);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name); /* package.loaded[name] */
    return 1;
}

static void open_sandbox(lua_State *L)
{
    static const luaL_Reg safe_libs[] = {{LUA_GNAME, luaopen_base},
                                         {LUA_TABLIBNAME, luaopen_table},
                                         {LUA_STRLIBNAME, luaopen_string},
                                         {LUA_MATHLIBNAME, luaopen_math},
                                         {LUA_UTF8LIBNAME, luaopen_utf8},
                                         {LUA_OSLIBNAME, luaopen_os},
                                         {NULL, NULL}};
    for (const luaL_Reg *lib = safe_libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* os: only the clock and dates */
    lua_getglobal(L, "os");
    static const char *const os_unsafe[] = {"execute", "exit", "getenv", "remove", "rename",
                                            "setlocale", "tmpname", NULL};
    for (const char *const *f = os_unsafe; *f; f++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *f);
    }
    lua_pop(L, 1);
    static const char *const base_unsafe[] = {"dofile", "loadfile", NULL};
    for (const char *const *f = base_unsafe; *f; f++) {
        lua_pushnil(L);
        lua_setglobal(L, *f);
    }
    lua_getglobal(L, "load");
    lua_pushcclosure(L, text_only_load, 1);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, lua_print_to_log);
    lua_setglobal(L, "print");
    lua_pushcfunction(L, sandboxed_require);
    lua_setglobal(L, "require");
}

/* ---- protected calls ---- */

struct protected_call {
    luahost_push_fn fn;
    void *ud;
};

static int run_protected(lua_State *L)
{
    struct protected_call *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    return c->fn(L, c->ud);
}

int luahost_protected(lua_State *L, luahost_push_fn fn, void *ud)
{
    int top = lua_gettop(L);
    struct protected_call c = {fn, ud};
    lua_pushcfunction(L, run_protected); /* a light C function: pushing it allocates nothing */
    lua_pushlightuserdata(L, &c);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) { /* logged by the caller, with context */
        lua_settop(L, top);
        return -1;
    }
    return lua_gettop(L) - top;
}

/* ---- state ---- */

static void vm_free(struct luahost_vm *vm)
{
    lua_close(vm->L);
    lua_pool_release(&vm->pool);
    options_free(vm->options);
    for (size_t i = 0; i < vm->redis_lib_count; i++) free(vm->redis_libs[i]);
    free(vm->redis_libs);
    free(vm->redis_lib_lens);
    free(vm);
}

static int open_libs(lua_State *L, void *ud)
{
    (void)ud;
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &handlers_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &flags_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &close_hooks_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &session_data_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &thread_pool_key);
    open_sandbox(L);
    codec_open(L);
    luaL_requiref(L, "moonpost", luaopen_moonpost, 0);
    lua_pop(L, 1);
    return 0;
}

static int traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* Compiles and runs the script at path (a light userdata); a compile error is returned, a
 * run-time one raised (and given a traceback). */
static int run_script(lua_State *L)
{
    const char *path = lua_touserdata(L, 1);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) return 1;
    lua_call(L, 0, 0);
    return 0;
}

static int load_script(struct luahost_vm *vm, const char *path, char *errbuf, size_t errlen)
{
    lua_State *L = vm->L;
    vm->load_instructions = 0; /* each script gets the budget of one handler run */
    lua_pushcfunction(L, traceback_handler);
    lua_pushcfunction(L, run_script);
    lua_pushlightuserdata(L, (void *)path);
    int failed = lua_pcall(L, 1, 1, -3) != LUA_OK || !lua_isnil(L, -1);
    if (failed)
        snprintf(errbuf, errlen, "%s",
                 lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                : "(error object is not a string)");
    lua_pop(L, 2);
    return failed ? -1 : 0;
}

static void set_script_dir(void)
{
    if (broker.conf.script_path != NULL) {
        snprintf(script_dir, sizeof script_dir, "%s", broker.conf.script_path);
        return;
    }
    if (broker.conf.script.count == 0) return;
    snprintf(script_dir, sizeof script_dir, "%s", broker.conf.script.items[0]);
    char *slash = strrchr(script_dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(script_dir, sizeof script_dir, ".");
}

/* Loads the scripts into a new state, their options read from C. NULL with ERRBUF filled when
 * one fails, or when the config sets an option nobody declared or gives one a bad value
 * (*BAD_CONFIG set then). */
static struct luahost_vm *vm_load(const struct conf *c, char *errbuf, size_t errlen,
                                  int *bad_config)
{
    *bad_config = 0;
    struct luahost_vm *vm = calloc(1, sizeof *vm);
    if (vm == NULL) return NULL;
    vm->mem_limit = (size_t)c->lua_memory_limit;
    vm->generation = ++generations;
    vm->options = options_derive(options_current(), c);
    vm->L = vm->options != NULL ? lua_newstate(limited_alloc, vm) : NULL;
    if (vm->L == NULL) {
        options_free(vm->options);
        free(vm);
        snprintf(errbuf, errlen, "cannot create a Lua state");
        return NULL;
    }
    lua_State *L = vm->L;
    lua_atpanic(L, on_panic);
    *(struct request **)lua_getextraspace(L) = NULL; /* the main thread runs no request */
    if (luahost_protected(L, open_libs, NULL) < 0) {
        snprintf(errbuf, errlen, "cannot open the Lua libraries (lua_memory_limit too small?)");
        vm_free(vm);
        return NULL;
    }
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_HOOK_EVERY);
    /* the incremental collector (Lua's default) on purpose: the generational one raised
     * ping throughput but its atomic major collections stalled the loop for milliseconds
     * (private-chat p99 0.7 ms -> 5-10 ms at 20,000 msgs/s, docs/benchmarks.md) */
    struct luahost_vm *previous = current;
    current = vm; /* scripts register into the state being loaded */
    for (size_t i = 0; i < c->script.count; i++) {
        if (load_script(vm, c->script.items[i], errbuf, errlen) != 0) {
            current = previous;
            vm_free(vm);
            return NULL;
        }
    }
    current = previous;
    if (options_check(vm->options, errbuf, errlen) != 0) {
        *bad_config = 1;
        vm_free(vm);
        return NULL;
    }
    vm->loaded = 1;
    return vm;
}

/* Makes the router serve exactly the types L's scripts registered. Everything that allocates
 * comes before the router is touched, so a memory error leaves the routes as they were. */
static int sync_routes_protected(lua_State *L, void *ud)
{
    (void)ud;
    lua_newtable(L); /* the routed handlers, by slot */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &handlers_key);
    int slot = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) lua_rawseti(L, -4, ++slot); /* routed[slot] = handler */
    lua_pushvalue(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &routed_key);
    router_remove_fn(luahost_route);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &flags_key);
    slot = 0;
    lua_pushnil(L);
    while (lua_next(L, -3)) { /* the same order: the table did not change in between */
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        unsigned flags = (unsigned)lua_tointeger(L, -1);
        lua_pop(L, 1);
        const char *type = lua_tostring(L, -1);
        /* the slot travels as the route's state: no allocation per route */
        void *state = (void *)(intptr_t)++slot; // NOLINT(performance-no-int-to-ptr)
        if (router_add(type, flags | ROUTE_REPLACEABLE, luahost_route, state) == ROUTER_TAKEN)
            log_warn("type '%s' is served by a C plugin; its Lua handler is not used", type);
    }
    return 0;
}

static int sync_routes(struct luahost_vm *vm)
{
    return luahost_protected(vm->L, sync_routes_protected, NULL) < 0 ? -1 : 0;
}

/* VM serves from now on: its options are the ones in force (plugins read them). */
static void install(struct luahost_vm *vm)
{
    current = vm;
    options_install(vm->options);
    vm->options = NULL;
}

static void retire(struct luahost_vm *vm)
{
    if (vm == NULL) return;
    vm->retired = 1;
    if (vm->pending == 0) vm_free(vm);
}

static void on_session_event(void *state, struct session *s, enum session_event event);
static void load_redis_libraries(void *state);
static int subscribed; /* to the session events and the store's connect, for the process */

static int start_resync(struct session *s);

int luahost_start(void)
{
    if (!subscribed && (session_subscribe(on_session_event, NULL) != 0 ||
                        store_on_connected(load_redis_libraries, NULL) != 0))
        return -1;
    subscribed = 1;
    router_set_resync(start_resync);
    set_script_dir();
    char err[1024];
    int bad_config;
    struct luahost_vm *vm = vm_load(&broker.conf, err, sizeof err, &bad_config);
    if (vm == NULL) {
        log_error("%s%s", bad_config ? "" : "scripts: ", err);
        return bad_config ? LUAHOST_BAD_CONFIG : -1;
    }
    install(vm);
    if (sync_routes(vm) != 0) {
        log_error("scripts: no memory left to route their handlers");
        return -1;
    }
    log_info("loaded %zu script(s), %zu route(s)", broker.conf.script.count, router_count());
    return 0;
}

int luahost_reload(char *errbuf, size_t errlen)
{
    set_script_dir();
    int bad_config;
    struct luahost_vm *vm = vm_load(&broker.conf, errbuf, errlen, &bad_config);
    if (vm != NULL && sync_routes(vm) != 0) {
        snprintf(errbuf, errlen, "no memory left to route the handlers");
        vm_free(vm);
        vm = NULL;
    }
    if (vm == NULL) {
        log_error("reload failed, the running scripts stay: %s", errbuf);
        stats.reload_failures_total++;
        return -1;
    }
    struct luahost_vm *old = current;
    install(vm);
    retire(old);
    load_redis_libraries(NULL);
    stats.reloads_total++;
    log_info("reloaded %zu script(s), %zu route(s)", broker.conf.script.count, router_count());
    return 0;
}

void luahost_stop(void)
{
    if (ready.ev != NULL) event_free(ready.ev); /* the requests queued go with their states */
    ready.ev = NULL;
    ready.head = NULL;
    ready.tail = &ready.head;
    struct luahost_vm *vm = current;
    current = NULL;
    options_install(NULL);
    if (vm != NULL) {
        vm->pending = 0; /* coroutines still waiting are dropped with the state */
        vm_free(vm);
    }
}

unsigned luahost_generation(void)
{
    return current ? current->generation : 0;
}

unsigned luahost_loading_generation(void)
{
    return generations;
}

lua_State *luahost_main_state(const struct request *r)
{
    return r->vm->L;
}

struct options *luahost_loading_options(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    struct luahost_vm *vm = ud;
    return vm->loaded ? NULL : vm->options;
}

lua_State *luahost_state(void)
{
    return current ? current->L : NULL;
}

const char *luahost_script_dir(void)
{
    return script_dir;
}

size_t luahost_memory_used(void)
{
    return current ? current->mem_used : 0;
}

int luahost_garbage_worth_collecting(void)
{
    return current != NULL && current->mem_used >= ((size_t)1 << 20) &&
           current->mem_used >= 2 * current->mem_after_collect;
}

int luahost_collect_some(int64_t budget_us)
{
    if (current == NULL) return 1;
    int64_t until = now_us() + budget_us;
    int finished = 0;
    while (!finished && now_us() < until) finished = lua_gc(current->L, LUA_GCSTEP, 64);
    if (!finished) return 0;
    current->mem_after_collect = current->mem_used;
#ifndef MOONPOST_SANITIZE
    lua_pool_trim(&current->pool); /* the pages of the slabs the cycle emptied */
#endif
    return 1;
}

size_t luahost_request_memory(void)
{
    return request_memory;
}

/* ---- requests ---- */

struct request *luahost_current(lua_State *co)
{
    return *(struct request **)lua_getextraspace(co);
}

/* Where a waiting call continues: with the values it was resumed with, or raising the error
 * its results could not be built for. */
static int resume_k(lua_State *co, int status, lua_KContext ctx)
{
    (void)status, (void)ctx;
    struct request *r = luahost_current(co);
    const char *why = r->resume_error;
    if (why != NULL) {
        r->resume_error = NULL;
        return luaL_error(co, "%s", why);
    }
    return r->resume_nargs;
}

int luahost_yield(lua_State *co, struct request *r)
{
    r->waiting = 1;
    return lua_yieldk(co, 0, 0, resume_k);
}

/* Creating a coroutine costs allocations and collection work on every request; a finished one
 * (reset, at the top of L) is kept instead (a request's `s` kept by a script no longer points
 * to it). */
static void recycle_thread(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &thread_pool_key);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n < THREAD_POOL_MAX) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, n + 1);
    }
    lua_pop(L, 2);
}

/* Pushes a coroutine onto L: a recycled one when there is one. */
static lua_State *take_thread(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &thread_pool_key);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n == 0) {
        lua_pop(L, 1);
        return lua_newthread(L);
    }
    lua_rawgeti(L, -1, n);
    lua_pushnil(L);
    lua_rawseti(L, -3, n);
    lua_remove(L, -2);
    return lua_tothread(L, -1);
}

/* What finish() lets go: copied out of the request, which may be collected once unreferenced
 * (an allocation failure below runs an emergency collection). */
struct release {
    lua_State *co;
    int ref;
};

/* Lets the request go (its registry reference), then keeps its coroutine for reuse. */
static int release_protected(lua_State *L, void *ud)
{
    struct release *rel = ud;
    /* a coroutine that returned is ready for the next function once its stack is empty;
     * resetting it would also shrink its stack, which the next request grows again (two
     * reallocations per request). One that failed or still waits is reset: that does not raise
     * and leaves its stack empty. */
    if (lua_status(rel->co) == LUA_OK)
        lua_settop(rel->co, 0);
    else
        lua_resetthread(rel->co);
    lua_pushthread(rel->co);  /* anchors co while the request, which holds it, goes */
    lua_xmove(rel->co, L, 1);
    int ref = rel->ref;
    rel->ref = LUA_NOREF;
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    recycle_thread(L); /* may fail to allocate: co is then only collected */
    return 0;
}

static void finish(struct request *r)
{
    struct luahost_vm *vm = r->vm;
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (s != NULL) {
        if (!r->replied) {
            r->replied = 1;
            session_reply(s, r->has_id, r->id, 200, NULL);
        }
        if (!r->detached) session_handler_done(s);
    }
    if (r->session != 0)
        stats_observe(stats.handler_latency_buckets, &stats.handler_latency_us_sum,
                      &stats.handler_latency_count, (uint64_t)(now_us() - r->started_us));
    request_memory -= r->charge;
    if (r->anonymous) anonymous_memory -= r->charge;
    struct release rel = {r->co, r->ref};
    *(struct request **)lua_getextraspace(rel.co) = NULL;
    r->co = NULL; /* r is not touched past this point */
    r->ref = LUA_NOREF;
    /* unref overwrites existing keys: it allocates nothing, so it is safe unprotected */
    if (luahost_protected(vm->L, release_protected, &rel) < 0 && rel.ref != LUA_NOREF)
        luaL_unref(vm->L, LUA_REGISTRYINDEX, rel.ref);
    if (--vm->pending == 0 && vm->retired) vm_free(vm);
}

/* "'register' from 127.0.0.1 (user -)": what a log line about R is about. */
static const char *request_context(const struct request *r, char *buf, size_t len)
{
    struct session *s = r->session ? session_get(r->session) : NULL;
    char addr[64];
    if (s == NULL)
        snprintf(buf, len, "'%s'", r->what);
    else
        snprintf(buf, len, "'%s' from %s (user %s)", r->what,
                 session_addr_text(s, addr, sizeof addr), s->user_len ? s->user : "-");
    return buf;
}

static int push_traceback(lua_State *L, void *ud)
{
    lua_State *co = ud;
    const char *msg = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1)
                                                      : "(error object is not a string)";
    luaL_traceback(L, co, msg, 0);
    return 1;
}

/* Logs why R failed (MSG, or the error object on top of CO) and answers 500 if not yet. */
static void fail_request(struct request *r, lua_State *co, const char *msg)
{
    char who[128];
    request_context(r, who, sizeof who);
    lua_State *L = r->vm->L;
    if (msg == NULL && luahost_protected(L, push_traceback, co) == 1) {
        log_error("handler error in %s: %s", who, lua_tostring(L, -1));
        lua_pop(L, 1);
    } else {
        if (msg == NULL)
            msg = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : "(not a string)";
        log_error("handler error in %s: %s", who, msg);
    }
    stats.handler_errors_total++;
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (s != NULL && !r->replied) {
        r->replied = 1;
        session_reply(s, r->has_id, r->id, 500, "internal error");
    }
}

void luahost_resume(struct request *r, int nargs)
{
    int nres = 0;
    r->waiting = 0;
    r->instructions = 0;
    r->resume_nargs = nargs;
    int status = lua_resume(r->co, r->vm->L, nargs, &nres);
    if (status == LUA_YIELD) {
        if (!r->waiting) {
            /* a yield that no I/O will resume (coroutine.yield is not offered, but be sure) */
            fail_request(r, r->co, "handlers may only yield inside moonpost calls");
            finish(r);
        }
        return;
    }
    if (status != LUA_OK) fail_request(r, r->co, NULL);
    finish(r);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    struct request *list = ready.head;
    ready.head = NULL;
    ready.tail = &ready.head;
    while (list != NULL) {
        struct request *r = list;
        list = r->next_ready;
        r->next_ready = NULL;
        luahost_resume(r, r->resume_nargs);
    }
}

int luahost_resume_soon(struct request *r, int nargs)
{
    if (ready.ev == NULL) {
        ready.ev = event_new(broker.base, -1, 0, on_ready, NULL);
        if (ready.ev == NULL) return -1;
    }
    r->resume_nargs = nargs;
    r->next_ready = NULL;
    *ready.tail = r;
    ready.tail = &r->next_ready;
    if (ready.head == r) event_active(ready.ev, EV_TIMEOUT, 0);
    return 0;
}

int luahost_push_results(struct request *r, luahost_push_fn fn, void *ud)
{
    lua_State *L = r->vm->L;
    int n = luahost_protected(L, fn, ud);
    if (n < 0) return -1;
    if (!lua_checkstack(r->co, n)) { /* does not raise: 0 when the stack cannot grow */
        lua_pop(L, n);
        return -1;
    }
    lua_xmove(L, r->co, n);
    return n;
}

void luahost_resume_error(struct request *r, const char *why)
{
    r->resume_error = why;
    luahost_resume(r, 0);
}

/* Creates a request and its coroutine on the main state, anchored in the registry. */
static struct request *new_request(struct luahost_vm *vm, session_handle session,
                                   const char *what, size_t what_len)
{
    lua_State *L = vm->L;
    lua_State *co = take_thread(L);
    struct request *r = lua_newuserdatauv(L, sizeof *r, 1);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, LUAHOST_REQUEST_META);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, 1); /* the request keeps its coroutine alive */
    r->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    r->co = co;
    r->vm = vm;
    r->session = session;
    r->started_us = now_us();
    if (what_len >= sizeof r->what) what_len = sizeof r->what - 1;
    memcpy(r->what, what, what_len);
    *(struct request **)lua_getextraspace(co) = r;
    vm->pending++;
    return r;
}

/* ---- dispatch ---- */

static size_t request_budget(void)
{
    if (broker.conf.lua_memory_limit <= 0) return SIZE_MAX;
    return (size_t)broker.conf.lua_memory_limit / 100 *
           (size_t)broker.conf.lua_request_memory_share;
}

/* How many decoded values fit a request of BASE bytes when USED of BUDGET is taken. */
static size_t values_room(size_t used, size_t base, size_t budget)
{
    return used + base > budget ? 0 : (budget - used - base) / REQUEST_VALUE_COST;
}

struct dispatch_args {
    struct session *s;
    const struct frame_info *info;
    const uint8_t *body;
    size_t len;
    int slot;
    struct request *r;
    int refused;         /* a code to answer instead of running the handler */
    const char *why;
};

/* Decodes the frame within the values the budgets leave, then starts the request with the
 * handler, `s` and the message on its coroutine. */
static int prepare_dispatch(lua_State *L, void *ud)
{
    struct dispatch_args *a = ud;
    size_t base = REQUEST_BASE_COST + a->len, budget = request_budget();
    size_t room = values_room(request_memory, base, budget);
    /* requests before login hold at most half: a flood of anonymous connections cannot keep
     * logged-in users out */
    int anonymous = a->s->state == SESSION_ANONYMOUS;
    if (anonymous) {
        size_t anonymous_room = values_room(anonymous_memory, base, budget / 2);
        if (anonymous_room < room) room = anonymous_room;
    }
    size_t max = (size_t)broker.conf.max_frame_values;
    if (room == 0) { /* the budget is spent (and codec_decode would take 0 for "no bound") */
        a->refused = 503;
        a->why = "busy, retry later";
        return 0;
    }
    size_t values = 0;
    const char *err = NULL;
    int rc = codec_decode(L, a->body, a->len, room < max ? room : max, &values, &err);
    if (rc != CODEC_OK) {
        a->refused = rc == CODEC_MALFORMED ? 400 : room < max ? 503 : 413;
        a->why = rc == CODEC_MALFORMED ? err
                 : room < max          ? "busy, retry later"
                                       : "frame holds more values than max_frame_values";
        return 0;
    }
    struct request *r = new_request(current, a->s->handle, (const char *)a->info->type,
                                    a->info->type_len);
    r->has_id = (uint8_t)a->info->has_id;
    r->id = a->info->id;
    r->charge = base + values * REQUEST_VALUE_COST;
    r->anonymous = (uint8_t)anonymous;
    request_memory += r->charge;
    if (anonymous) anonymous_memory += r->charge;
    lua_State *co = r->co; /* a fresh or reset coroutine: LUA_MINSTACK free slots */
    lua_rawgetp(co, LUA_REGISTRYINDEX, &routed_key);
    lua_rawgeti(co, -1, a->slot);
    lua_remove(co, -2);
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->ref);
    lua_xmove(L, co, 1); /* the message */
    a->r = r;
    return 0;
}

void luahost_route(void *state, struct session *s, const struct frame_info *info,
                   const uint8_t *body, size_t len)
{
    if (current == NULL) {
        session_reply(s, info->has_id, info->id, 503, "scripts not loaded");
        session_handler_done(s);
        return;
    }
    struct dispatch_args a = {s, info, body, len, (int)(intptr_t)state, NULL, 0, NULL};
    if (luahost_protected(current->L, prepare_dispatch, &a) < 0) {
        char addr[64];
        log_error("cannot start the handler of '%.*s' from %s: no Lua memory left",
                  (int)info->type_len, (const char *)info->type,
                  session_addr_text(s, addr, sizeof addr));
        stats.handler_errors_total++;
        session_reply(s, info->has_id, info->id, 500, "internal error");
        session_handler_done(s);
        return;
    }
    if (a.r == NULL) {
        if (a.refused == 503) stats.requests_busy_total++;
        session_reply(s, info->has_id, info->id, a.refused, a.why);
        session_handler_done(s);
        return;
    }
    luahost_resume(a.r, 2);
}

/* ---- timers and hooks ---- */

struct spawn_args {
    const char *what;
    luahost_push_fn fn;
    void *ud;
    struct request *r;
    int nargs;
};

static int prepare_spawn(lua_State *L, void *ud)
{
    struct spawn_args *a = ud;
    int n = a->fn(L, a->ud); /* the function and its arguments, a few values */
    struct request *r = new_request(current, 0, a->what, strlen(a->what));
    lua_xmove(L, r->co, n);
    a->r = r;
    a->nargs = n - 1;
    return 0;
}

int luahost_spawn(const char *what, luahost_push_fn fn, void *ud)
{
    if (current == NULL) return -1;
    struct spawn_args a = {what, fn, ud, NULL, 0};
    if (luahost_protected(current->L, prepare_spawn, &a) < 0) {
        log_error("cannot start %s: no Lua memory left", what);
        return -1;
    }
    luahost_resume(a.r, a.nargs);
    return 0;
}

void luahost_push_session_data(lua_State *L, session_handle handle)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &session_data_key);
    if (lua_rawgeti(L, -1, (lua_Integer)handle) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)handle);
    }
    lua_remove(L, -2);
}

static int forget_session_data(lua_State *L, void *ud)
{
    const session_handle *handle = ud;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &session_data_key);
    lua_pushnil(L);
    lua_rawseti(L, -2, (lua_Integer)*handle);
    return 0;
}

static void session_freed(session_handle handle)
{
    if (current != NULL && luahost_protected(current->L, forget_session_data, &handle) < 0)
        log_error("cannot drop the script data of session %llu: no Lua memory left",
                  (unsigned long long)handle);
}

struct close_hook {
    lua_Integer index;
    const char *user;
    size_t len;
};

static int push_close_hook(lua_State *L, void *ud)
{
    const struct close_hook *h = ud;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &close_hooks_key);
    lua_rawgeti(L, -1, h->index);
    lua_remove(L, -2);
    lua_pushlstring(L, h->user, h->len);
    return 2;
}

static void user_gone(const char *user, size_t len)
{
    if (current == NULL) return;
    lua_State *L = current->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &close_hooks_key);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 1);
    char what[64];
    snprintf(what, sizeof what, "the on_close hook for %.*s", (int)len, user);
    for (lua_Integer i = 1; i <= n; i++) {
        struct close_hook h = {i, user, len};
        luahost_spawn(what, push_close_hook, &h);
    }
}

/* The session events: a freed session's s.data goes, and the on_close hooks run when its user
 * is no longer online (a session replaced by a newer login, here or elsewhere, does not count). */
static void on_session_event(void *state, struct session *s, enum session_event event)
{
    (void)state;
    if (event != SESSION_CLOSED) return;
    session_freed(s->handle);
    if (s->kind != SESSION_CLIENT || s->user_len == 0) return;
    /* superseded: the user is online again, here or on another node */
    if (!s->superseded && presence_find(s->user, s->user_len) == NULL)
        user_gone(s->user, s->user_len);
}

/* ---- what scripts register ---- */

int luahost_register_handler(lua_State *L, const char *type, int fn_index, unsigned flags)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &handlers_key);
    lua_pushvalue(L, fn_index);
    lua_setfield(L, -2, type);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &flags_key);
    lua_pushinteger(L, (lua_Integer)flags);
    lua_setfield(L, -2, type);
    lua_pop(L, 2);
    /* a handler added at run time (not while loading) is served at once */
    void *vm;
    lua_getallocf(L, &vm);
    if (vm == current && current->loaded && !current->retired &&
        luahost_protected(current->L, sync_routes_protected, NULL) < 0)
        return luaL_error(L, "no memory left to route '%s'", type);
    return 0;
}

void luahost_set_resync_handler(lua_State *L, int fn_index)
{
    lua_pushvalue(L, fn_index);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &resync_key);
}

struct resync_args {
    struct session *s;
    struct request *r;
};

/* The resync of a session: mp.on_resync's function with `s`, as a request of the session that
 * answers nothing and is not counted in flight. */
static int prepare_resync(lua_State *L, void *ud)
{
    struct resync_args *a = ud;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &resync_key) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return 0;
    }
    struct request *r = new_request(current, a->s->handle, "resync", 6);
    r->replied = 1;
    r->detached = 1;
    lua_xmove(L, r->co, 1);
    lua_rawgeti(r->co, LUA_REGISTRYINDEX, r->ref);
    a->r = r;
    return 0;
}

static int start_resync(struct session *s)
{
    if (current == NULL) return -1;
    struct resync_args a = {s, NULL};
    if (luahost_protected(current->L, prepare_resync, &a) < 0 || a.r == NULL) return -1;
    luahost_resume(a.r, 1);
    return 0;
}

void luahost_register_close_hook(lua_State *L, int fn_index)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &close_hooks_key);
    lua_pushvalue(L, fn_index);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

int luahost_add_redis_library(const char *src, size_t len)
{
    struct luahost_vm *vm = current;
    if (vm == NULL) return -1;
    char **libs = realloc(vm->redis_libs, (vm->redis_lib_count + 1) * sizeof *libs);
    if (libs == NULL) return -1;
    vm->redis_libs = libs;
    size_t *lens = realloc(vm->redis_lib_lens, (vm->redis_lib_count + 1) * sizeof *lens);
    if (lens == NULL) return -1;
    vm->redis_lib_lens = lens;
    char *copy = malloc(len + 1);
    if (copy == NULL) return -1;
    memcpy(copy, src, len);
    copy[len] = '\0';
    vm->redis_libs[vm->redis_lib_count] = copy;
    vm->redis_lib_lens[vm->redis_lib_count++] = len;
    return 0;
}

/* At every connect, and after a reload: the scripts' Redis function libraries, replacing what
 * Redis has (FUNCTION LOAD REPLACE). */
static void load_redis_libraries(void *state)
{
    (void)state;
    if (current == NULL) return;
    for (size_t i = 0; i < current->redis_lib_count; i++) {
        const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", current->redis_libs[i]};
        size_t lens[] = {8, 4, 7, current->redis_lib_lens[i]};
        store_setup_command("FUNCTION LOAD", 4, argv, lens);
    }
}
