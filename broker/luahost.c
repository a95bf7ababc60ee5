/* luahost: the sandboxed Lua state, script loading and reload, and the coroutine per request. */
#include "luahost.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <lauxlib.h>
#include <lualib.h>

#include "broker.h"
#include "codec.h"
#include "log.h"
#include "lua_api.h"
#include "router.h"

#define BUDGET_HOOK_EVERY 1000 /* instructions between two checks of the budget */

struct luahost_vm {
    lua_State *L;
    size_t mem_used;
    size_t mem_limit;
    int pending;  /* requests whose coroutine has not finished */
    int retired;  /* replaced by a reload: closed once pending drops to 0 */
    int loaded;   /* every script ran: its routes may be served */
    unsigned generation;
    char **redis_libs;
    size_t *redis_lib_lens;
    size_t redis_lib_count;
};

static struct luahost_vm *current;
static unsigned generations;
static char script_dir[4096] = ".";

/* Registry keys: their addresses are unique. */
static const char handlers_key = 'h';
static const char anonymous_key = 'a';
static const char close_hooks_key = 'c';
static const char session_data_key = 'd';
static const char thread_pool_key = 'p';
static const char routed_key = 'r'; /* array of the handlers the router points at, by slot */

#define THREAD_POOL_MAX 256 /* finished coroutines kept for reuse */

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct luahost_vm *vm = ud;
    if (ptr == NULL) osize = 0;
    if (nsize == 0) {
        free(ptr);
        vm->mem_used -= osize;
        return NULL;
    }
    if (vm->mem_limit > 0 && nsize > osize && vm->mem_used + (nsize - osize) > vm->mem_limit)
        return NULL;
    void *p = realloc(ptr, nsize);
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

static void budget_hook(lua_State *co, lua_Debug *ar)
{
    (void)ar;
    struct request *r = luahost_current(co);
    if (r == NULL) return;
    r->instructions += BUDGET_HOOK_EVERY;
    if (broker.conf.lua_instruction_limit > 0 &&
        r->instructions > (uint64_t)broker.conf.lua_instruction_limit)
        luaL_error(co, "instruction budget exceeded (%d)", broker.conf.lua_instruction_limit);
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

void lua_join_args(lua_State *L, int first, char sep)
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
    lua_join_args(L, 1, '\t');
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

/* ---- state ---- */

static void vm_free(struct luahost_vm *vm)
{
    lua_close(vm->L);
    for (size_t i = 0; i < vm->redis_lib_count; i++) free(vm->redis_libs[i]);
    free(vm->redis_libs);
    free(vm->redis_lib_lens);
    free(vm);
}

static int new_tables(lua_State *L)
{
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &handlers_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &anonymous_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &close_hooks_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &session_data_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &thread_pool_key);
    return 0;
}

static int traceback_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

static int load_script(lua_State *L, const char *path, char *errbuf, size_t errlen)
{
    lua_pushcfunction(L, traceback_handler);
    if (luaL_loadfilex(L, path, "t") != LUA_OK || lua_pcall(L, 0, 0, -2) != LUA_OK) {
        snprintf(errbuf, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
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

static struct luahost_vm *vm_load(char *errbuf, size_t errlen)
{
    struct luahost_vm *vm = calloc(1, sizeof *vm);
    if (vm == NULL) return NULL;
    vm->mem_limit = (size_t)broker.conf.lua_memory_limit;
    vm->generation = ++generations;
    vm->L = lua_newstate(limited_alloc, vm);
    if (vm->L == NULL) {
        free(vm);
        snprintf(errbuf, errlen, "cannot create a Lua state");
        return NULL;
    }
    lua_State *L = vm->L;
    *(struct request **)lua_getextraspace(L) = NULL; /* the main thread runs no request */
    lua_pushcfunction(L, new_tables);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) goto fail_msg;
    open_sandbox(L);
    codec_open(L);
    luaL_requiref(L, "moonpost", luaopen_moonpost, 0);
    lua_pop(L, 1);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_HOOK_EVERY);
    /* the incremental collector (Lua's default) on purpose: the generational one raised
     * ping throughput but its atomic major collections stalled the loop for milliseconds
     * (private-chat p99 0.7 ms -> 5-10 ms at 20,000 msgs/s, docs/benchmarks.md) */
    struct luahost_vm *previous = current;
    current = vm; /* scripts register into the state being loaded */
    for (size_t i = 0; i < broker.conf.script.count; i++) {
        if (load_script(L, broker.conf.script.items[i], errbuf, errlen) != 0) {
            current = previous;
            vm_free(vm);
            return NULL;
        }
    }
    current = previous;
    vm->loaded = 1;
    return vm;
fail_msg:
    snprintf(errbuf, errlen, "%s", lua_tostring(L, -1));
    vm_free(vm);
    return NULL;
}

/* Makes the router serve exactly the types VM's scripts registered. */
static void sync_routes(struct luahost_vm *vm)
{
    lua_State *L = vm->L;
    router_clear_lua();
    lua_newtable(L); /* the routed handlers, by slot */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &handlers_key);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &anonymous_key);
    int slot = 0;
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_rawseti(L, -5, ++slot); /* routed[slot] = handler */
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        int anonymous = lua_toboolean(L, -1);
        lua_pop(L, 1);
        router_add_lua(lua_tostring(L, -1), anonymous, slot);
    }
    lua_pop(L, 2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &routed_key);
}

