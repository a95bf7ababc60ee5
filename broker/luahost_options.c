/* luahost_options: moonpost.option, through which scripts declare their options at load time
 * and read them:
 *
 *     local max = mp.option("mailbox_max", { type = "int", default = 10000, min = 1,
 *                                            doc = "messages a mailbox holds" })
 *     mp.option("mailbox_max") --> the same value, anywhere in the scripts of this state
 *
 * A declaration goes into the options of the state being loaded (options.h), which give it the
 * config's value or the default. Each Lua state keeps the values it was loaded with in a table
 * of its own: a reload that reads new values loads a new state, and requests still running on
 * the old one go on with the old values. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "luahost.h"
#include "luahost_api.h"
#include "options.h"

static const char values_key = 'o'; /* registry: option name -> value */

/* Pushes V as the Lua value of its type. */
static void push_value(lua_State *L, const struct option_value *v)
{
    switch (v->type) {
    case OPTION_INT:
        lua_pushinteger(L, (lua_Integer)v->integer);
        break;
    case OPTION_NUMBER:
        lua_pushnumber(L, (lua_Number)v->number);
        break;
    case OPTION_BOOL:
        lua_pushboolean(L, (int)v->integer);
        break;
    case OPTION_STRING:
        lua_pushstring(L, v->text);
        break;
    }
}

/* The default at IDX written as in the config file, in BUF (or a string of the state). */
static const char *default_text(lua_State *L, int idx, enum option_type type, char *buf, size_t len)
{
    lua_Integer n;
    switch (type) {
    case OPTION_INT:
        if (!lua_isinteger(L, idx)) {
            lua_Number d = lua_tonumber(L, idx);
            if (lua_type(L, idx) != LUA_TNUMBER || !lua_numbertointeger(d, &n)) break;
        } else {
            n = lua_tointeger(L, idx);
        }
        snprintf(buf, len, "%lld", (long long)n);
        return buf;
    case OPTION_NUMBER:
        if (lua_type(L, idx) != LUA_TNUMBER) break;
        snprintf(buf, len, "%.17g", (double)lua_tonumber(L, idx));
        return buf;
    case OPTION_BOOL:
        if (lua_type(L, idx) != LUA_TBOOLEAN) break;
        return lua_toboolean(L, idx) ? "on" : "off";
    case OPTION_STRING:
        if (lua_type(L, idx) != LUA_TSTRING) break;
        return lua_tostring(L, idx);
    }
    luaL_error(L, "option default must be of its type (%s)", option_type_name(type));
    return NULL;
}

/* Refuses a field of the spec table at IDX that a declaration does not take (a typo would
 * otherwise be silently ignored). */
static void check_fields(lua_State *L, int idx)
{
    static const char *const fields[] = {"type", "default", "min", "max", "doc", NULL};
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int known = 0;
        for (size_t i = 0; key != NULL && fields[i] != NULL; i++)
            known |= strcmp(key, fields[i]) == 0;
        if (!known)
            luaL_error(L, "option spec: unknown field '%s' (type, default, min, max, doc)",
                       key ? key : luaL_typename(L, -1));
    }
}

/* Reads an optional number field of the spec table at IDX. */
static int bound(lua_State *L, int idx, const char *field, double *out)
{
    int t = lua_getfield(L, idx, field);
    if (t != LUA_TNIL && t != LUA_TNUMBER) luaL_error(L, "option %s must be a number", field);
    *out = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return t == LUA_TNUMBER;
}

/* Who declares: the source file of the calling function, into BUF. */
static const char *declarer(lua_State *L, char *buf, size_t len)
{
    lua_Debug ar;
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "S", &ar))
        snprintf(buf, len, "a script");
    else
        snprintf(buf, len, "%s",
                 ar.source[0] == '@' || ar.source[0] == '=' ? ar.source + 1 : ar.short_src);
    return buf;
}

/* moonpost.option(name, spec): declares NAME into the options being loaded and keeps its
 * value in this state's table. */
static void declare(lua_State *L, const char *name)
{
    struct options *options = luahost_loading_options(L);
    if (options == NULL) return (void)luaL_error(L, "options are declared at load time only");
    luaL_checktype(L, 2, LUA_TTABLE);
    check_fields(L, 2);
    struct option_spec spec = {.name = name};
    lua_getfield(L, 2, "type");
    int type = lua_type(L, -1) == LUA_TSTRING ? option_type_parse(lua_tostring(L, -1)) : -1;
    if (type < 0) luaL_error(L, "option type must be \"int\", \"number\", \"bool\" or \"string\"");
    spec.type = (enum option_type)type;
    char def[64];
    if (lua_getfield(L, 2, "default") == LUA_TNIL)
        luaL_error(L, "option '%s' needs a default", name);
    spec.default_value = default_text(L, -1, spec.type, def, sizeof def);
    spec.has_min = bound(L, 2, "min", &spec.min);
    spec.has_max = bound(L, 2, "max", &spec.max);
    int t = lua_getfield(L, 2, "doc");
    if (t != LUA_TNIL && t != LUA_TSTRING) luaL_error(L, "option doc must be a string");
    spec.doc = lua_tostring(L, -1);
    char owner[512], err[1024];
    if (options_declare(options, &spec, declarer(L, owner, sizeof owner), 0, err, sizeof err) != 0)
        luaL_error(L, "%s", err);
    lua_settop(L, 2);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &values_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &values_key);
    }
    push_value(L, options_get(options, name));
    lua_setfield(L, -2, name);
    lua_settop(L, 2);
}

int mpl_option(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) declare(L, name);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &values_key) != LUA_TTABLE ||
        lua_getfield(L, -1, name) == LUA_TNIL)
        return luaL_error(L,
                          "option '%s' is not declared: declare it at load time with "
                          "moonpost.option(name, {type = ..., default = ...})",
                          name);
    return 1;
}
