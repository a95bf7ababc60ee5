/* Unit tests for broker/codec.c: MessagePack -> Lua -> MessagePack for every type, the limits
 * on depth and declared sizes, and the frame encoder, against a real Lua 5.4 state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <msgpack.h>

#include "codec.h"
#include "frame.h"

/* ---- fixture: a Lua state whose allocations are watched, an input and an output buffer ---- */

struct fixture {
    lua_State *L;
    lua_Alloc alloc;
    void *alloc_ud;
    size_t largest_alloc; /* the largest block Lua asked for since the last reset */
    msgpack_sbuffer in;
    msgpack_packer in_pk;
    struct codec_buf out;
    char errbuf[256];
};

static void *watching_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct fixture *f = ud;
    if (nsize > f->largest_alloc) f->largest_alloc = nsize;
    return f->alloc(f->alloc_ud, ptr, osize, nsize);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->L = luaL_newstate();
    assert_non_null(f->L);
    f->alloc = lua_getallocf(f->L, &f->alloc_ud);
    lua_setallocf(f->L, watching_alloc, f);
    luaL_openlibs(f->L);
    codec_open(f->L);
    msgpack_sbuffer_init(&f->in);
    msgpack_packer_init(&f->in_pk, &f->in, msgpack_sbuffer_write);
    codec_buf_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lua_close(f->L);
    msgpack_sbuffer_destroy(&f->in);
    codec_buf_free(&f->out);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static void reset_in(struct fixture *f)
{
    msgpack_sbuffer_clear(&f->in);
}

static void put_hex(struct fixture *f, const char *hex)
{
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        char byte = (char)v;
        msgpack_sbuffer_write(&f->in, &byte, 1);
        p += 2;
    }
}

/* Decodes the input buffer, which must succeed and push exactly one value. */
static void decode_in(struct fixture *f)
{
    const char *err = NULL;
    int top = lua_gettop(f->L);
    int rc = codec_decode(f->L, (const uint8_t *)f->in.data, f->in.size, 0, NULL, &err);
    if (rc != 0) fail_msg("codec_decode failed: %s", err);
    assert_int_equal(lua_gettop(f->L), top + 1);
}

/* Decodes the input buffer, which must fail with REASON and push nothing. */
static void assert_decode_fails(struct fixture *f, const char *reason)
{
    const char *err = NULL;
    int top = lua_gettop(f->L);
    assert_int_equal(codec_decode(f->L, (const uint8_t *)f->in.data, f->in.size, 0, NULL, &err),
                     CODEC_MALFORMED);
    assert_int_equal(lua_gettop(f->L), top);
    assert_non_null(err);
    if (reason) assert_string_equal(err, reason);
}

static void assert_hex_fails(struct fixture *f, const char *hex, const char *reason)
{
    reset_in(f);
    put_hex(f, hex);
    assert_decode_fails(f, reason);
}

/* Encodes the value on top of the stack into the output buffer; it must succeed. */
static void encode_top(struct fixture *f)
{
    msgpack_sbuffer_clear(&f->out.sb);
    int top = lua_gettop(f->L);
    int rc = codec_encode(f->L, -1, &f->out, f->errbuf, sizeof f->errbuf);
    if (rc != 0) fail_msg("codec_encode failed: %s", f->errbuf);
    assert_int_equal(lua_gettop(f->L), top);
}

/* Encodes the value on top of the stack, which must fail with an error containing WHAT. */
static void assert_encode_fails(struct fixture *f, const char *what)
{
    msgpack_sbuffer_clear(&f->out.sb);
    f->errbuf[0] = '\0';
    int top = lua_gettop(f->L);
    assert_int_equal(codec_encode(f->L, -1, &f->out, f->errbuf, sizeof f->errbuf), -1);
    assert_int_equal(lua_gettop(f->L), top);
    if (strstr(f->errbuf, what) == NULL) fail_msg("error \"%s\" lacks \"%s\"", f->errbuf, what);
}

static void assert_out_equals_in(struct fixture *f)
{
    assert_int_equal(f->out.sb.size, f->in.size);
    assert_memory_equal(f->out.sb.data, f->in.data, f->in.size);
}

static void assert_out_hex(struct fixture *f, const char *hex)
{
    msgpack_sbuffer saved = f->in; /* put_hex writes into f->in: lend it a scratch buffer */
    msgpack_sbuffer_init(&f->in);
    put_hex(f, hex);
    assert_int_equal(f->out.sb.size, f->in.size);
    assert_memory_equal(f->out.sb.data, f->in.data, f->in.size);
    msgpack_sbuffer_destroy(&f->in);
    f->in = saved;
}

/* Decodes the input, encodes it back and expects the very same bytes. */
static void assert_round_trip(struct fixture *f)
{
    decode_in(f);
    encode_top(f);
    assert_out_equals_in(f);
    lua_pop(f->L, 1);
}

/* Runs CODE with the value on top of the stack as global `v`; CODE must return true. */
static void assert_lua(struct fixture *f, const char *code)
{
    lua_pushvalue(f->L, -1);
    lua_setglobal(f->L, "v");
    if (luaL_dostring(f->L, code) != LUA_OK) fail_msg("%s: %s", code, lua_tostring(f->L, -1));
    if (!lua_toboolean(f->L, -1)) fail_msg("not true: %s", code);
    lua_pop(f->L, 1);
}