static void retire(struct luahost_vm *vm)
{
    if (vm == NULL) return;
    vm->retired = 1;
    if (vm->pending == 0) vm_free(vm);
}

int luahost_start(void)
{
    set_script_dir();
    char err[1024];
    struct luahost_vm *vm = vm_load(err, sizeof err);
    if (vm == NULL) {
        log_error("scripts: %s", err);
        return -1;
    }
    current = vm;
    sync_routes(vm);
    log_info("loaded %zu script(s), %zu route(s)", broker.conf.script.count, router_count());
    return 0;
}

int luahost_reload(char *errbuf, size_t errlen)
{
    set_script_dir();
    struct luahost_vm *vm = vm_load(errbuf, errlen);
    if (vm == NULL) {
        log_error("reload failed, the running scripts stay: %s", errbuf);
        broker.stats.reload_failures_total++;
        return -1;
    }
    struct luahost_vm *old = current;
    current = vm;
    sync_routes(vm);
    retire(old);
    broker.stats.reloads_total++;
    log_info("reloaded %zu script(s), %zu route(s)", broker.conf.script.count, router_count());
    return 0;
}

void luahost_stop(void)
{
    struct luahost_vm *vm = current;
    current = NULL;
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

lua_State *luahost_state(void)
{
    return current ? current->L : NULL;
}

const char *luahost_script_dir(void)
{
    return script_dir;
}

/* ---- requests ---- */

struct request *luahost_current(lua_State *co)
{
    return *(struct request **)lua_getextraspace(co);
}

int luahost_yield(lua_State *co, struct request *r)
{
    r->waiting = 1;
    return lua_yield(co, 0);
}

/* Creating a coroutine costs allocations and collection work on every request; a finished one
 * is reset and kept instead (a request's `s` kept by a script no longer points to it). */
static void recycle_thread(lua_State *L, lua_State *co)
{
    lua_resetthread(co);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &thread_pool_key);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    if (n < THREAD_POOL_MAX) {
        lua_pushthread(co);
        lua_xmove(co, L, 1);
        lua_rawseti(L, -2, n + 1);
    }
    lua_pop(L, 1);
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

static void finish(struct request *r)
{
    struct luahost_vm *vm = r->vm;
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (s != NULL) {
        if (!r->replied) {
            r->replied = 1;
            session_reply(s, r->has_id, r->id, 200, NULL);
        }
        session_handler_done(s);
    }
    if (r->session != 0)
        stats_observe(broker.stats.handler_latency_buckets, &broker.stats.handler_latency_us_sum,
                      &broker.stats.handler_latency_count, (uint64_t)(now_us() - r->started_us));
    *(struct request **)lua_getextraspace(r->co) = NULL;
    recycle_thread(vm->L, r->co);
    r->co = NULL;
    luaL_unref(vm->L, LUA_REGISTRYINDEX, r->ref); /* the request may now go */
    if (--vm->pending == 0 && vm->retired) vm_free(vm);
}

static void fail_request(struct request *r, lua_State *co)
{
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(r->vm->L, co, msg ? msg : "(error object is not a string)", 0);
    log_error("handler error: %s", lua_tostring(r->vm->L, -1));
    lua_pop(r->vm->L, 1);
    broker.stats.handler_errors_total++;
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
    int status = lua_resume(r->co, r->vm->L, nargs, &nres);
    if (status == LUA_YIELD) {
        if (!r->waiting) {
            /* a yield that no I/O will resume (coroutine.yield is not offered, but be sure) */
            lua_pushliteral(r->co, "handlers may only yield inside moonpost calls");
            fail_request(r, r->co);
            finish(r);
        }
        return;
    }
    if (status != LUA_OK) fail_request(r, r->co);
    finish(r);
}

/* Creates a request and its coroutine on the main state, anchored in the registry. */
static struct request *new_request(struct luahost_vm *vm, session_handle session)
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
    *(struct request **)lua_getextraspace(co) = r;
    vm->pending++;
    return r;
}

