/* lua_redis: moonpost.redis and moonpost.redis_batch, which yield until Redis answers.
 *
 * Results: status -> string, integer -> integer, bulk -> string, nil -> nil (false inside
 * arrays), array -> table, error reply -> nil plus {code = 500, msg = "ERR ..."} (inside
 * arrays, {err = "ERR ..."}). When Redis is unreachable: nil plus {code = 503, msg = ...}. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "broker.h"
#include "codec.h"
#include "lua_api.h"
#include "luahost.h"
#include "store.h"

#define REDIS_MAX_ARGS 1024
#define REDIS_MAX_BATCH 256

static void push_reply(lua_State *L, const redisReply *r, int nested)
{
    switch (r->type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING: lua_pushlstring(L, r->str, r->len); break;
    case REDIS_REPLY_INTEGER: lua_pushinteger(L, (lua_Integer)r->integer); break;
    case REDIS_REPLY_ARRAY:
        luaL_checkstack(L, 4, "redis reply too deep");
        lua_createtable(L, (int)r->elements, 0);
        luaL_setmetatable(L, CODEC_ARRAY_META);
        for (size_t i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i], 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    case REDIS_REPLY_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "err");
        break;
    default:
        if (nested)
            lua_pushboolean(L, 0);
        else
            lua_pushnil(L);
        break;
    }
}

static void push_error(lua_State *L, int code, const char *msg, size_t len)
{
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, msg, len);
    lua_setfield(L, -2, "msg");
}

/* Pushes the two results of moonpost.redis for reply R onto L. */
static void push_result(lua_State *L, const redisReply *r, const char *error)
{
    if (r == NULL) {
        lua_pushnil(L);
        push_error(L, 503, error, strlen(error));
    } else if (r->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        push_error(L, 500, r->str, r->len);
    } else {
        push_reply(L, r, 0);
        lua_pushnil(L);
    }
}

static int unavailable(lua_State *L)
{
    static const char msg[] = "storage unavailable";
    lua_pushnil(L);
    push_error(L, 503, msg, sizeof msg - 1);
    return 2;
}

/* Reads the command at stack slots FIRST..LAST into argv. */
static int collect_args(lua_State *L, int first, int last, const char **argv, size_t *lens)
{
    int argc = 0;
    for (int i = first; i <= last; i++) {
        if (argc == REDIS_MAX_ARGS) return luaL_error(L, "too many redis arguments");
        const char *s = codec_tobytes(L, i, &lens[argc]);
        if (s == NULL) {
            if (lua_type(L, i) != LUA_TNUMBER) return luaL_argerror(L, i, "string or number");
            s = lua_tolstring(L, i, &lens[argc]); /* converts in place; the value stays anchored */
        }
        argv[argc++] = s;
    }
    return argc;
}

/* Raises the Lua error for a bad batch command now, before anything is allocated. */
static void check_command(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer count = (lua_Integer)lua_rawlen(L, idx);
    luaL_argcheck(L, count >= 1 && count <= REDIS_MAX_ARGS, idx, "1 to 1024 command words");
    for (lua_Integer j = 1; j <= count; j++) {
        int t = lua_rawgeti(L, idx, j);
        int ok = t == LUA_TSTRING || t == LUA_TNUMBER || codec_tobytes(L, -1, &(size_t){0});
        lua_pop(L, 1);
        luaL_argcheck(L, ok, idx, "command words must be strings or numbers");
    }
}

static struct request *yieldable_request(lua_State *L, const char *what)
{
    struct request *r = luahost_current(L);
    if (r == NULL) luaL_error(L, "%s can only be called from a handler or timer", what);
    return r;
}

/* Converting a reply allocates, so it runs protected on the idle main state (a suspended
 * coroutine cannot run a protected call) and the results then move to the coroutine. */
struct conversion {
    const redisReply *reply;
    const char *error;
    int nested;
};

static int convert_protected(lua_State *L)
{
    const struct conversion *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (c->nested) {
        if (c->reply == NULL)
            lua_pushboolean(L, 0);
        else
            push_reply(L, c->reply, 1);
        return 1;
    }
    push_result(L, c->reply, c->error);
    return 2;
}

/* Pushes the converted reply (NRESULTS values) onto the main state M. */
static void convert(lua_State *M, const redisReply *reply, const char *error, int nresults)
{
    struct conversion c = {reply, error, nresults == 1};
    lua_pushcfunction(M, convert_protected);
    lua_pushlightuserdata(M, &c);
    if (lua_pcall(M, 1, nresults, 0) != LUA_OK) {
        lua_pop(M, 1);
        static const char msg[] = "redis reply too large for the Lua memory limit";
        if (nresults == 2) lua_pushnil(M);
        push_error(M, 500, msg, sizeof msg - 1);
    }
}

