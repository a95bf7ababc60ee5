/* luahost_session: the `s` object of a handler: replies, pushes, login state, closing.
 *
 * `s` is the request: it remembers the request id for s:ok/s:fail and finds its session by
 * handle on every call, so a script that keeps `s` after the client left does no harm: every
 * method then does nothing and returns false. */
#include <string.h>

#include <lauxlib.h>

#include "broker.h"
#include "cluster.h"
#include "codec.h"
#include "log.h"
#include "luahost_api.h"
#include "luahost.h"
#include "luahost_timer.h"
#include "presence.h"
#include "reply.h"
#include "router.h"
#include "session.h"
#include "store.h"

/* The request `s` at index 1, told by its metatable, which is the upvalue META of every method
 * (luaL_checkudata would look the metatable up by name in the registry, at every call). */
static struct request *check_request_with(lua_State *L, int meta)
{
    void *r = lua_touserdata(L, 1);
    if (r != NULL && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, meta);
        lua_pop(L, 1);
        if (same) return r;
    }
    luaL_typeerror(L, 1, LUAHOST_REQUEST_META);
    return NULL;
}

/* In a method: its upvalue 1 is the metatable. */
static struct request *check_request(lua_State *L)
{
    return check_request_with(L, lua_upvalueindex(1));
}

/* The request's live session, or NULL (pushing false as the method's result). */
static struct session *live_session(lua_State *L, struct request *r)
{
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (s == NULL) lua_pushboolean(L, 0);
    return s;
}

static int already_replied(lua_State *L, struct request *r)
{
    if (!r->replied) return 0;
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        log_warn("%s:%d: second reply to one request ignored", ar.short_src, ar.currentline);
    lua_pushboolean(L, 0);
    return 1;
}

static int is_reply_key(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    const char *k = lua_tostring(L, idx);
    return strcmp(k, "type") == 0 || strcmp(k, "id") == 0 || strcmp(k, "code") == 0;
}

static int is_reply_or_error_key(lua_State *L, int idx)
{
    return is_reply_key(L, idx) ||
           (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "error") == 0);
}

/* Packs {type = "res", id, code} plus `error` = ERROR (when not NULL) and the fields of the
 * table at IDX. */
static size_t encode_reply(lua_State *L, const struct request *r, int code, const char *error,
                           int idx)
{
    struct codec_buf *b = &broker.scratch;
    int (*skip)(lua_State *, int) = error != NULL ? is_reply_or_error_key : is_reply_key;
    size_t fields = error != NULL;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!skip(L, -1)) fields++;
    }
    msgpack_packer *pk = reply_begin_in(b, r->has_id, r->id, code, fields);
    if (error != NULL) {
        reply_pack_str(pk, "error");
        reply_pack_str(pk, error);
    }
    char err[256];
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!skip(L, -2) && (codec_encode(L, -2, b, err, sizeof err) != 0 ||
                             codec_encode(L, -1, b, err, sizeof err) != 0))
            return (size_t)luaL_error(L, "cannot encode reply: %s", err);
        lua_pop(L, 1);
    }
    return codec_frame_end(b);
}

/* s:ok([t]) -- replies `res` 200 with the fields of T. */
static int session_ok(lua_State *L)
{
    struct request *r = check_request(L);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    if (already_replied(L, r)) return 1;
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    /* encode first: a table that cannot be encoded raises, and the request then answers 500 */
    size_t n = r->has_id ? encode_reply(L, r, 200, NULL, 2) : 0;
    r->replied = 1;
    stats_count_reply(&stats, 200);
    if (n > 0) session_send_bytes(s, broker.scratch.sb.data, n);
    lua_pushboolean(L, 1);
    return 1;
}

/* s:fail(code, reason [, t]) -- replies `res` CODE with an error text and the fields of T
 * (e.g. retry_after). */
