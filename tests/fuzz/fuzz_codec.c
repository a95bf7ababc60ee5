/* libFuzzer target for the MessagePack <-> Lua codec.
 *
 * Decodes the input into a persistent Lua state. When that works, the value V1 is encoded (B),
 * B is decoded again (V2) and encoded again (C). It aborts when the second decode fails, when
 * V2 is not the same value as V1, or when C differs from B. C may list the pairs of a map in
 * another order than B (a Lua table has no order, and V2's hash layout differs from V1's): then
 * C must have B's size and decode to the same value. Every input is also tried as a frame's
 * tail (codec_encode_frame_tail): what it takes must make a frame that is one whole map, and a
 * map the decoder takes it must take, with the same pairs. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <msgpack.h>

#include "codec.h"
#include "frame.h"
#include "msgread.h"

static lua_State *L;
static struct codec_buf first, second;
static struct codec_buf frame;

static void require(int ok)
{
    if (!ok) abort();
}

static void init(void)
{
    L = luaL_newstate();
    require(L != NULL);
    codec_open(L);
    codec_buf_init(&first);
    codec_buf_init(&second);
    codec_buf_init(&frame);
}

static void encode(int idx, struct codec_buf *b)
{
    char err[128];
    msgpack_sbuffer_clear(&b->sb);
    require(codec_encode(L, idx, b, err, sizeof err) == 0);
}

static void decode(const char *data, size_t len)
{
    const char *err = NULL;
    int top = lua_gettop(L);
    require(codec_decode(L, (const uint8_t *)data, len, 0, NULL, &err) == CODEC_OK);
    require(lua_gettop(L) == top + 1);
}

static size_t count_pairs(int t)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        n++;
    }
    return n;
}

static int same_value(int a, int b);

/* Same metatable, same keys, and the same value under each key. */
static int same_table(int a, int b)
{
    int a_meta = lua_getmetatable(L, a);
    int b_meta = lua_getmetatable(L, b);
    int same_meta = a_meta == b_meta && (!a_meta || lua_rawequal(L, -1, -2));
    lua_pop(L, a_meta + b_meta);
    if (!same_meta || count_pairs(a) != count_pairs(b)) return 0;
    lua_pushnil(L);
    while (lua_next(L, a)) {
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int same = same_value(lua_gettop(L) - 1, lua_gettop(L));
        lua_pop(L, 2);
        if (!same) {
            lua_pop(L, 1);
            return 0;
        }
    }
    return 1;
}

static int same_value(int a, int b)
{
    require(lua_checkstack(L, 8));
    if (lua_type(L, a) != lua_type(L, b)) return 0;
    size_t a_len, b_len;
    const char *a_bytes, *b_bytes;
    switch (lua_type(L, a)) {
    case LUA_TNIL:
        return 1;
    case LUA_TBOOLEAN:
        return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TNUMBER:
        if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
        if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
        {
            double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
            return memcmp(&x, &y, sizeof x) == 0; /* bit for bit: -0.0 and NaN included */
        }
    case LUA_TSTRING:
    case LUA_TUSERDATA:
        a_bytes = codec_tobytes(L, a, &a_len);
        b_bytes = codec_tobytes(L, b, &b_len);
        require(a_bytes != NULL && b_bytes != NULL); /* decoding makes no other userdata */
        return a_len == b_len && memcmp(a_bytes, b_bytes, a_len) == 0;
    case LUA_TTABLE:
        return same_table(a, b);
    default:
        return 0;
    }
}

/* A table encodes as a frame whose body is what codec_encode wrote for it. */
static void check_frame(int idx)
{
    char err[128];
    require(codec_encode_frame(L, idx, &frame, err, sizeof err) == 0);
    const uint8_t *data = (const uint8_t *)frame.sb.data;
    require(frame.sb.size == FRAME_HEADER_LEN + first.sb.size);
    require(frame_read_length(data) == first.sb.size);
    require(memcmp(data + FRAME_HEADER_LEN, first.sb.data, first.sb.size) == 0);
}

/* The input as the tail of an empty frame: 0 and the frame in FRAME, or -1. */
static int check_tail(const uint8_t *data, size_t size)
{
    char err[128];
    lua_newtable(L);
    int rc = codec_encode_frame_tail(L, -1, data, size, &frame, err, sizeof err);
    lua_pop(L, 1);
    if (rc != 0) return -1;
    struct mpr r;
    msgread_init(&r, frame.sb.data + FRAME_HEADER_LEN, frame.sb.size - FRAME_HEADER_LEN);
    require(msgread_skip(&r, CODEC_MAX_DEPTH) == MSGREAD_OK && msgread_left(&r) == 0);
    return 0;
}

static int is_map_header(uint8_t byte)
{
    return (byte & 0xf0) == 0x80 || byte == 0xde || byte == 0xdf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL) init();
    lua_settop(L, 0);
    int tail_rc = check_tail(data, size);
    const char *err = NULL;
    size_t values = 0;
    if (codec_decode(L, data, size, 0, &values, &err) != CODEC_OK) {
        require(err != NULL && lua_gettop(L) == 0);
        return 0;
    }
    require(lua_gettop(L) == 1 && values >= 1 && values <= size);
    /* the value budget: exactly VALUES fits, one less stops with nothing pushed */
    require(codec_decode(L, data, size, values, NULL, &err) == CODEC_OK);
    lua_pop(L, 1);
    require(codec_decode(L, data, size, values - 1 ? values - 1 : 0, NULL, &err) ==
            (values > 1 ? CODEC_TOO_MANY : CODEC_OK));
    lua_settop(L, 1);
    if (is_map_header(data[0])) { /* taken whole as a tail, with the same pairs */
        require(tail_rc == 0);
        decode(frame.sb.data + FRAME_HEADER_LEN, frame.sb.size - FRAME_HEADER_LEN);
        require(same_value(1, 2));
        lua_settop(L, 1);
    }

    encode(1, &first);
    if (lua_type(L, 1) == LUA_TTABLE) check_frame(1);
    decode(first.sb.data, first.sb.size);
    require(same_value(1, 2));
    encode(2, &second);
    if (first.sb.size != second.sb.size ||
        memcmp(first.sb.data, second.sb.data, first.sb.size) != 0) {
        require(first.sb.size == second.sb.size);
        decode(second.sb.data, second.sb.size);
        require(same_value(2, 3));
    }
    lua_settop(L, 0);
    return 0;
}
