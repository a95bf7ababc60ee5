/* luahost_api: the `moonpost` module. Its one table below lists every function Lua can call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#include "broker.h"
#include "cluster.h"
#include "codec.h"
#include "log.h"
#include "luahost.h"
#include "luahost_api.h"
#include "presence.h"
#include "router.h"
#include "session.h"

static const luaL_Reg moonpost_functions[] = {
    /* handlers and hooks */
    {"on", mpl_on},
    {"on_close", mpl_on_close},
    /* logging, time, data */
    {"log", mpl_log},
    {"now", mpl_now},
    {"encode", mpl_encode},
    {"decode", mpl_decode},
    {"bin", mpl_bin},
    {"isbin", mpl_isbin},
    {"array", mpl_array},
    {"random_token", mpl_random_token},
    {"sha256", mpl_sha256},
    {"sha256_update", mpl_sha256_update},
    {"sha256_final", mpl_sha256_final},
    /* options the scripts declare */
    {"option", mpl_option},
    /* delivery and presence */
    {"deliver", mpl_deliver},
    {"broadcast", mpl_broadcast},
    {"publish", mpl_publish},
    {"topic_envelope", mpl_topic_envelope},
    {"online", mpl_online},
    {"users", mpl_users},
    {"on_resync", mpl_on_resync},
    /* calls that yield */
    {"redis", mpl_redis},
    {"redis_batch", mpl_redis_batch},
    {"redis_replicated", mpl_redis_replicated},
    {"redis_library", mpl_redis_library},
    {"pwhash", mpl_pwhash},
    {"pwverify", mpl_pwverify},
    {"sleep", mpl_sleep},
    {"every", mpl_every},
    {"waiter", mpl_waiter},
    {NULL, NULL},
};

size_t luahost_encode_frame(lua_State *L, int idx)
{
    return luahost_encode_frame_tail(L, idx, 0);
}

size_t luahost_encode_frame_tail(lua_State *L, int idx, int tail_idx)
{
    char err[256];
    int rc;
    if (tail_idx != 0 && !lua_isnoneornil(L, tail_idx)) {
        size_t len;
        const char *tail = codec_tobytes(L, tail_idx, &len);
        if (tail == NULL) return (size_t)luaL_argerror(L, tail_idx, "string or bin expected");
        rc = codec_encode_frame_tail(L, idx, (const uint8_t *)tail, len, &broker.scratch, err,
                                     sizeof err);
    } else {
        rc = codec_encode_frame(L, idx, &broker.scratch, err, sizeof err);
    }
    if (rc != 0) return (size_t)luaL_error(L, "cannot encode frame: %s", err);
    if (broker.scratch.sb.size - FRAME_HEADER_LEN > (size_t)broker.conf.max_frame + 4096)
        return (size_t)luaL_error(L, "frame of %zu bytes is too large", broker.scratch.sb.size);
    return broker.scratch.sb.size;
}

/* The route flag of each option of mp.on(type, fn, {anonymous = true, ...}). */
static const struct {
    const char *option;
    unsigned flag;
} route_options[] = {
    {"anonymous", ROUTE_ANONYMOUS}, /* may run before login */
    {"admin", ROUTE_ADMIN},         /* an admin.* type, served only on the admin socket */
    {"also_admin", ROUTE_ALSO_ADMIN}, /* a client type served on the admin socket too */
};

int mpl_on(lua_State *L)
{
    const char *type = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    unsigned flags = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        for (size_t i = 0; i < sizeof route_options / sizeof route_options[0]; i++) {
            lua_getfield(L, 3, route_options[i].option);
            if (lua_toboolean(L, -1)) flags |= route_options[i].flag;
            lua_pop(L, 1);
        }
    }
    int admin_name = strncmp(type, "admin.", 6) == 0;
    if (admin_name != ((flags & ROUTE_ADMIN) != 0))
        return luaL_error(L, "'%s': admin.* types, and only they, are registered with admin = true",
                          type);
    if ((flags & ROUTE_ADMIN) && (flags & (ROUTE_ANONYMOUS | ROUTE_ALSO_ADMIN)))
        return luaL_error(L, "'%s': an admin type is neither anonymous nor also_admin", type);
    luahost_register_handler(L, type, 2, flags);
    return 0;
}

int mpl_on_close(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luahost_register_close_hook(L, 1);
    return 0;
}

int mpl_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    luahost_join_args(L, 2, ' ');
    lua_Debug ar;
    int line = 0;
    const char *src = "?";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
        line = ar.currentline;
        src = ar.short_src;
    }
    log_write((enum conf_log_level)level, "%s:%d: %s", src, line, lua_tostring(L, -1));
    return 0;
}

int mpl_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)broker_now_ms());
    return 1;
}