/* Pushes the value CODE returns. */
static void push_lua(struct fixture *f, const char *code)
{
    if (luaL_dostring(f->L, code) != LUA_OK) fail_msg("%s: %s", code, lua_tostring(f->L, -1));
}

/* MessagePack equality where maps compare as unordered sets of pairs (Lua tables have no
 * order, so the encoder may write pairs in any order). */
static int obj_equal(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size) return 0;
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            const msgpack_object_kv *kv = &a->via.map.ptr[i];
            uint32_t j = 0;
            while (j < b->via.map.size && !obj_equal(&kv->key, &b->via.map.ptr[j].key))
                j++;
            if (j == b->via.map.size || !obj_equal(&kv->val, &b->via.map.ptr[j].val)) return 0;
        }
        return 1;
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size) return 0;
        for (uint32_t i = 0; i < a->via.array.size; i++)
            if (!obj_equal(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
        return 1;
    default:
        return msgpack_object_equal(*a, *b);
    }
}

static void assert_out_equivalent_to_in(struct fixture *f)
{
    msgpack_unpacked a, b;
    msgpack_unpacked_init(&a);
    msgpack_unpacked_init(&b);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&a, f->in.data, f->in.size, &off), MSGPACK_UNPACK_SUCCESS);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&b, f->out.sb.data, f->out.sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, f->out.sb.size);
    assert_int_equal(f->out.sb.size, f->in.size);
    assert_true(obj_equal(&a.data, &b.data));
    msgpack_unpacked_destroy(&a);
    msgpack_unpacked_destroy(&b);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- scalars ---- */

static void test_nil_and_booleans_round_trip(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_nil(&f->in_pk);
    decode_in(f);
    assert_int_equal(lua_type(f->L, -1), LUA_TNIL);
    encode_top(f);
    assert_out_hex(f, "c0");
    lua_pop(f->L, 1);

    reset_in(f);
    msgpack_pack_true(&f->in_pk);
    decode_in(f);
    assert_int_equal(lua_type(f->L, -1), LUA_TBOOLEAN);
    assert_true(lua_toboolean(f->L, -1));
    encode_top(f);
    assert_out_hex(f, "c3");
    lua_pop(f->L, 1);

    reset_in(f);
    msgpack_pack_false(&f->in_pk);
    decode_in(f);
    assert_int_equal(lua_type(f->L, -1), LUA_TBOOLEAN);
    assert_false(lua_toboolean(f->L, -1));
    encode_top(f);
    assert_out_hex(f, "c2");
    lua_pop(f->L, 1);
}

/* clang-format off */
static const int64_t integers[] = {
    0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, (int64_t)UINT32_MAX + 1,
    INT64_MAX - 1, INT64_MAX,
    -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
    INT32_MIN + 1, INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN + 1, INT64_MIN,
};
/* clang-format on */

static void test_integers_of_every_width_round_trip(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof integers / sizeof integers[0]; i++) {
        reset_in(f);
        msgpack_pack_int64(&f->in_pk, integers[i]);
        decode_in(f);
        assert_true(lua_isinteger(f->L, -1));
        assert_true(lua_tointeger(f->L, -1) == integers[i]);
        encode_top(f);
        assert_out_equals_in(f);
        lua_pop(f->L, 1);
    }
}

static void test_uint64_values_up_to_int64_max_round_trip(void **state)
{
    struct fixture *f = *state;
    const uint64_t values[] = {0, 200, 60000, 4000000000u, 1ull << 40, (uint64_t)INT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        reset_in(f);
        msgpack_pack_uint64(&f->in_pk, values[i]);
        decode_in(f);
        assert_true(lua_isinteger(f->L, -1));
        assert_true((uint64_t)lua_tointeger(f->L, -1) == values[i]);
        assert_round_trip(f);
        lua_pop(f->L, 1);
    }
}

static void test_uint64_past_int64_max_wraps_as_documented(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_uint64(&f->in_pk, UINT64_MAX);
    decode_in(f);
    assert_true(lua_isinteger(f->L, -1));
    assert_true(lua_tointeger(f->L, -1) == -1);
    encode_top(f);
    assert_out_hex(f, "ff");
    lua_pop(f->L, 1);
}

static void test_wide_encodings_of_small_integers_decode_to_the_value(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *in, *out;
        int64_t value;
    } cases[] = {
        {"cf 0000000000000001", "01", 1},
        {"ce 00000080", "cc 80", 128},
        {"d0 05", "05", 5},
        {"d3 ffffffffffffffff", "ff", -1},
        {"d1 ff80", "d0 80", -128},
        {"d2 ffff8000", "d1 8000", -32768},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reset_in(f);
        put_hex(f, cases[i].in);
        decode_in(f);
        assert_true(lua_tointeger(f->L, -1) == cases[i].value);
        encode_top(f);
        assert_out_hex(f, cases[i].out);
        lua_pop(f->L, 1);
    }
}