static int session_fail(lua_State *L)
{
    struct request *r = check_request(L);
    lua_Integer code = luaL_checkinteger(L, 2);
    const char *reason = luaL_optstring(L, 3, "error");
    luaL_argcheck(L, code >= 100 && code <= 999, 2, "a protocol code");
    int with_fields = !lua_isnoneornil(L, 4);
    if (with_fields) luaL_checktype(L, 4, LUA_TTABLE);
    if (already_replied(L, r)) return 1;
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    if (!with_fields) {
        r->replied = 1;
        session_reply(s, r->has_id, r->id, (int)code, reason);
        lua_pushboolean(L, 1);
        return 1;
    }
    size_t n = encode_reply(L, r, (int)code, reason, 4); /* first: it may raise */
    r->replied = 1;
    stats_count_reply(&stats, (int)code);
    session_send_bytes(s, broker.scratch.sb.data, n);
    lua_pushboolean(L, 1);
    return 1;
}

/* s:push(t [, mid [, tail]]) -- sends T to this session; a MID > 0 is pushed only once, in
 * order. TAIL, an encoded map (a stored message), adds its pairs to T's as they are. */
static int session_push(lua_State *L)
{
    struct request *r = check_request(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer mid = luaL_optinteger(L, 3, 0);
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    if (mid > 0 && (uint64_t)mid <= s->last_mid) { /* a repeat: not even encoded */
        lua_pushboolean(L, 0);
        return 1;
    }
    size_t n = luahost_encode_frame_tail(L, 2, 4);
    lua_pushboolean(L, router_push(s, broker.scratch.sb.data, n, mid > 0 ? (uint64_t)mid : 0));
    return 1;
}

/* s:close([code, reason]) -- sends `bye` and closes once flushed. */
static int session_close_lua(lua_State *L)
{
    struct request *r = check_request(L);
    lua_Integer code = luaL_optinteger(L, 2, 0);
    const char *reason = luaL_optstring(L, 3, "closed");
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    session_close(s, (int)code, reason);
    lua_pushboolean(L, 1);
    return 1;
}

/* s:authenticate(user) -- logs the session in as USER (an older session of USER gets bye 409):
 * true, or false, code, reason when a login check (a plugin's on_authenticate) refused it. */
static int push_true(lua_State *L, void *ud)
{
    (void)ud;
    lua_pushboolean(L, 1);
    return 1;
}

static void on_claimed(redisReply *reply, const char *error, void *arg)
{
    (void)reply, (void)error; /* logged in either way: a lost claim is renewed on reconnect */
    struct request *r = arg;
    int n = luahost_push_results(r, push_true, NULL);
    if (n < 0)
        luahost_resume_error(r, "no Lua memory left");
    else
        luahost_resume(r, n);
}

static int session_authenticate(lua_State *L)
{
    struct request *r = check_request(L);
    size_t len;
    const char *user = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, len >= 1 && len <= SESSION_USER_MAX, 2, "user name of 1 to 32 bytes");
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    const char *why = NULL;
    int code = session_login(s, user, len, &why);
    if (code == 0) {
        /* answered once the cluster knows: a read of the registry's key behind the claim,
         * so on the same connection (on a Redis Cluster: to the registry's master), comes
         * back after the claim ran (a send from another node then finds the user) */
        const char *after_claim[] = {"EXISTS", cluster_registry_key()};
        size_t after_claim_len[] = {6, strlen(after_claim[1])};
        if (s->claiming && store_command(2, after_claim, after_claim_len, on_claimed, r) == 0)
            return luahost_yield(L, r);
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushinteger(L, code);
    lua_pushstring(L, why);
    return 3;
}

/* s:replaying(true) -- live mailbox messages wait for the replay to bring them.
 * s:replaying(false) -- the replay read everything above s.last_mid: true, and live messages
 * flow again; or false when one arrived meanwhile: read once more, then ask again. */
static int session_replaying(lua_State *L)
{
    struct request *r = check_request(L);
    int on = lua_toboolean(L, 2);
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    if (on)
        s->replaying = 1;
    lua_pushboolean(L, on ? 1 : router_replay_caught_up(s));
    return 1;
}

/* s:drain(low_water [, timeout]) -- yields until at most LOW_WATER bytes wait in this session's
 * output (true), or the session closes (false); past TIMEOUT seconds (default idle_timeout,
 * 0 = none) the session is closed with bye 429 as a slow reader (false). */
static int session_drain(lua_State *L)
{
    struct request *r = check_request(L);
    lua_Integer low_water = luaL_checkinteger(L, 2);
    double timeout = luaL_optnumber(L, 3, broker.conf.idle_timeout);
    luaL_argcheck(L, low_water >= 0, 2, "a number of bytes");
    luaL_argcheck(L, timeout >= 0 && timeout <= 86400, 3, "seconds between 0 and 86400");
    struct session *s = live_session(L, r);
    if (s == NULL) return 1;
    if (session_queued(s) <= (size_t)low_water) {
        lua_pushboolean(L, 1);
        return 1;
    }
    struct request *waiting = luahost_current(L); /* the coroutine that yields, maybe not r's */
    if (waiting == NULL) return luaL_error(L, "s:drain can only be called from a handler or timer");
    return luahost_timer_wait_drain(L, waiting, s, (size_t)low_water, timeout);
}

/* s:broadcast(t) -- T to every other online session; returns how many. */
static int session_broadcast(lua_State *L)
{
    struct request *r = check_request(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = luahost_encode_frame(L, 2);
    struct session *s = r->session ? session_get(r->session) : NULL;
    lua_pushinteger(L, (lua_Integer)router_broadcast(broker.scratch.sb.data, n, s));
    return 1;
}

static const luaL_Reg session_methods[] = {
    {"ok", session_ok},
    {"fail", session_fail},
    {"push", session_push},
    {"close", session_close_lua},
    {"authenticate", session_authenticate},
    {"replaying", session_replaying},
    {"drain", session_drain},
    {"broadcast", session_broadcast},
    {"subscribe", mpl_session_subscribe},
    {"unsubscribe", mpl_session_unsubscribe},
    {"follow_envelope", mpl_session_follow_envelope},
    {NULL, NULL},
};

/* s.user, s.addr, s.id, s.sid (the connection's id), s.connected, s.data (a table kept with the session for scripts),
 * s.queued (bytes waiting to be written), s.last_mid;
 * everything else is a method. */
static int session_index(lua_State *L)
{
    struct request *r = check_request_with(L, lua_upvalueindex(2));
    /* the methods first: s:ok, s:fail and s:push are most of the lookups */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
    lua_pop(L, 1);
    const char *key = luaL_checkstring(L, 2);
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (strcmp(key, "user") == 0) {
        if (s != NULL && s->user_len > 0)
            lua_pushlstring(L, s->user, s->user_len);
        else
            lua_pushnil(L);
    } else if (strcmp(key, "addr") == 0 || strcmp(key, "addr_key") == 0) {
        char addr[80];
        if (s == NULL)
            lua_pushnil(L);
        else if (key[4] == '\0')
            lua_pushstring(L, session_addr_text(s, addr, sizeof addr));
        else
            lua_pushstring(L, session_addr_key(s, addr, sizeof addr));
    } else if (strcmp(key, "id") == 0) {
        if (r->has_id)
            lua_pushinteger(L, (lua_Integer)r->id);
        else
            lua_pushnil(L);
    } else if (strcmp(key, "sid") == 0) {
        lua_pushinteger(L, (lua_Integer)r->session);
    } else if (strcmp(key, "connected") == 0) {
        lua_pushboolean(L, s != NULL);
    } else if (strcmp(key, "data") == 0) {
        if (s != NULL)
            luahost_push_session_data(L, s->handle);
        else
            lua_newtable(L); /* a gone session: a throwaway table */
    } else if (strcmp(key, "queued") == 0) {
        lua_pushinteger(L, s != NULL ? (lua_Integer)session_queued(s) : 0);
    } else if (strcmp(key, "last_mid") == 0) {
        lua_pushinteger(L, s != NULL ? (lua_Integer)s->last_mid : 0);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

void luahost_session_open(lua_State *L)
{
    luaL_newmetatable(L, LUAHOST_REQUEST_META);
    luaL_newlibtable(L, session_methods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, session_methods, 1); /* each method's upvalue: the metatable */
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, session_index, 2); /* the methods, then the metatable */
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