int mpl_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    /* a buffer of its own, kept between calls: an 8 KiB malloc and free per message showed
     * in profiles, and scratch may hold a frame being built by the caller */
    static struct codec_buf buf;
    static int ready;
    if (!ready) {
        codec_buf_init(&buf);
        ready = 1;
    }
    msgpack_sbuffer_clear(&buf.sb);
    char err[256];
    if (codec_encode(L, 1, &buf, err, sizeof err) != 0) return luaL_error(L, "encode: %s", err);
    lua_pushlstring(L, buf.sb.data ? buf.sb.data : "", buf.sb.size);
    return 1;
}

int mpl_decode(lua_State *L)
{
    size_t len;
    const char *data = codec_tobytes(L, 1, &len);
    if (data == NULL) return luaL_argerror(L, 1, "string or bin expected");
    const char *err = NULL;
    if (codec_decode(L, (const uint8_t *)data, len, 0, NULL, &err) != CODEC_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

int mpl_bin(lua_State *L)
{
    size_t len;
    const char *data = codec_tobytes(L, 1, &len);
    if (data == NULL) return luaL_argerror(L, 1, "string or bin expected");
    codec_push_bin(L, data, len);
    return 1;
}

int mpl_isbin(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, CODEC_BIN_META) != NULL);
    return 1;
}

int mpl_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, CODEC_ARRAY_META);
    return 1;
}

int mpl_random_token(lua_State *L)
{
    lua_Integer bytes = luaL_optinteger(L, 1, 16);
    luaL_argcheck(L, bytes >= 8 && bytes <= 64, 1, "between 8 and 64 bytes");
    unsigned char raw[64];
    char hex[129];
    randombytes_buf(raw, (size_t)bytes);
    sodium_bin2hex(hex, sizeof hex, raw, (size_t)bytes);
    lua_pushstring(L, hex);
    return 1;
}

/* ---- asking the cluster registry from a handler ---- */

/* How a registry reply becomes the values the waiting call returns. */
typedef int (*registry_push_fn)(lua_State *L, const redisReply *reply);

struct registry_wait {
    struct request *r;
    registry_push_fn push;
    const redisReply *reply; /* while converting */
};

static int push_registry_reply(lua_State *L, void *ud)
{
    const struct registry_wait *w = ud;
    return w->push(L, w->reply);
}

static void on_registry_reply(redisReply *reply, const char *error, void *arg)
{
    (void)error;
    struct registry_wait *w = arg;
    struct request *r = w->r;
    /* a lost connection or an error reads as "nobody there" */
    w->reply = reply != NULL && reply->type != REDIS_REPLY_ERROR ? reply : NULL;
    int n = luahost_push_results(r, push_registry_reply, w);
    free(w);
    if (n < 0)
        luahost_resume_error(r, "not enough Lua memory for the registry's answer");
    else
        luahost_resume(r, n);
}

/* Starts the registry call START(fn, arg, CTX) for R, which then yields (luahost_yield) until
 * the answer resumes it with what PUSH makes of the reply. Returns 0, or -1 when Redis is not
 * connected or memory is short (nothing started). */