static void test_float64_round_trips_bit_for_bit(void **state)
{
    struct fixture *f = *state;
    const double values[] = {0.0,     -0.0,     1.0,     1.5,    -2.25e-300, 3.141592653589793,
                             DBL_MAX, -DBL_MAX, DBL_MIN, 5e-324, INFINITY,   -INFINITY,
                             NAN,     1e15,     -9.5e18};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        reset_in(f);
        msgpack_pack_double(&f->in_pk, values[i]);
        decode_in(f);
        assert_int_equal(lua_type(f->L, -1), LUA_TNUMBER);
        assert_false(lua_isinteger(f->L, -1)); /* 1.0 stays a float */
        double d = lua_tonumber(f->L, -1);
        assert_memory_equal(&d, &values[i], sizeof d);
        assert_round_trip(f);
        lua_pop(f->L, 1);
    }
}

static void test_float32_decodes_and_encodes_as_float64(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_float(&f->in_pk, 1.5f);
    assert_int_equal((uint8_t)f->in.data[0], 0xca);
    decode_in(f);
    assert_false(lua_isinteger(f->L, -1));
    assert_true(lua_tonumber(f->L, -1) == 1.5);
    encode_top(f);
    assert_out_hex(f, "cb 3ff8000000000000");
    lua_pop(f->L, 1);
}

/* ---- strings and binary ---- */

static void test_strings_of_every_size_round_trip_as_strings(void **state)
{
    struct fixture *f = *state;
    const size_t sizes[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 100000};
    char *text = malloc(100000);
    assert_non_null(text);
    for (size_t i = 0; i < 100000; i++)
        text[i] = (char)(i * 7 % 256); /* NULs included */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        reset_in(f);
        msgpack_pack_str_with_body(&f->in_pk, text, sizes[i]);
        decode_in(f);
        assert_int_equal(lua_type(f->L, -1), LUA_TSTRING);
        size_t len;
        const char *s = lua_tolstring(f->L, -1, &len);
        assert_int_equal(len, sizes[i]);
        assert_memory_equal(s, text, len);
        assert_round_trip(f);
        lua_pop(f->L, 1);
    }
    free(text);
}

static void test_bin_of_every_byte_value_stays_bin(void **state)
{
    struct fixture *f = *state;
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    msgpack_pack_bin_with_body(&f->in_pk, all, sizeof all);
    decode_in(f);
    assert_int_equal(lua_type(f->L, -1), LUA_TUSERDATA);
    assert_non_null(luaL_testudata(f->L, -1, CODEC_BIN_META));
    assert_int_equal(lua_rawlen(f->L, -1), 256);
    assert_memory_equal(lua_touserdata(f->L, -1), all, sizeof all);
    encode_top(f);
    assert_int_equal((uint8_t)f->out.sb.data[0], 0xc5); /* bin16, not str16 */
    assert_out_equals_in(f);
    lua_pop(f->L, 1);
}

static void test_bins_of_every_size_round_trip(void **state)
{
    struct fixture *f = *state;
    const size_t sizes[] = {0, 1, 255, 256, 65535, 65536};
    uint8_t *data = malloc(65536);
    assert_non_null(data);
    for (size_t i = 0; i < 65536; i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        reset_in(f);
        msgpack_pack_bin_with_body(&f->in_pk, data, sizes[i]);
        decode_in(f);
        assert_non_null(luaL_testudata(f->L, -1, CODEC_BIN_META));
        assert_int_equal(lua_rawlen(f->L, -1), sizes[i]);
        assert_round_trip(f);
        lua_pop(f->L, 1);
    }
    free(data);
}

static void test_bin_has_length_text_and_equality_in_lua(void **state)
{
    struct fixture *f = *state;
    put_hex(f, "93 c4 03 610062 c4 03 610062 c4 03 610063");
    decode_in(f);
    assert_lua(f, "return type(v[1]) == 'userdata' and #v[1] == 3");
    assert_lua(f, "return tostring(v[1]) == 'a\\0b'");
    assert_lua(f, "return v[1] == v[2] and v[1] ~= v[3] and rawequal(v[1], v[2]) == false");
    lua_pop(f->L, 1);
}

static void test_push_bin_makes_a_bin(void **state)
{
    struct fixture *f = *state;
    codec_push_bin(f->L, "", 0);
    encode_top(f);
    assert_out_hex(f, "c4 00");
    lua_pop(f->L, 1);
    codec_push_bin(f->L, "\x01\x02", 2);
    encode_top(f);
    assert_out_hex(f, "c4 02 0102");
    lua_pop(f->L, 1);
}

/* ---- containers ---- */

static void test_arrays_round_trip(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_array(&f->in_pk, 6);
    msgpack_pack_int(&f->in_pk, 1);
    pack_cstr(&f->in_pk, "two");
    msgpack_pack_double(&f->in_pk, 3.5);
    msgpack_pack_true(&f->in_pk);
    msgpack_pack_false(&f->in_pk);
    msgpack_pack_bin_with_body(&f->in_pk, "\xff", 1);
    decode_in(f);
    assert_int_equal(lua_type(f->L, -1), LUA_TTABLE);
    assert_int_equal(lua_rawlen(f->L, -1), 6);
    assert_lua(f, "return v[1] == 1 and v[2] == 'two' and v[3] == 3.5 and v[4] == true "
                  "and v[5] == false and tostring(v[6]) == '\\xff'");
    assert_round_trip(f);
    lua_pop(f->L, 1);

    reset_in(f);
    msgpack_pack_array(&f->in_pk, 70000); /* array32 */
    for (int i = 0; i < 70000; i++)
        msgpack_pack_int(&f->in_pk, i);
    decode_in(f);
    assert_int_equal(lua_rawlen(f->L, -1), 70000);
    assert_round_trip(f);
    lua_pop(f->L, 1);
}

