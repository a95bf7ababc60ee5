/* luahost_api: the `moonpost` module. Its one table below lists every function Lua can call. */
#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#include "broker.h"
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
    /* options the scripts declare */
    {"option", mpl_option},
    /* delivery and presence */
    {"deliver", mpl_deliver},
    {"broadcast", mpl_broadcast},
    {"online", mpl_online},
    {"users", mpl_users},
    /* calls that yield */
    {"redis", mpl_redis},
    {"redis_batch", mpl_redis_batch},
    {"redis_library", mpl_redis_library},
    {"pwhash", mpl_pwhash},
    {"pwverify", mpl_pwverify},
    {"sleep", mpl_sleep},
    {"every", mpl_every},
    {NULL, NULL},
};

size_t luahost_encode_frame(lua_State *L, int idx)
{
    char err[256];
    if (codec_encode_frame(L, idx, &broker.scratch, err, sizeof err) != 0)
        return (size_t)luaL_error(L, "cannot encode frame: %s", err);
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
    if (codec_encode(L, 1, &buf.pk, err, sizeof err) != 0) return luaL_error(L, "encode: %s", err);
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

int mpl_deliver(lua_State *L)
{
    size_t user_len;
    const char *user = luaL_checklstring(L, 1, &user_len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer mid = luaL_optinteger(L, 3, 0);
    struct session *s = presence_find(user, user_len); /* offline: nothing to encode */
    if (s == NULL) {
        lua_pushboolean(L, 0);
        return 1;
    }
    uint64_t live_mid = mid > 0 ? (uint64_t)mid : 0;
    if (router_live_wanted(s, live_mid)) { /* else the replay brings it: not even encoded */
        size_t n = luahost_encode_frame(L, 2);
        router_deliver_wanted(s, broker.scratch.sb.data, n, live_mid);
    }
    lua_pushboolean(L, 1);
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

int mpl_online(lua_State *L)
{
    size_t len;
    const char *user = luaL_checklstring(L, 1, &len);
    lua_pushboolean(L, presence_find(user, len) != NULL);
    return 1;
}

int mpl_users(lua_State *L)
{
    lua_Integer limit = luaL_optinteger(L, 1, 1000);
    size_t total = presence_count();
    size_t n = limit < 0 ? 0 : (size_t)limit < total ? (size_t)limit : total;
    lua_createtable(L, (int)n, 0);
    luaL_setmetatable(L, CODEC_ARRAY_META);
    for (size_t i = 0; i < n; i++) {
        struct session *s = presence_at(i);
        lua_pushlstring(L, s->user, s->user_len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushinteger(L, (lua_Integer)total);
    return 2;
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