static int registry_call(struct request *r, registry_push_fn push,
                         int (*start)(store_reply_fn fn, void *arg, void *ctx), void *ctx)
{
    struct registry_wait *w = malloc(sizeof *w);
    if (w == NULL) return -1;
    *w = (struct registry_wait){r, push, NULL};
    if (start(on_registry_reply, w, ctx) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

static int push_found(lua_State *L, const redisReply *reply)
{
    lua_pushboolean(L, reply != NULL && (reply->type == REDIS_REPLY_STRING ||
                                         (reply->type == REDIS_REPLY_INTEGER && reply->integer)));
    return 1;
}

/* ---- delivery and presence ---- */

struct route_args {
    const char *user;
    size_t user_len;
    size_t frame_len;
    uint64_t mid, prev;
    const char *node; /* where the user is, when the caller knows: no registry call */
    size_t node_len;
};

static int start_route(store_reply_fn fn, void *arg, void *ctx)
{
    const struct route_args *a = ctx;
    if (a->node != NULL)
        return cluster_route_to(a->node, a->node_len, a->user, a->user_len,
                                broker.scratch.sb.data, a->frame_len, a->mid, a->prev, fn, arg);
    return cluster_route(a->user, a->user_len, broker.scratch.sb.data, a->frame_len, a->mid,
                         a->prev, fn, arg);
}

/* A found user: the registry's node name, or a node channel's SPUBLISH that reached it. */
static int push_delivered(lua_State *L, const redisReply *reply)
{
    lua_pushboolean(L, reply != NULL && (reply->type == REDIS_REPLY_STRING ||
                                         (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)));
    return 1;
}

/* mp.deliver(user, t [, mid [, prev [, node [, tail]]]]) -- T to USER's session, on this node at
 * once, on another through it (waiting for the answer when called from a handler); true when
 * USER is online. NODE, when the caller knows where USER is (its location, which moonpost_store
 * returns), sends it there without asking the registry; false: on no other node. TAIL, an
 * encoded map (the stored message), adds its pairs to T's as they are. */
int mpl_deliver(lua_State *L)
{
    size_t user_len;
    const char *user = luaL_checklstring(L, 1, &user_len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer mid = luaL_optinteger(L, 3, 0), prev = luaL_optinteger(L, 4, 0);
    size_t node_len = 0;
    const char *node = lua_type(L, 5) == LUA_TSTRING ? lua_tolstring(L, 5, &node_len) : NULL;
    int nowhere_else = lua_type(L, 5) == LUA_TBOOLEAN && !lua_toboolean(L, 5);
    uint64_t live_mid = mid > 0 ? (uint64_t)mid : 0, live_prev = prev > 0 ? (uint64_t)prev : 0;
    struct session *s = presence_find(user, user_len);
    if (s != NULL) {
        int wanted = router_live_wanted(s, live_mid, live_prev);
        if (wanted != ROUTER_LIVE_SKIP) { /* else not even encoded */
            size_t n = luahost_encode_frame_tail(L, 2, 6);
            if (wanted == ROUTER_LIVE_PUSH)
                router_deliver_wanted(s, broker.scratch.sb.data, n, live_mid);
            else
                router_hold(s, broker.scratch.sb.data, n, live_mid, live_prev);
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    if (nowhere_else || (node != NULL && node_len == strlen(broker.conf.node_id) &&
                         memcmp(node, broker.conf.node_id, node_len) == 0)) {
        lua_pushboolean(L, 0); /* here it is not (any more) */
        return 1;
    }
    struct route_args a = {user,     user_len, luahost_encode_frame_tail(L, 2, 6), live_mid,
                           live_prev, node,    node_len};
    struct request *r = luahost_current(L);
    if (r != NULL && registry_call(r, push_delivered, start_route, &a) == 0)
        return luahost_yield(L, r);
    if (r == NULL) start_route(NULL, NULL, &a); /* not in a handler: nobody waits */
    lua_pushboolean(L, 0);
    return 1;
}

int mpl_broadcast(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const struct session *except = NULL;
    if (!lua_isnoneornil(L, 2)) {
        const struct request *r = luaL_checkudata(L, 2, LUAHOST_REQUEST_META);
        except = session_get(r->session);
    }
    size_t n = luahost_encode_frame(L, 1);
    lua_pushinteger(L, (lua_Integer)router_broadcast(broker.scratch.sb.data, n, except));
    return 1;
}

struct user_args {
    const char *user;
    size_t len;
};

static int start_where(store_reply_fn fn, void *arg, void *ctx)
{
    const struct user_args *a = ctx;
    const char *argv[] = {a->user};
    return cluster_call("moonpost_where", 1, argv, &a->len, fn, arg);
}

/* mp.online(user) -- whether USER is logged in on any node. */
int mpl_online(lua_State *L)
{
    struct user_args a;
    a.user = luaL_checklstring(L, 1, &a.len);
    struct request *r = luahost_current(L);
    int here = presence_find(a.user, a.len) != NULL;
    if (!here && r != NULL && registry_call(r, push_found, start_where, &a) == 0)
        return luahost_yield(L, r);
    lua_pushboolean(L, here);
    return 1;
}

/* mp.on_resync(fn) -- FN(s) runs when session S may have missed live mailbox messages: it
 * reads the mailbox above s.last_mid and pushes it, like the replay after login. */
int mpl_on_resync(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luahost_set_resync_handler(L, 1);
    return 0;
}

/* moonpost.config: a read-only copy of the broker settings scripts need (the policy is in the
 * scripts' own options: moonpost.option). */
static void push_config(lua_State *L)
{
    const struct conf *c = &broker.conf;
    lua_createtable(L, 0, 8);
    struct {
        const char *name;
        lua_Integer value;
    } ints[] = {
        {"max_frame", c->max_frame},
        {"max_body", c->max_body},
        {"redis_db", c->redis_db},
        {"output_limit", c->output_limit},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        lua_pushinteger(L, ints[i].value);
        lua_setfield(L, -2, ints[i].name);
    }
    lua_pushstring(L, c->redis_prefix ? c->redis_prefix : "");
    lua_setfield(L, -2, "redis_prefix");
    lua_pushstring(L, c->node_id ? c->node_id : "");
    lua_setfield(L, -2, "node_id");
    lua_pushboolean(L, c->redis_cluster);
    lua_setfield(L, -2, "redis_cluster");
    lua_pushstring(L, cluster_registry_key());
    lua_setfield(L, -2, "redis_registry_key");
}

int luaopen_moonpost(lua_State *L)
{
    luaL_newlib(L, moonpost_functions);
    push_config(L);
    lua_setfield(L, -2, "config");
    lua_pushliteral(L, MOONPOST_VERSION);
    lua_setfield(L, -2, "version");
    luahost_session_open(L);
    return 1;
}
