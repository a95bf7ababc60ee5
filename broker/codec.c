/* codec: MessagePack <-> Lua, in both directions, bounded in depth and size. */
#include "codec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "frame.h"
#include "msgread.h"

static int bin_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

static int bin_tostring(lua_State *L)
{
    lua_pushlstring(L, lua_touserdata(L, 1), lua_rawlen(L, 1));
    return 1;
}

static int bin_eq(lua_State *L)
{
    size_t a_len, b_len;
    const char *a = codec_tobytes(L, 1, &a_len);
    const char *b = codec_tobytes(L, 2, &b_len);
    lua_pushboolean(L, a && b && a_len == b_len && memcmp(a, b, a_len) == 0);
    return 1;
}

void codec_open(lua_State *L)
{
    static const luaL_Reg bin_meta[] = {
        {"__len", bin_len}, {"__tostring", bin_tostring}, {"__eq", bin_eq}, {NULL, NULL}};
    luaL_newmetatable(L, CODEC_BIN_META);
    luaL_setfuncs(L, bin_meta, 0);
    lua_pop(L, 1);
    luaL_newmetatable(L, CODEC_ARRAY_META);
    lua_pop(L, 1);
}

void codec_push_bin(lua_State *L, const void *data, size_t len)
{
    void *ud = lua_newuserdatauv(L, len, 0);
    if (len > 0) memcpy(ud, data, len);
    luaL_setmetatable(L, CODEC_BIN_META);
}

const char *codec_tobytes(lua_State *L, int idx, size_t *len)
{
    if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
    if (luaL_testudata(L, idx, CODEC_BIN_META) != NULL) {
        *len = lua_rawlen(L, idx);
        return lua_touserdata(L, idx);
    }
    return NULL;
}

/* ---- decoding ---- */

struct decoder {
    struct mpr r;
    size_t values, max_values; /* created so far, and the bound (0 = none) */
    const char *err;
    int status;
};

static int decode_fail(struct decoder *d, int status, const char *err)
{
    d->status = status;
    d->err = err;
    return -1;
}

static int decode_value(lua_State *L, struct decoder *d, int depth);

static int decode_container(lua_State *L, struct decoder *d, const struct msgread_item *item,
                            int depth)
{
    if (depth > CODEC_MAX_DEPTH)
        return decode_fail(d, CODEC_MALFORMED, "containers nested deeper than 32");
    if (!lua_checkstack(L, 4)) return decode_fail(d, CODEC_MALFORMED, "out of Lua stack");
    int is_map = item->type == MSGREAD_MAP;
    /* the count was checked against the bytes left; a table sized for more values than the
     * budget allows would be the very allocation the budget is there to prevent */
    size_t left = d->max_values ? d->max_values - d->values : item->v.count;
    int size = (int)(item->v.count < left ? item->v.count : left);
    lua_createtable(L, is_map ? 0 : size, is_map ? size : 0);
    if (!is_map && item->v.count == 0) luaL_setmetatable(L, CODEC_ARRAY_META);
    for (uint32_t i = 0; i < item->v.count; i++) {
        if (is_map) {
            if (decode_value(L, d, depth + 1) != 0) goto fail;
            int kt = lua_type(L, -1);
            if (kt == LUA_TNIL || (kt == LUA_TNUMBER && isnan(lua_tonumber(L, -1))) ||
                kt == LUA_TTABLE || kt == LUA_TUSERDATA) {
                decode_fail(d, CODEC_MALFORMED, "map key must be a string or a number");
                lua_pop(L, 1);
                goto fail;
            }
            if (decode_value(L, d, depth + 1) != 0) {
                lua_pop(L, 1);
                goto fail;
            }
            lua_rawset(L, -3);
        } else {
            if (decode_value(L, d, depth + 1) != 0) goto fail;
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
    }
    return 0;
fail:
    lua_pop(L, 1);
    return -1;
}

static int decode_value(lua_State *L, struct decoder *d, int depth)
{
    if (d->max_values && d->values == d->max_values)
        return decode_fail(d, CODEC_TOO_MANY, "too many values");
    d->values++;
    struct msgread_item item;
    int rc = msgread_next(&d->r, &item);
    if (rc != MSGREAD_OK)
        return decode_fail(d, CODEC_MALFORMED, rc == MSGREAD_UNSUPPORTED ? "unsupported msgpack type"
                                                                     : "truncated msgpack");
    switch (item.type) {
    case MSGREAD_NIL: lua_pushnil(L); return 0;
    case MSGREAD_BOOL: lua_pushboolean(L, item.v.boolean); return 0;
    case MSGREAD_INT: lua_pushinteger(L, (lua_Integer)item.v.i); return 0;
    case MSGREAD_UINT:
        /* integers past 2^63-1 have no Lua integer: they wrap, as in Lua's own math */
        lua_pushinteger(L, (lua_Integer)item.v.u);
        return 0;
    case MSGREAD_FLOAT: lua_pushnumber(L, item.v.f); return 0;
    case MSGREAD_STR: lua_pushlstring(L, (const char *)item.v.str.ptr, item.v.str.len); return 0;
    case MSGREAD_BIN: codec_push_bin(L, item.v.str.ptr, item.v.str.len); return 0;
    case MSGREAD_ARRAY:
    case MSGREAD_MAP: return decode_container(L, d, &item, depth);
    }
    return decode_fail(d, CODEC_MALFORMED, "unknown item");
}

int codec_decode(lua_State *L, const uint8_t *data, size_t len, size_t max_values,
                 size_t *values, const char **err)
{
    struct decoder d = {.max_values = max_values, .status = CODEC_OK};
    msgread_init(&d.r, data, len);
    if (!lua_checkstack(L, 4)) {
        *err = "out of Lua stack";
        return CODEC_MALFORMED;
    }
    if (decode_value(L, &d, 1) != 0) {
        *err = d.err;
        return d.status;
    }
    if (d.r.pos != d.r.end) {
        lua_pop(L, 1);
        *err = "trailing bytes after the value";
        return CODEC_MALFORMED;
    }
    if (values != NULL) *values = d.values;
    return CODEC_OK;
}

/* ---- encoding ---- */

static int encode_value(lua_State *L, int idx, struct codec_buf *b, int depth, char *errbuf,
                        size_t errlen);

/* Returns the array length when the table at IDX is a sequence 1..n, else -1. */
static lua_Integer table_array_len(lua_State *L, int idx)
{
    if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, CODEC_ARRAY_META);
        int marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (marked) return (lua_Integer)lua_rawlen(L, idx);
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0) return -1;
    /* a border n says nothing of the keys below it ({1, 2, [4] = 4, x = 5} may have #t == 4):
     * it is a sequence only when its n keys are all integers in 1..n */
    lua_Integer count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        if (k < 1 || k > n || ++count > n) {
            lua_pop(L, 1);
            return -1;
        }
    }
    return count == n ? n : -1;
}