static void test_single_pair_maps_round_trip(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_map(&f->in_pk, 1);
    pack_cstr(&f->in_pk, "type");
    pack_cstr(&f->in_pk, "ping");
    decode_in(f);
    assert_lua(f, "return v.type == 'ping' and getmetatable(v) == nil");
    assert_round_trip(f);
    lua_pop(f->L, 1);

    reset_in(f);
    put_hex(f, "81 d0 9c c3"); /* {-100: true} */
    decode_in(f);
    assert_lua(f, "return v[-100] == true");
    encode_top(f);
    assert_out_hex(f, "81 d0 9c c3");
    lua_pop(f->L, 1);
}

static void test_maps_with_many_keys_round_trip(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_map(&f->in_pk, 5);
    pack_cstr(&f->in_pk, "a");
    msgpack_pack_int(&f->in_pk, 1);
    pack_cstr(&f->in_pk, "b");
    pack_cstr(&f->in_pk, "x");
    msgpack_pack_int(&f->in_pk, 7);
    msgpack_pack_true(&f->in_pk);
    msgpack_pack_int(&f->in_pk, -5);
    msgpack_pack_double(&f->in_pk, 2.5);
    msgpack_pack_double(&f->in_pk, 0.5);
    msgpack_pack_nil(&f->in_pk);
    /* the nil value drops its key, as in any Lua table */
    decode_in(f);
    assert_lua(f, "return v.a == 1 and v.b == 'x' and v[7] == true and v[-5] == 2.5");
    assert_lua(f, "local n = 0 for _ in pairs(v) do n = n + 1 end return n == 4");
    lua_pop(f->L, 1);

    reset_in(f);
    msgpack_pack_map(&f->in_pk, 300); /* map16 */
    for (int i = 0; i < 300; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        pack_cstr(&f->in_pk, key);
        msgpack_pack_int(&f->in_pk, i);
    }
    decode_in(f);
    assert_lua(f, "return v.k0 == 0 and v.k299 == 299");
    encode_top(f);
    assert_out_equivalent_to_in(f);
    lua_pop(f->L, 1);
}

/* A map's header is written before its pairs are counted and rewritten after: at each size
 * where its width changes (fixmap, map16, map32), nested in a map with a pair after it. */
static void test_map_headers_at_every_width(void **state)
{
    struct fixture *f = *state;
    const size_t sizes[] = {0, 1, 15, 16, 17, 65535, 65536, 70000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        reset_in(f);
        msgpack_pack_map(&f->in_pk, 2);
        pack_cstr(&f->in_pk, "inner");
        msgpack_pack_map(&f->in_pk, sizes[s]);
        for (size_t i = 0; i < sizes[s]; i++) {
            char key[24];
            snprintf(key, sizeof key, "k%zu", i);
            pack_cstr(&f->in_pk, key);
            msgpack_pack_uint64(&f->in_pk, i);
        }
        pack_cstr(&f->in_pk, "after");
        pack_cstr(&f->in_pk, "x");
        decode_in(f);
        encode_top(f);
        lua_pop(f->L, 1);
        /* what was written decodes to the same pairs (checked in Lua: comparing the two
         * encodings pair by pair is quadratic) */
        reset_in(f);
        msgpack_sbuffer_write(&f->in, f->out.sb.data, f->out.sb.size);
        decode_in(f);
        lua_pushinteger(f->L, (lua_Integer)sizes[s]);
        lua_setglobal(f->L, "n");
        assert_lua(f, "local count = 0 "
                      "for k, x in pairs(v.inner) do "
                      "  if k ~= 'k' .. x then return false end "
                      "  count = count + 1 "
                      "end "
                      "return count == n and v.after == 'x'");
        lua_pop(f->L, 1);
    }
}

static void test_nested_values_round_trip(void **state)
{
    struct fixture *f = *state;
    msgpack_packer *pk = &f->in_pk;
    msgpack_pack_map(pk, 5);
    pack_cstr(pk, "type");
    pack_cstr(pk, "msg");
    pack_cstr(pk, "body");
    msgpack_pack_bin_with_body(pk, "\x00\x01\x02", 3);
    pack_cstr(pk, "list");
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 2);
    msgpack_pack_map(pk, 2);
    pack_cstr(pk, "k");
    msgpack_pack_true(pk);
    msgpack_pack_int(pk, 99);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_array(pk, 0);
    pack_cstr(pk, "m");
    msgpack_pack_map(pk, 0);
    pack_cstr(pk, "n");
    msgpack_pack_map(pk, 1);
    pack_cstr(pk, "x");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    pack_cstr(pk, "y");
    msgpack_pack_double(pk, -0.25);

    decode_in(f);
    assert_lua(f, "return v.list[2][2].k == true and v.list[2][2][99] == math.mininteger");
    assert_lua(f, "return getmetatable(v.list[3]) ~= nil and getmetatable(v.m) == nil");
    assert_lua(f, "return v.n.x[1].y == -0.25 and #v.body == 3");
    encode_top(f);
    assert_out_equivalent_to_in(f);
    lua_pop(f->L, 1);
}

