/* luahost_redis: moonpost.redis and moonpost.redis_batch, which yield until Redis answers.
 *
 * Results: status -> string, integer -> integer, bulk -> string, nil -> nil (false inside
 * arrays), array -> table, error reply -> nil plus {code = 500, msg = "ERR ..."} (inside
 * arrays, {err = "ERR ..."}). When Redis is unreachable: nil plus {code = 503, msg = ...}. A
 * reply too large for the Lua memory limit: nil plus {code = 500, msg = ...}, or the call raises
 * that error when not even this fits (and always for a batch). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "broker.h"
#include "codec.h"
#include "luahost_api.h"
#include "luahost.h"
#include "redis_format.h"
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

/* The integer arguments of the command being collected, in decimal: lua_tolstring would print
 * each with snprintf into a new Lua string. Valid until the next collect_args; the command is
 * formatted for Redis before that. */
static char integer_text[REDIS_MAX_ARGS][REDIS_INTEGER_TEXT_MAX];

/* Reads the command at stack slots FIRST..LAST into argv. */
static int collect_args(lua_State *L, int first, int last, const char **argv, size_t *lens)
{
    int argc = 0;
    for (int i = first; i <= last; i++) {
        if (argc == REDIS_MAX_ARGS) return luaL_error(L, "too many redis arguments");
        const char *s = codec_tobytes(L, i, &lens[argc]);
        if (s == NULL && lua_isinteger(L, i)) {
            s = integer_text[argc];
            lens[argc] = redis_format_integer(integer_text[argc], (long long)lua_tointeger(L, i));
        } else if (s == NULL) {
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
};

static const char too_large[] = "redis reply too large for the Lua memory limit";

static int push_conversion(lua_State *L, void *ud)
{
    const struct conversion *c = ud;
    push_result(L, c->reply, c->error);
    return 2;
}

static int push_too_large(lua_State *L, void *ud)
{
    (void)ud;
    lua_pushnil(L);
    push_error(L, 500, too_large, sizeof too_large - 1);
    return 2;
}

/* Resumes R with the results of REPLY: the reply, else the too-large error (what is left of the
 * heap after the failed conversion may hold it), else an error raised in the script. */
static void resume_with_reply(struct request *r, const redisReply *reply, const char *error)
{
    struct conversion c = {reply, error};
    int n = luahost_push_results(r, push_conversion, &c);
    if (n < 0) n = luahost_push_results(r, push_too_large, NULL);
    if (n < 0)
        luahost_resume_error(r, too_large);
    else
        luahost_resume(r, n);
}

static void on_single_reply(redisReply *reply, const char *error, void *arg)
{
    resume_with_reply(arg, reply, error);
}

typedef int (*command_sender)(int argc, const char **argv, const size_t *argv_len,
                              store_reply_fn fn, void *arg);

static int redis_call(lua_State *L, const char *name, command_sender send)
{
    struct request *r = yieldable_request(L, name);
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 1, 1, "a redis command");
    const char *argv[REDIS_MAX_ARGS];
    size_t lens[REDIS_MAX_ARGS];
    int argc = collect_args(L, 1, n, argv, lens);
    if (send(argc, argv, lens, on_single_reply, r) != 0) return unavailable(L);
    return luahost_yield(L, r);
}

int mpl_redis(lua_State *L)
{
    return redis_call(L, "moonpost.redis", store_command);
}

/* moonpost.redis_replicated(...): moonpost.redis for a write a failover must not lose: it
 * answers once redis_wait_replicas replicas confirmed it (else the 503 error). */
int mpl_redis_replicated(lua_State *L)
{
    return redis_call(L, "moonpost.redis_replicated", store_command_replicated);
}

struct batch;

/* One command of a batch and the place of its reply in the results: on a Redis Cluster the
 * commands go to several masters, whose replies come back in any order. */
struct batch_slot {
    struct batch *b;
    int index;
};

/* A batch: replies are stored in a registry table until the last one resumes the request. */
struct batch {
    struct request *r;
    int results_ref;
    int remaining;
    int failed;       /* a command was lost with the connection */
    int out_of_memory; /* a reply could not be converted */
    struct batch_slot slots[]; /* one per command */
};

struct batch_reply {
    const struct batch_slot *slot;
    const redisReply *reply;
};

static int store_batch_reply(lua_State *L, void *ud)
{
    const struct batch_reply *br = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, br->slot->b->results_ref);
    if (br->reply == NULL)
        lua_pushboolean(L, 0);
    else
        push_reply(L, br->reply, 1);
    lua_rawseti(L, -2, br->slot->index);
    return 0;
}