/* The body of every request coroutine: decode the frame, then call the handler. */
static int run_handler_done(lua_State *co, int status, lua_KContext ctx)
{
    (void)co, (void)status, (void)ctx;
    return 0;
}

static int run_handler(lua_State *co)
{
    /* stack: handler, request, body (light userdata), length */
    const uint8_t *body = lua_touserdata(co, 3);
    size_t len = (size_t)lua_tointeger(co, 4);
    lua_settop(co, 2);
    const char *err = NULL;
    if (codec_decode(co, body, len, &err) != 0) return luaL_error(co, "decoding the frame: %s", err);
    lua_callk(co, 2, 0, 0, run_handler_done);
    return 0;
}

struct dispatch_args {
    struct session *s;
    const struct frame_info *info;
    const uint8_t *body;
    size_t len;
    int slot;
    struct request *r;
};

static int prepare_dispatch(lua_State *L)
{
    struct dispatch_args *a = lua_touserdata(L, 1);
    struct request *r = new_request(current, a->s->handle);
    r->has_id = (uint8_t)a->info->has_id;
    r->id = a->info->id;
    lua_State *co = r->co;
    lua_pushcfunction(co, run_handler);
    lua_rawgetp(co, LUA_REGISTRYINDEX, &routed_key);
    lua_rawgeti(co, -1, a->slot);
    lua_remove(co, -2);
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->ref);
    lua_pushlightuserdata(co, (void *)a->body);
    lua_pushinteger(co, (lua_Integer)a->len);
    a->r = r;
    return 0;
}

void luahost_dispatch(struct session *s, const struct frame_info *info, const uint8_t *body,
                      size_t len, int slot)
{
    if (current == NULL) {
        session_reply(s, info->has_id, info->id, 503, "scripts not loaded");
        return;
    }
    lua_State *L = current->L;
    struct dispatch_args a = {s, info, body, len, slot, NULL};
    lua_pushcfunction(L, prepare_dispatch);
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        log_error("cannot start a handler: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        session_reply(s, info->has_id, info->id, 500, "internal error");
        return;
    }
    s->inflight++;
    luahost_resume(a.r, 4);
}

struct spawn_args {
    int nargs;
    struct request *r;
};

static int prepare_spawn(lua_State *L)
{
    struct spawn_args *a = lua_touserdata(L, -1);
    lua_pop(L, 1);
    struct request *r = new_request(current, 0);
    lua_xmove(L, r->co, a->nargs + 1);
    a->r = r;
    return 0;
}

int luahost_spawn(lua_State *L, int nargs)
{
    /* stack of L (the current main state): fn, args... */
    struct spawn_args a = {nargs, NULL};
    lua_pushcfunction(L, prepare_spawn);
    lua_insert(L, -(nargs + 2));
    lua_pushlightuserdata(L, &a);
    if (lua_pcall(L, nargs + 2, 0, 0) != LUA_OK) {
        log_error("cannot start a coroutine: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    luahost_resume(a.r, nargs);
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

void luahost_session_freed(session_handle handle)
{
    if (current == NULL) return;
    lua_State *L = current->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &session_data_key);
    lua_pushnil(L);
    lua_rawseti(L, -2, (lua_Integer)handle);
    lua_pop(L, 1);
}

void luahost_user_gone(const char *user, size_t len)
{
    if (current == NULL) return;
    lua_State *L = current->L;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &close_hooks_key);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        lua_pushlstring(L, user, len);
        lua_rotate(L, -3, 0);
        luahost_spawn(L, 1);
    }
    lua_pop(L, 1);
}

/* ---- what scripts register ---- */

int luahost_register_handler(lua_State *L, const char *type, int fn_index, int anonymous)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &handlers_key);
    lua_pushvalue(L, fn_index);
    lua_setfield(L, -2, type);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &anonymous_key);
    lua_pushboolean(L, anonymous);
    lua_setfield(L, -2, type);
    lua_pop(L, 2);
    /* a handler added at run time (not while loading) is served at once */
    if (current != NULL && current->L == L && current->loaded && !current->retired)
        sync_routes(current);
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

size_t luahost_redis_library_count(void)
{
    return current ? current->redis_lib_count : 0;
}

const char *luahost_redis_library_at(size_t i, size_t *len)
{
    if (current == NULL || i >= current->redis_lib_count) return NULL;
    *len = current->redis_lib_lens[i];
    return current->redis_libs[i];
}