static void test_empty_array_stays_array(void **state)
{
    struct fixture *f = *state;
    const char *inputs[] = {"90", "dc 0000", "dd 00000000"};
    for (size_t i = 0; i < 3; i++) {
        reset_in(f);
        put_hex(f, inputs[i]);
        decode_in(f);
        assert_int_equal(lua_type(f->L, -1), LUA_TTABLE);
        assert_true(lua_getmetatable(f->L, -1));
        luaL_getmetatable(f->L, CODEC_ARRAY_META);
        assert_true(lua_rawequal(f->L, -1, -2));
        lua_pop(f->L, 2);
        encode_top(f);
        assert_out_hex(f, "90");
        lua_pop(f->L, 1);
    }
}

static void test_empty_map_stays_map(void **state)
{
    struct fixture *f = *state;
    const char *inputs[] = {"80", "de 0000", "df 00000000"};
    for (size_t i = 0; i < 3; i++) {
        reset_in(f);
        put_hex(f, inputs[i]);
        decode_in(f);
        assert_int_equal(lua_type(f->L, -1), LUA_TTABLE);
        assert_false(lua_getmetatable(f->L, -1));
        encode_top(f);
        assert_out_hex(f, "80");
        lua_pop(f->L, 1);
    }
}

static void test_lua_tables_encode_as_array_only_with_keys_1_to_n(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *code, *hex;
    } cases[] = {
        {"return {}", "80"},
        {"return setmetatable({}, debug.getregistry()['moonpost.array'])", "90"},
        {"return {10, 20, 30}", "93 0a 14 1e"},
        {"return {[1] = 'a'}", "91 a161"},
        {"return {[2] = 'a'}", "81 02 a161"},
        {"return {[0] = 'a'}", "81 00 a161"},
        {"return {[1.5] = 'a'}", "81 cb 3ff8000000000000 a161"},
        {"return {[true] = 'a'}", "81 c3 a161"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        push_lua(f, cases[i].code);
        encode_top(f);
        assert_out_hex(f, cases[i].hex);
        lua_pop(f->L, 1);
    }
}

/* Tables whose keys include 1..k but are not exactly 1..n must be maps with every pair kept. */
static void test_lua_tables_with_holes_or_extra_keys_keep_every_pair(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *code;
        uint32_t pairs;
    } cases[] = {
        {"return {[1] = 1, [2] = 2, [4] = 4, x = 5}", 4},
        {"return {1, 2, nil, 4}", 3},
        {"return {1, 2, x = 3}", 3},
        {"return {1, [3] = 3}", 2},
        {"local t = {1, 2, 3, 4} t[2] = nil t.k = 1 return t", 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        push_lua(f, cases[i].code);
        encode_top(f);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&u, f->out.sb.data, f->out.sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        int is_map = u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == cases[i].pairs;
        msgpack_unpacked_destroy(&u);
        if (!is_map)
            fail_msg("%s did not encode as a map of %u pairs", cases[i].code, cases[i].pairs);
        lua_pop(f->L, 1);
    }
}

/* ---- limits ---- */

static void pack_nested_arrays(struct fixture *f, int depth)
{
    reset_in(f);
    for (int d = 1; d < depth; d++)
        msgpack_pack_array(&f->in_pk, 1);
    msgpack_pack_array(&f->in_pk, 0);
}

static void pack_nested_maps(struct fixture *f, int depth)
{
    reset_in(f);
    for (int d = 1; d < depth; d++) {
        msgpack_pack_map(&f->in_pk, 1);
        pack_cstr(&f->in_pk, "k");
    }
    msgpack_pack_map(&f->in_pk, 0);
}

static void test_decode_accepts_depth_32_and_rejects_33(void **state)
{
    struct fixture *f = *state;
    pack_nested_arrays(f, 32);
    assert_round_trip(f);
    pack_nested_maps(f, 32);
    assert_round_trip(f);
    pack_nested_arrays(f, 33);
    assert_decode_fails(f, "containers nested deeper than 32");
    pack_nested_maps(f, 33);
    assert_decode_fails(f, "containers nested deeper than 32");
}

static void test_decode_rejects_a_depth_bomb(void **state)
{
    struct fixture *f = *state;
    reset_in(f);
    for (int i = 0; i < 100000; i++)
        msgpack_pack_array(&f->in_pk, 1);
    msgpack_pack_nil(&f->in_pk);
    assert_decode_fails(f, "containers nested deeper than 32");
}

/* Pushes DEPTH nested Lua tables, the innermost empty: {{...{}...}}. */
static void push_nested_tables(struct fixture *f, int depth)
{
    char code[128];
    snprintf(code, sizeof code, "local t = {} for i = 2, %d do t = {t} end return t", depth);
    push_lua(f, code);
}

static void test_encode_accepts_depth_32_and_rejects_33(void **state)
{
    struct fixture *f = *state;
    push_nested_tables(f, 32);
    encode_top(f);
    reset_in(f);
    for (int d = 1; d < 32; d++)
        msgpack_pack_array(&f->in_pk, 1);
    msgpack_pack_map(&f->in_pk, 0);
    assert_out_equals_in(f);
    lua_pop(f->L, 1);

    push_nested_tables(f, 33);
    assert_encode_fails(f, "nested deeper than 32");
    lua_pop(f->L, 1);
}