/* Moves the two results on top of the main state to R's coroutine and resumes it. */
static void resume_with_results(struct request *r, lua_State *M)
{
    lua_checkstack(r->co, 2);
    lua_xmove(M, r->co, 2);
    luahost_resume(r, 2);
}

static void on_single_reply(redisReply *reply, const char *error, void *arg)
{
    struct request *r = arg;
    lua_State *M = luahost_main_state(r);
    convert(M, reply, error, 2);
    resume_with_results(r, M);
}

int mpl_redis(lua_State *L)
{
    struct request *r = yieldable_request(L, "moonpost.redis");
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 1, 1, "a redis command");
    const char *argv[REDIS_MAX_ARGS];
    size_t lens[REDIS_MAX_ARGS];
    int argc = collect_args(L, 1, n, argv, lens);
    if (store_command(argc, argv, lens, on_single_reply, r) != 0) return unavailable(L);
    return luahost_yield(L, r);
}

/* A batch: replies are stored in a registry table until the last one resumes the request. */
struct batch {
    struct request *r;
    int results_ref;
    int remaining;
    int index;
    int failed;
};

static void on_batch_reply(redisReply *reply, const char *error, void *arg)
{
    struct batch *b = arg;
    struct request *r = b->r;
    lua_State *M = luahost_main_state(r);
    if (reply == NULL) b->failed = 1;
    lua_rawgeti(M, LUA_REGISTRYINDEX, b->results_ref);
    convert(M, reply, error, 1);
    lua_rawseti(M, -2, ++b->index);
    if (--b->remaining > 0) {
        lua_pop(M, 1);
        return;
    }
    luaL_unref(M, LUA_REGISTRYINDEX, b->results_ref);
    if (b->failed) {
        lua_pop(M, 1);
        static const char msg[] = "redis connection lost";
        lua_pushnil(M);
        push_error(M, 503, msg, sizeof msg - 1);
    } else {
        lua_pushnil(M);
    }
    free(b);
    resume_with_results(r, M);
}

/* moonpost.redis_batch({cmd...}, {cmd...}, ...) -> {reply, reply, ...} in one round trip. */
int mpl_redis_batch(lua_State *L)
{
    struct request *r = yieldable_request(L, "moonpost.redis_batch");
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 1 && n <= REDIS_MAX_BATCH, 1, "1 to 256 commands");
    for (int i = 1; i <= n; i++) check_command(L, i);
    if (!store_ready()) return unavailable(L);
    /* check_command above made every Lua error below unreachable, so b cannot leak */
    struct batch *b = calloc(1, sizeof *b);
    if (b == NULL) return luaL_error(L, "out of memory");
    lua_createtable(L, n, 0);
    luaL_setmetatable(L, CODEC_ARRAY_META);
    b->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    b->r = r;
    const char *argv[REDIS_MAX_ARGS];
    size_t lens[REDIS_MAX_ARGS];
    for (int i = 1; i <= n; i++) {
        int base = lua_gettop(L);
        int count = (int)lua_rawlen(L, i);
        luaL_checkstack(L, count + 1, "redis command too long");
        for (int j = 1; j <= count; j++) lua_rawgeti(L, i, j);
        int argc = collect_args(L, base + 1, base + count, argv, lens);
        if (store_command(argc, argv, lens, on_batch_reply, b) != 0) {
            lua_settop(L, base);
            if (b->remaining == 0) {
                luaL_unref(L, LUA_REGISTRYINDEX, b->results_ref);
                free(b);
                return unavailable(L);
            }
            /* commands already sent will still answer: count this one as failed */
            b->failed = 1;
            break;
        }
        b->remaining++;
        lua_settop(L, base);
    }
    /* b now belongs to the pending replies: the last one frees it */
    return luahost_yield(L, r); // NOLINT(clang-analyzer-unix.Malloc)
}

/* moonpost.redis_library(source): a Redis function library (#!lua name=...) that the broker
 * loads with FUNCTION LOAD REPLACE on every connection, before any command of the scripts. */
int mpl_redis_library(lua_State *L)
{
    size_t len;
    const char *src = luaL_checklstring(L, 1, &len);
    if (luahost_add_redis_library(src, len) != 0) return luaL_error(L, "cannot keep the library");
    return 0;
}