static int push_batch_results(lua_State *L, void *ud)
{
    struct batch *b = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->results_ref);
    if (!b->failed) {
        lua_pushnil(L);
        return 2;
    }
    static const char msg[] = "redis connection lost";
    lua_pop(L, 1);
    lua_pushnil(L);
    push_error(L, 503, msg, sizeof msg - 1);
    return 2;
}

static void on_batch_reply(redisReply *reply, const char *error, void *arg)
{
    (void)error;
    const struct batch_slot *slot = arg;
    struct batch *b = slot->b;
    struct request *r = b->r;
    lua_State *M = luahost_main_state(r);
    if (reply == NULL) b->failed = 1;
    struct batch_reply br = {slot, reply};
    if (!b->out_of_memory && luahost_protected(M, store_batch_reply, &br) < 0) b->out_of_memory = 1;
    if (--b->remaining > 0) return;
    int n = b->out_of_memory ? -1 : luahost_push_results(r, push_batch_results, b);
    luaL_unref(M, LUA_REGISTRYINDEX, b->results_ref); /* an existing key: allocates nothing */
    free(b);
    if (n < 0)
        luahost_resume_error(r, too_large);
    else
        luahost_resume(r, n);
}

/* moonpost.redis_batch({cmd...}, {cmd...}, ...) -> {reply, reply, ...} in one round trip. */
int mpl_redis_batch(lua_State *L)
{
    struct request *r = yieldable_request(L, "moonpost.redis_batch");
    int n = lua_gettop(L);
    luaL_argcheck(L, n >= 1 && n <= REDIS_MAX_BATCH, 1, "1 to 256 commands");
    for (int i = 1; i <= n; i++) check_command(L, i);
    if (!store_ready()) return unavailable(L);
    /* Every word on the stack, numbers turned into strings, before anything is sent or
     * allocated: once a command is sent, nothing below may raise (its reply would resume a
     * request that is gone). */
    int first[REDIS_MAX_BATCH + 2];
    const char *argv[REDIS_MAX_ARGS];
    size_t lens[REDIS_MAX_ARGS];
    for (int i = 1; i <= n; i++) {
        int count = (int)lua_rawlen(L, i);
        luaL_checkstack(L, count + 1, "redis command too long");
        first[i] = lua_gettop(L) + 1;
        for (int j = 1; j <= count; j++) lua_rawgeti(L, i, j);
        collect_args(L, first[i], first[i] + count - 1, argv, lens);
    }
    first[n + 1] = lua_gettop(L) + 1;
    lua_createtable(L, n, 0);
    luaL_setmetatable(L, CODEC_ARRAY_META);
    int results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    struct batch *b = calloc(1, sizeof *b + (size_t)n * sizeof b->slots[0]);
    if (b == NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, results_ref);
        return luaL_error(L, "out of memory");
    }
    b->results_ref = results_ref;
    b->r = r;
    for (int i = 1; i <= n; i++) {
        /* checked, and the floats converted in place: collecting again allocates nothing and
         * cannot raise */
        int argc = collect_args(L, first[i], first[i + 1] - 1, argv, lens);
        b->slots[i - 1] = (struct batch_slot){b, i};
        if (store_command(argc, argv, lens, on_batch_reply, &b->slots[i - 1]) != 0) {
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