static void test_self_referencing_tables_fail_to_encode(void **state)
{
    struct fixture *f = *state;
    const char *cycles[] = {
        "local t = {} t.self = t return t",
        "local t = {1} t[2] = t return t",
        "local a, b = {}, {} a.b = b b.a = a return {x = a}",
        "local t = {} t[t] = 1 return t",
    };
    for (size_t i = 0; i < sizeof cycles / sizeof cycles[0]; i++) {
        push_lua(f, cycles[i]);
        assert_encode_fails(f, "cycle");
        lua_pop(f->L, 1);
    }
}

static void test_huge_declared_lengths_are_rejected_without_allocating(void **state)
{
    struct fixture *f = *state;
    const char *inputs[] = {
        "db ffffffff 61",    "db 80000000",
        "c6 ffffffff 00",    "c6 80000000",
        "dd ffffffff 01 02", "df ffffffff 01 02",
        "dc ffff 01 02 03",  "de ffff 01 02",
        "91 dd ffffffff 01", "81 a161 df ffffffff 01",
        "92 01 db ffffffff", "81 db ffffffff 01",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        f->largest_alloc = 0;
        assert_hex_fails(f, inputs[i], "truncated msgpack");
        assert_true(f->largest_alloc < 4096);
    }
}

static void test_trailing_bytes_are_rejected(void **state)
{
    struct fixture *f = *state;
    const char *inputs[] = {"c0 c0", "01 02", "80 00", "a161 c0", "90 90", "c4 00 00"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
        assert_hex_fails(f, inputs[i], "trailing bytes after the value");
}

static void test_malformed_input_is_rejected(void **state)
{
    struct fixture *f = *state;
    assert_hex_fails(f, "", "truncated msgpack");
    assert_hex_fails(f, "c1", "unsupported msgpack type");
    assert_hex_fails(f, "d4 01 00", "unsupported msgpack type");
    assert_hex_fails(f, "92 01 c7 01 01 00", "unsupported msgpack type");
    const char *bad_keys[] = {"81 c0 01",       "81 cb 7ff8000000000000 01",
                              "81 90 01",       "81 80 01",
                              "81 c4 01 61 01", "81 91 01 01"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++)
        assert_hex_fails(f, bad_keys[i], "map key must be a string or a number");
}

static void test_every_truncation_is_rejected(void **state)
{
    struct fixture *f = *state;
    put_hex(f, "83 a474797065 a473656e64 a4626f6479 c4 03 010203 a46c697374 92 cd0100 "
               "81 a16b cb4004000000000000");
    decode_in(f);
    lua_pop(f->L, 1);
    size_t full = f->in.size;
    for (size_t len = 0; len < full; len++) {
        const char *err = NULL;
        int top = lua_gettop(f->L);
        assert_int_equal(codec_decode(f->L, (const uint8_t *)f->in.data, len, 0, NULL, &err),
                         CODEC_MALFORMED);
        assert_string_equal(err, "truncated msgpack");
        assert_int_equal(lua_gettop(f->L), top);
    }
}

static void test_values_lua_cannot_send_fail_to_encode(void **state)
{
    struct fixture *f = *state;
    const struct {
        const char *code, *error;
    } cases[] = {
        {"return print", "cannot encode a function"},
        {"return {f = print}", "cannot encode a function"},
        {"return {1, 2, function() end}", "cannot encode a function"},
        {"return {[print] = 1}", "cannot encode a function"},
        {"return coroutine.create(print)", "cannot encode a thread"},
        {"return io.stdout", "cannot encode a userdata"},
        {"return {out = {io.stdout}}", "cannot encode a userdata"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        push_lua(f, cases[i].code);
        assert_encode_fails(f, cases[i].error);
        lua_pop(f->L, 1);
    }
    lua_pushlightuserdata(f->L, f);
    assert_encode_fails(f, "cannot encode a userdata");
    lua_pop(f->L, 1);
}

/* ---- frames ---- */

static void test_encode_frame_writes_the_length_prefix(void **state)
{
    struct fixture *f = *state;
    struct codec_buf b;
    codec_buf_init(&b);

    push_lua(f, "return {type = 'send', body = string.rep('x', 70000), id = 7}");
    assert_int_equal(codec_encode_frame(f->L, -1, &b, f->errbuf, sizeof f->errbuf), 0);
    lua_pop(f->L, 1);
    const uint8_t *frame = (const uint8_t *)b.sb.data;
    assert_true(b.sb.size > 70000 + FRAME_HEADER_LEN);
    assert_int_equal(frame_read_length(frame), b.sb.size - FRAME_HEADER_LEN);
    assert_int_equal(frame[0], 0);
    assert_int_equal(frame[1], 0x01); /* over 65535: the second byte counts */
    uint32_t body_len;
    assert_int_equal(frame_split(frame, b.sb.size, 1 << 20, &body_len), FRAME_READY);
    assert_int_equal(body_len, b.sb.size - FRAME_HEADER_LEN);
    struct frame_info info;
    assert_int_equal(frame_check(frame + FRAME_HEADER_LEN, body_len, &info), FRAME_OK);
    assert_int_equal(info.type_len, 4);
    assert_memory_equal(info.type, "send", 4);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 7);

    /* the buffer is reused: a smaller frame replaces the first */
    push_lua(f, "return {type = 'ping'}");
    assert_int_equal(codec_encode_frame(f->L, -1, &b, f->errbuf, sizeof f->errbuf), 0);
    lua_pop(f->L, 1);
    const uint8_t ping[] = {0, 0, 0, 11, 0x81, 0xa4, 't', 'y', 'p', 'e', 0xa4, 'p', 'i', 'n', 'g'};
    assert_int_equal(b.sb.size, sizeof ping);
    assert_memory_equal(b.sb.data, ping, sizeof ping);

    lua_pushstring(f->L, "ping");
    assert_int_equal(codec_encode_frame(f->L, -1, &b, f->errbuf, sizeof f->errbuf), -1);
    assert_string_equal(f->errbuf, "a frame must be a table, got string");
    lua_pop(f->L, 1);
    push_lua(f, "return {type = 'x', f = print}");
    assert_int_equal(codec_encode_frame(f->L, -1, &b, f->errbuf, sizeof f->errbuf), -1);
    assert_string_equal(f->errbuf, "cannot encode a function");
    lua_pop(f->L, 1);
    codec_buf_free(&b);
}

/* Encodes T (Lua code returning a table) with TAIL (LEN bytes) into B: codec_encode_frame_tail's
 * result, the stack as it was. */
static int encode_with_tail(struct fixture *f, struct codec_buf *b, const char *t,
                            const uint8_t *tail, size_t len)
{
    push_lua(f, t);
    int top = lua_gettop(f->L);
    int rc = codec_encode_frame_tail(f->L, -1, tail, len, b, f->errbuf, sizeof f->errbuf);
    assert_int_equal(lua_gettop(f->L), top);
    lua_pop(f->L, 1);
    return rc;
}

static void test_frame_tail_adds_its_pairs_as_they_are(void **state)
{
    struct fixture *f = *state;
    struct codec_buf b;
    codec_buf_init(&b);
    /* the tail: {from = "al", body = bin "\x01\x02"} */
    const uint8_t tail[] = {0x82, 0xa4, 'f', 'r', 'o', 'm', 0xa2, 'a', 'l',
                            0xa4, 'b', 'o', 'd', 'y', 0xc4, 2, 1, 2};
    assert_int_equal(encode_with_tail(f, &b, "return {type = 'msg'}", tail, sizeof tail), 0);
    const uint8_t want[] = {0, 0, 0, 27, 0x83, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'm', 's', 'g',
                            0xa4, 'f', 'r', 'o', 'm', 0xa2, 'a', 'l',
                            0xa4, 'b', 'o', 'd', 'y', 0xc4, 2, 1, 2};
    assert_int_equal(b.sb.size, sizeof want);
    assert_memory_equal(b.sb.data, want, sizeof want);

    /* 10 pairs and 10 more: the header widens to map 16, and every pair is decoded back */
    msgpack_sbuffer_clear(&f->in);
    msgpack_pack_map(&f->in_pk, 10);
    for (int i = 0; i < 10; i++) {
        char key[8];
        snprintf(key, sizeof key, "t%d", i);
        pack_cstr(&f->in_pk, key);
        msgpack_pack_int(&f->in_pk, i);
    }
    assert_int_equal(encode_with_tail(f, &b,
                                      "local t = {} for i = 0, 9 do t['k' .. i] = i end return t",
                                      (const uint8_t *)f->in.data, f->in.size),
                     0);
    assert_int_equal((uint8_t)b.sb.data[FRAME_HEADER_LEN], 0xde);
    const char *err = NULL;
    assert_int_equal(codec_decode(f->L, (const uint8_t *)b.sb.data + FRAME_HEADER_LEN,
                                  b.sb.size - FRAME_HEADER_LEN, 0, NULL, &err),
                     CODEC_OK);
    assert_lua(f, "local n = 0 for _ in pairs(v) do n = n + 1 end "
                  "return n == 20 and v.k3 == 3 and v.t9 == 9 and v.t0 == 0");
    lua_pop(f->L, 1);
    codec_buf_free(&b);
}

static void test_frame_tail_that_is_not_one_whole_map_fails(void **state)
{
    struct fixture *f = *state;
    struct codec_buf b;
    codec_buf_init(&b);
    static const struct {
        const char *why;
        uint8_t bytes[8];
        size_t len;
    } bad[] = {
        {"empty", {0}, 0},
        {"an array", {0x91, 0x01}, 2},
        {"a string", {0xa1, 'x'}, 2},
        {"cut short", {0x81, 0xa1, 'a'}, 3},
        {"bytes after it", {0x80, 0x00}, 2},
        {"a reserved byte inside", {0x81, 0xa1, 'a', 0xc1}, 4},
        {"declares more than it holds", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->errbuf[0] = '\0';
        if (encode_with_tail(f, &b, "return {type = 'msg'}", bad[i].bytes, bad[i].len) != -1)
            fail_msg("a tail that is %s was taken", bad[i].why);
        assert_string_equal(f->errbuf, "the frame's tail is not one whole MessagePack map");
    }
    const uint8_t empty_map[] = {0x80};
    assert_int_equal(encode_with_tail(f, &b, "return {}", empty_map, 1), 0);
    const uint8_t want[] = {0, 0, 0, 1, 0x80};
    assert_int_equal(b.sb.size, sizeof want);
    assert_memory_equal(b.sb.data, want, sizeof want);
    codec_buf_free(&b);
}

static void test_tobytes_reads_strings_and_bins_only(void **state)
{
    struct fixture *f = *state;
    size_t len = 99;
    lua_pushlstring(f->L, "a\0b", 3);
    const char *p = codec_tobytes(f->L, -1, &len);
    assert_non_null(p);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "a\0b", 3);
    lua_pop(f->L, 1);

    codec_push_bin(f->L, "\x00\xff\x10", 3);
    p = codec_tobytes(f->L, -1, &len);
    assert_ptr_equal(p, lua_touserdata(f->L, -1));
    assert_int_equal(len, 3);
    assert_memory_equal(p, "\x00\xff\x10", 3);
    lua_pop(f->L, 1);

    lua_pushinteger(f->L, 42);
    assert_null(codec_tobytes(f->L, -1, &len));
    assert_true(lua_isinteger(f->L, -1)); /* not turned into a string */
    lua_pop(f->L, 1);
    push_lua(f, "return {}");
    assert_null(codec_tobytes(f->L, -1, &len));
    lua_pop(f->L, 1);
    push_lua(f, "return io.stdout");
    assert_null(codec_tobytes(f->L, -1, &len));
    lua_pop(f->L, 1);
    lua_pushnil(f->L);
    assert_null(codec_tobytes(f->L, -1, &len));
    lua_pop(f->L, 1);
}

/* An array of 60,000 empty maps (a 60 KB frame that would build 4 MB of tables) stops at the
 * budget: nothing pushed, and no table sized for 60,000 slots was ever allocated. */
static void test_value_budget_stops_a_table_bomb(void **state)
{
    struct fixture *f = *state;
    msgpack_pack_array(&f->in_pk, 60000);
    for (int i = 0; i < 60000; i++) msgpack_pack_map(&f->in_pk, 0);
    const char *err = NULL;
    size_t values = 0;
    int top = lua_gettop(f->L);
    f->largest_alloc = 0;
    assert_int_equal(codec_decode(f->L, (const uint8_t *)f->in.data, f->in.size, 1024, &values,
                                  &err),
                     CODEC_TOO_MANY);
    assert_int_equal(lua_gettop(f->L), top);
    assert_string_equal(err, "too many values");
    assert_true(f->largest_alloc < 1024 * 16 + 64);
    /* unbounded, it decodes: 1 array + 60,000 maps */
    assert_int_equal(codec_decode(f->L, (const uint8_t *)f->in.data, f->in.size, 0, &values, &err),
                     CODEC_OK);
    assert_int_equal(values, 60001);
    lua_pop(f->L, 1);
}

/* Every value counts one, keys included; exactly the budget fits. */
static void test_value_budget_counts_keys_and_values(void **state)
{
    struct fixture *f = *state;
    put_hex(f, "82 a474797065 a470696e67 a26964 07"); /* {type = "ping", id = 7} */
    const char *err = NULL;
    size_t values = 0;
    assert_int_equal(codec_decode(f->L, (const uint8_t *)f->in.data, f->in.size, 5, &values, &err),
                     CODEC_OK);
    assert_int_equal(values, 5);
    lua_pop(f->L, 1);
    int top = lua_gettop(f->L);
    assert_int_equal(codec_decode(f->L, (const uint8_t *)f->in.data, f->in.size, 4, &values, &err),
                     CODEC_TOO_MANY);
    assert_int_equal(lua_gettop(f->L), top);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_nil_and_booleans_round_trip),
        T(test_integers_of_every_width_round_trip),
        T(test_uint64_values_up_to_int64_max_round_trip),
        T(test_uint64_past_int64_max_wraps_as_documented),
        T(test_wide_encodings_of_small_integers_decode_to_the_value),
        T(test_float64_round_trips_bit_for_bit),
        T(test_float32_decodes_and_encodes_as_float64),
        T(test_strings_of_every_size_round_trip_as_strings),
        T(test_bin_of_every_byte_value_stays_bin),
        T(test_bins_of_every_size_round_trip),
        T(test_bin_has_length_text_and_equality_in_lua),
        T(test_push_bin_makes_a_bin),
        T(test_arrays_round_trip),
        T(test_single_pair_maps_round_trip),
        T(test_maps_with_many_keys_round_trip),
        T(test_map_headers_at_every_width),
        T(test_nested_values_round_trip),
        T(test_empty_array_stays_array),
        T(test_empty_map_stays_map),
        T(test_lua_tables_encode_as_array_only_with_keys_1_to_n),
        T(test_lua_tables_with_holes_or_extra_keys_keep_every_pair),
        T(test_decode_accepts_depth_32_and_rejects_33),
        T(test_decode_rejects_a_depth_bomb),
        T(test_encode_accepts_depth_32_and_rejects_33),
        T(test_self_referencing_tables_fail_to_encode),
        T(test_huge_declared_lengths_are_rejected_without_allocating),
        T(test_trailing_bytes_are_rejected),
        T(test_malformed_input_is_rejected),
        T(test_every_truncation_is_rejected),
        T(test_values_lua_cannot_send_fail_to_encode),
        T(test_encode_frame_writes_the_length_prefix),
        T(test_frame_tail_adds_its_pairs_as_they_are),
        T(test_frame_tail_that_is_not_one_whole_map_fails),
        T(test_tobytes_reads_strings_and_bins_only),
        T(test_value_budget_stops_a_table_bomb),
        T(test_value_budget_counts_keys_and_values),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