/* Rewrites the map header at AT of SB, written for 0 pairs (one byte), for PAIRS: the pairs
 * after it move when the header needs more bytes (past 15 pairs). The bytes are those
 * msgpack_pack_map(PAIRS) writes. 0, or -1 out of memory. */
static int patch_map_header(msgpack_sbuffer *sb, size_t at, size_t pairs)
{
    if (pairs <= 15) {
        sb->data[at] = (char)(0x80 | pairs);
        return 0;
    }
    char header[5];
    size_t n;
    if (pairs <= 0xffff) {
        header[0] = (char)0xde;
        header[1] = (char)(pairs >> 8);
        header[2] = (char)pairs;
        n = 3;
    } else {
        header[0] = (char)0xdf;
        for (int i = 0; i < 4; i++) header[1 + i] = (char)(pairs >> (24 - 8 * i));
        n = 5;
    }
    size_t body = sb->size - at - 1;
    if (msgpack_sbuffer_write(sb, header, n - 1) != 0) return -1; /* room at the end */
    memmove(sb->data + at + n, sb->data + at + 1, body);
    memcpy(sb->data + at, header, n);
    return 0;
}

/* The pairs of the map at IDX, one after the other, with no header; their count in *PAIRS. */
static int encode_pairs(lua_State *L, int idx, struct codec_buf *b, int depth, size_t *pairs,
                        char *errbuf, size_t errlen)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int top = lua_gettop(L);
        if (encode_value(L, top - 1, b, depth + 1, errbuf, errlen) != 0 ||
            encode_value(L, top, b, depth + 1, errbuf, errlen) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
        (*pairs)++;
    }
    return 0;
}

/* A table that is no sequence, as a map, in one walk of the table: its header is written for
 * 0 pairs, then rewritten once they are counted. */
static int encode_map(lua_State *L, int idx, struct codec_buf *b, int depth, char *errbuf,
                      size_t errlen)
{
    size_t at = b->sb.size, pairs = 0;
    msgpack_pack_map(&b->pk, 0);
    if (encode_pairs(L, idx, b, depth, &pairs, errbuf, errlen) != 0) return -1;
    if (patch_map_header(&b->sb, at, pairs) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int encode_table(lua_State *L, int idx, struct codec_buf *b, int depth, char *errbuf,
                        size_t errlen)
{
    if (depth > CODEC_MAX_DEPTH) {
        snprintf(errbuf, errlen, "tables nested deeper than %d (a cycle?)", CODEC_MAX_DEPTH);
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(errbuf, errlen, "out of Lua stack");
        return -1;
    }
    lua_Integer n = table_array_len(L, idx);
    if (n >= 0) {
        msgpack_pack_array(&b->pk, (size_t)n);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            int rc = encode_value(L, lua_gettop(L), b, depth + 1, errbuf, errlen);
            lua_pop(L, 1);
            if (rc != 0) return -1;
        }
        return 0;
    }
    return encode_map(L, idx, b, depth, errbuf, errlen);
}

static void encode_integer(msgpack_packer *pk, lua_Integer v)
{
    if (v >= 0)
        msgpack_pack_uint64(pk, (uint64_t)v);
    else
        msgpack_pack_int64(pk, (int64_t)v);
}

static int encode_value(lua_State *L, int idx, struct codec_buf *b, int depth, char *errbuf,
                        size_t errlen)
{
    msgpack_packer *pk = &b->pk;
    size_t len;
    const char *bytes;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: msgpack_pack_nil(pk); return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            encode_integer(pk, lua_tointeger(L, idx));
        else
            msgpack_pack_double(pk, lua_tonumber(L, idx));
        return 0;
    case LUA_TSTRING:
        bytes = lua_tolstring(L, idx, &len);
        msgpack_pack_str_with_body(pk, bytes, len);
        return 0;
    case LUA_TTABLE: return encode_table(L, idx, b, depth, errbuf, errlen);
    case LUA_TUSERDATA:
        if (luaL_testudata(L, idx, CODEC_BIN_META) != NULL) {
            msgpack_pack_bin_with_body(pk, lua_touserdata(L, idx), lua_rawlen(L, idx));
            return 0;
        }
        break;
    default: break;
    }
    snprintf(errbuf, errlen, "cannot encode a %s", luaL_typename(L, idx));
    return -1;
}

int codec_encode(lua_State *L, int idx, struct codec_buf *b, char *errbuf, size_t errlen)
{
    return encode_value(L, lua_absindex(L, idx), b, 1, errbuf, errlen);
}

/* ---- frames ---- */

void codec_buf_init(struct codec_buf *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

void codec_buf_free(struct codec_buf *b)
{
    msgpack_sbuffer_destroy(&b->sb);
}

void codec_frame_begin(struct codec_buf *b)
{
    static const char no_length[FRAME_HEADER_LEN];
    msgpack_sbuffer_clear(&b->sb);
    msgpack_sbuffer_write(&b->sb, no_length, sizeof no_length);
}

size_t codec_frame_end(struct codec_buf *b)
{
    frame_write_length((uint8_t *)b->sb.data, (uint32_t)(b->sb.size - FRAME_HEADER_LEN));
    return b->sb.size;
}

/* Starts a frame of the value at IDX, which must be a table. */
static int begin_table_frame(lua_State *L, int idx, struct codec_buf *b, char *errbuf,
                             size_t errlen)
{
    codec_frame_begin(b);
    if (lua_type(L, idx) != LUA_TTABLE) {
        snprintf(errbuf, errlen, "a frame must be a table, got %s", luaL_typename(L, idx));
        return -1;
    }
    return 0;
}

int codec_encode_frame(lua_State *L, int idx, struct codec_buf *b, char *errbuf, size_t errlen)
{
    if (begin_table_frame(L, idx, b, errbuf, errlen) != 0) return -1;
    if (codec_encode(L, idx, b, errbuf, errlen) != 0) return -1;
    codec_frame_end(b);
    return 0;
}

/* TAIL's pairs: its bytes after the map header, and their count. -1 when TAIL is not exactly one
 * whole MessagePack map (checked without allocating: it may come from Redis). */
static int tail_pairs(const uint8_t *tail, size_t len, const uint8_t **body, size_t *pairs)
{
    struct mpr r;
    struct msgread_item head;
    msgread_init(&r, tail, len);
    if (msgread_next(&r, &head) != MSGREAD_OK || head.type != MSGREAD_MAP) return -1;
    *body = r.pos;
    *pairs = head.v.count;
    msgread_init(&r, tail, len);
    if (msgread_skip(&r, CODEC_MAX_DEPTH) != MSGREAD_OK || msgread_left(&r) != 0) return -1;
    return 0;
}

int codec_encode_frame_tail(lua_State *L, int idx, const uint8_t *tail, size_t tail_len,
                            struct codec_buf *b, char *errbuf, size_t errlen)
{
    const uint8_t *body;
    size_t pairs = 0, tail_count;
    if (begin_table_frame(L, idx, b, errbuf, errlen) != 0) return -1;
    if (tail_pairs(tail, tail_len, &body, &tail_count) != 0) {
        snprintf(errbuf, errlen, "the frame's tail is not one whole MessagePack map");
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(errbuf, errlen, "out of Lua stack");
        return -1;
    }
    size_t at = b->sb.size;
    msgpack_pack_map(&b->pk, 0);
    if (encode_pairs(L, lua_absindex(L, idx), b, 1, &pairs, errbuf, errlen) != 0) return -1;
    if (msgpack_sbuffer_write(&b->sb, (const char *)body, (size_t)(tail + tail_len - body)) != 0 ||
        patch_map_header(&b->sb, at, pairs + tail_count) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    codec_frame_end(b);
    return 0;
}
