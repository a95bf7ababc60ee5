/* Unit tests for wire/frame.c and wire/msgread.c: splitting a byte stream into frames and
 * validating a frame body against the rules of PROTOCOL.md without trusting it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msgread.h"

/* ---- a byte builder for hand-made MessagePack ---- */

struct bytes {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void put(struct bytes *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    if (len > 0) memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void put_byte(struct bytes *b, uint8_t byte)
{
    put(b, &byte, 1);
}

static void put_be(struct bytes *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        put_byte(b, (uint8_t)(v >> (8 * i)));
}

/* A fixstr (strings under 32 bytes are all these tests need). */
static void put_str(struct bytes *b, const char *s)
{
    size_t n = strlen(s);
    assert_true(n < 32);
    put_byte(b, (uint8_t)(0xa0 | n));
    put(b, s, n);
}

static void put_hex(struct bytes *b, const char *hex)
{
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(p, "%2x", &v), 1);
        put_byte(b, (uint8_t)v);
        p += 2;
    }
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static enum frame_error check(const struct bytes *b, struct frame_info *info)
{
    return frame_check(b->data, b->len, info);
}

static enum frame_error check_hex(const char *hex, struct frame_info *info)
{
    struct bytes b = {0};
    put_hex(&b, hex);
    enum frame_error err = frame_check(b.data, b.len, info);
    bytes_free(&b);
    return err;
}

/* Bytes currently allocated by the process: ASan's count when built with it, else glibc's. */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t allocated_bytes(void)
{
    if (__sanitizer_get_current_allocated_bytes) return __sanitizer_get_current_allocated_bytes();
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ---- frame_split ---- */

/* A stream of frames whose bodies have different sizes; body i is filled with (i + j) % 251. */
static const uint32_t stream_sizes[] = {1, 7, 300, 2, 70, 256, 5};
#define STREAM_FRAMES (sizeof stream_sizes / sizeof stream_sizes[0])

static void build_stream(struct bytes *s)
{
    for (size_t i = 0; i < STREAM_FRAMES; i++) {
        put_be(s, stream_sizes[i], 4);
        for (uint32_t j = 0; j < stream_sizes[i]; j++)
            put_byte(s, (uint8_t)((i + j) % 251));
    }
}

static void assert_body_is_frame(const uint8_t *body, uint32_t len, size_t i)
{
    assert_true(i < STREAM_FRAMES);
    assert_int_equal(len, stream_sizes[i]);
    for (uint32_t j = 0; j < len; j++)
        assert_int_equal(body[j], (i + j) % 251);
}

/* The receive loop of a connection: appends CHUNK, then takes every whole frame out. */
struct reader {
    struct bytes acc;
    size_t frames;
};

static void reader_feed(struct reader *rd, const uint8_t *chunk, size_t len)
{
    put(&rd->acc, chunk, len);
    for (;;) {
        uint32_t body_len;
        enum frame_split s = frame_split(rd->acc.data, rd->acc.len, 1024, &body_len);
        if (s == FRAME_NEED_MORE) {
            if (rd->acc.len >= FRAME_HEADER_LEN) {
                assert_int_equal(body_len, stream_sizes[rd->frames]);
                assert_true(rd->acc.len - FRAME_HEADER_LEN < body_len);
            } else {
                assert_int_equal(body_len, 0);
            }
            return;
        }
        assert_int_equal(s, FRAME_READY);
        assert_body_is_frame(rd->acc.data + FRAME_HEADER_LEN, body_len, rd->frames);
        rd->frames++;
        size_t used = FRAME_HEADER_LEN + body_len;
        memmove(rd->acc.data, rd->acc.data + used, rd->acc.len - used);
        rd->acc.len -= used;
    }
}

static void test_split_stream_in_chunks_of_every_size(void **state)
{
    (void)state;
    struct bytes s = {0};
    build_stream(&s);
    for (size_t chunk = 1; chunk <= s.len; chunk++) {
        struct reader rd = {{0}, 0};
        for (size_t off = 0; off < s.len; off += chunk) {
            size_t n = s.len - off < chunk ? s.len - off : chunk;
            reader_feed(&rd, s.data + off, n);
        }
        assert_int_equal(rd.frames, STREAM_FRAMES);
        assert_int_equal(rd.acc.len, 0);
        bytes_free(&rd.acc);
    }
    bytes_free(&s);
}

static void test_split_stream_at_every_split_point(void **state)
{
    (void)state;
    struct bytes s = {0};
    build_stream(&s);
    for (size_t at = 0; at <= s.len; at++) {
        struct reader rd = {{0}, 0};
        reader_feed(&rd, s.data, at);
        reader_feed(&rd, s.data + at, s.len - at);
        assert_int_equal(rd.frames, STREAM_FRAMES);
        assert_int_equal(rd.acc.len, 0);
        bytes_free(&rd.acc);
    }
    bytes_free(&s);
}

static void test_split_many_frames_in_one_buffer(void **state)
{
    (void)state;
    struct bytes s = {0};
    for (uint32_t i = 0; i < 1000; i++) {
        put_be(&s, i % 50 + 1, 4);
        for (uint32_t j = 0; j < i % 50 + 1; j++)
            put_byte(&s, (uint8_t)i);
    }
    size_t off = 0;
    uint32_t frames = 0;
    uint32_t body_len;
    while (frame_split(s.data + off, s.len - off, 65536, &body_len) == FRAME_READY) {
        assert_int_equal(body_len, frames % 50 + 1);
        assert_int_equal(s.data[off + FRAME_HEADER_LEN], (uint8_t)frames);
        assert_int_equal(s.data[off + FRAME_HEADER_LEN + body_len - 1], (uint8_t)frames);
        off += FRAME_HEADER_LEN + body_len;
        frames++;
    }
    assert_int_equal(frames, 1000);
    assert_int_equal(off, s.len);
    bytes_free(&s);
}

static void test_split_needs_the_whole_header(void **state)
{
    (void)state;
    const uint8_t header[4] = {0, 0, 0, 3};
    for (size_t len = 0; len < FRAME_HEADER_LEN; len++) {
        uint32_t body_len = 99;
        assert_int_equal(frame_split(header, len, 65536, &body_len), FRAME_NEED_MORE);
        assert_int_equal(body_len, 0);
    }
    uint32_t body_len = 0;
    assert_int_equal(frame_split(header, 4, 65536, &body_len), FRAME_NEED_MORE);
    assert_int_equal(body_len, 3);
}

static void test_split_zero_length_is_empty(void **state)
{
    (void)state;
    const uint8_t stream[] = {0, 0, 0, 0, 0x81, 0xa4, 't', 'y', 'p', 'e'};
    uint32_t body_len = 99;
    assert_int_equal(frame_split(stream, 4, 65536, &body_len), FRAME_EMPTY);
    assert_int_equal(body_len, 0);
    assert_int_equal(frame_split(stream, sizeof stream, 65536, &body_len), FRAME_EMPTY);
}

static void test_split_oversize_only_past_max_frame(void **state)
{
    (void)state;
    const uint32_t max_frame = 65536;
    uint8_t header[4];
    uint32_t body_len;

    frame_write_length(header, max_frame + 1);
    assert_int_equal(frame_split(header, 4, max_frame, &body_len), FRAME_OVERSIZE);
    assert_int_equal(body_len, max_frame + 1);
    frame_write_length(header, UINT32_MAX);
    assert_int_equal(frame_split(header, 4, max_frame, &body_len), FRAME_OVERSIZE);

    uint8_t *frame = calloc(1, FRAME_HEADER_LEN + max_frame);
    assert_non_null(frame);
    frame_write_length(frame, max_frame);
    assert_int_equal(frame_split(frame, 4, max_frame, &body_len), FRAME_NEED_MORE);
    assert_int_equal(body_len, max_frame);
    assert_int_equal(frame_split(frame, FRAME_HEADER_LEN + max_frame - 1, max_frame, &body_len),
                     FRAME_NEED_MORE);
    assert_int_equal(frame_split(frame, FRAME_HEADER_LEN + max_frame, max_frame, &body_len),
                     FRAME_READY);
    assert_int_equal(body_len, max_frame);
    free(frame);
}

static void test_length_prefix_is_big_endian(void **state)
{
    (void)state;
    uint8_t header[4];
    frame_write_length(header, 0x01020304);
    assert_memory_equal(header, "\x01\x02\x03\x04", 4);
    assert_int_equal(frame_read_length(header), 0x01020304);
    const uint8_t high[4] = {0xff, 0x00, 0x00, 0x80};
    assert_int_equal(frame_read_length(high), 0xff000080u);
}

/* ---- frame_check: accepted frames ---- */

static void test_check_accepts_type_and_id(void **state)
{
    (void)state;
    struct bytes b = {0};
    put_byte(&b, 0x82);
    put_str(&b, "type");
    put_str(&b, "ping");
    put_str(&b, "id");
    put_byte(&b, 0x07);
    struct frame_info info;
    assert_int_equal(check(&b, &info), FRAME_OK);
    assert_int_equal(info.type_len, 4);
    assert_memory_equal(info.type, "ping", 4);
    assert_ptr_equal(info.type, b.data + 7);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 7);
    bytes_free(&b);
}

static void test_check_without_id_has_no_id(void **state)
{
    (void)state;
    struct frame_info info;
    /* {"type": "users", "limit": 10} */
    assert_int_equal(check_hex("82 a4747970 65 a5 7573657273 a5 6c696d6974 0a", &info), FRAME_OK);
    assert_int_equal(info.has_id, 0);
    assert_int_equal(info.type_len, 5);
}

static void test_check_accepts_every_unsigned_id_width(void **state)
{
    (void)state;
    struct {
        const char *id_hex;
        uint64_t id;
    } cases[] = {
        {"00", 0},
        {"7f", 127},
        {"cc ff", 255},
        {"cd 1234", 0x1234},
        {"ce deadbeef", 0xdeadbeef},
        {"cf ffffffffffffffff", UINT64_MAX},
        {"d0 05", 5}, /* a non-negative value in a signed encoding */
        {"d3 7fffffffffffffff", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, "82 a474797065 a1 78 a26964");
        put_hex(&b, cases[i].id_hex);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_OK);
        assert_int_equal(info.has_id, 1);
        assert_true(info.id == cases[i].id);
        bytes_free(&b);
    }
}

static void test_check_ignores_unknown_keys_of_every_type(void **state)
{
    (void)state;
    struct bytes b = {0};
    put_byte(&b, 0x87);
    put_str(&b, "type");
    put_str(&b, "send");
    put_str(&b, "nil");
    put_byte(&b, 0xc0);
    put_str(&b, "bin");
    put_hex(&b, "c4 03 000102");
    put_str(&b, "f32");
    put_hex(&b, "ca 3fc00000");
    put_str(&b, "f64");
    put_hex(&b, "cb 400921fb54442d18");
    put_str(&b, "arr");
    put_hex(&b, "93 01 c3 a161");
    put_str(&b, "map");
    put_hex(&b, "82 a161 c2 a162 90");
    struct frame_info info;
    assert_int_equal(check(&b, &info), FRAME_OK);
    assert_memory_equal(info.type, "send", 4);
    bytes_free(&b);
}

static void test_check_accepts_nested_integer_keys(void **state)
{
    (void)state;
    struct frame_info info;
    /* {"type": "x", "m": {1: "a", -1: "b", 300: {"k": 2}}} */
    assert_int_equal(
        check_hex("82 a474797065 a178 a16d 83 01 a161 ff a162 cd012c 81 a16b 02", &info), FRAME_OK);
}

/* ---- frame_check: malformed bodies ---- */

static void test_check_rejects_every_truncation(void **state)
{
    (void)state;
    struct bytes b = {0};
    /* {"type": "send", "id": 300, "body": "hello", "list": [1, {"k": 2.5}]} */
    put_hex(&b, "84 a474797065 a473656e64 a26964 cd012c a4626f6479 a568656c6c6f");
    put_hex(&b, "a46c697374 92 01 81 a16b cb4004000000000000");
    struct frame_info info;
    assert_int_equal(check(&b, &info), FRAME_OK);
    for (size_t len = 0; len < b.len; len++)
        assert_int_equal(frame_check(b.data, len, &info), FRAME_TRUNCATED);
    bytes_free(&b);
}

static void test_check_rejects_a_body_that_is_not_a_map(void **state)
{
    (void)state;
    const char *bodies[] = {"91 a474797065",       "a474797065", "c0",     "c3", "00", "ff",
                            "cb 3ff0000000000000", "c4 01 80",   "dc 0000"};
    struct frame_info info;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_int_equal(check_hex(bodies[i], &info), FRAME_NOT_MAP);
}

static void test_check_rejects_trailing_bytes(void **state)
{
    (void)state;
    struct frame_info info;
    assert_int_equal(check_hex("81 a474797065 a170 c0", &info), FRAME_TRAILING);
    assert_int_equal(check_hex("81 a474797065 a170 81 a474797065 a170", &info), FRAME_TRAILING);
    assert_int_equal(check_hex("81 a474797065 a170", &info), FRAME_OK);
}

/* {"type": "x", "a": <DEPTH-1 nested arrays or maps>}: the top-level map is depth 1. */
static void build_nested(struct bytes *b, int depth, int maps)
{
    put_hex(b, "82 a474797065 a178 a161");
    for (int d = 2; d < depth; d++) {
        if (maps) {
            put_byte(b, 0x81);
            put_str(b, "k");
        } else {
            put_byte(b, 0x91);
        }
    }
    if (depth >= 2) put_byte(b, maps ? 0x80 : 0x90);
}

static void test_check_accepts_depth_32(void **state)
{
    (void)state;
    for (int maps = 0; maps <= 1; maps++) {
        struct bytes b = {0};
        build_nested(&b, 32, maps);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_OK);
        bytes_free(&b);
    }
}

static void test_check_rejects_depth_33(void **state)
{
    (void)state;
    for (int maps = 0; maps <= 1; maps++) {
        struct bytes b = {0};
        build_nested(&b, 33, maps);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_TOO_DEEP);
        bytes_free(&b);
    }
}

static void test_check_rejects_a_depth_bomb_without_recursing(void **state)
{
    (void)state;
    enum { DEEP = 100000 };
    struct bytes b = {0};
    put_hex(&b, "82 a474797065 a178 a161");
    for (int i = 0; i < DEEP; i++)
        put_byte(&b, 0x91);
    put_byte(&b, 0xc0);
    struct frame_info info;
    assert_int_equal(check(&b, &info), FRAME_TOO_DEEP);

    /* the same bomb as the whole body, and as nested one-pair maps */
    assert_int_equal(frame_check(b.data + 10, DEEP + 1, &info), FRAME_NOT_MAP);
    struct bytes m = {0};
    for (int i = 0; i < DEEP; i++)
        put_hex(&m, "81 a161");
    put_byte(&m, 0xc0);
    assert_int_equal(check(&m, &info), FRAME_TOO_DEEP);
    bytes_free(&m);
    bytes_free(&b);
}

static void test_check_rejects_a_non_string_top_level_key(void **state)
{
    (void)state;
    struct frame_info info;
    assert_int_equal(check_hex("82 a474797065 a178 01 a161", &info), FRAME_BAD_KEY);
    assert_int_equal(check_hex("82 01 a161 a474797065 a178", &info), FRAME_BAD_KEY);
    assert_int_equal(check_hex("82 a474797065 a178 c0 01", &info), FRAME_BAD_KEY);
    assert_int_equal(check_hex("82 a474797065 a178 c4 01 61 01", &info), FRAME_BAD_KEY);
    assert_int_equal(check_hex("82 a474797065 a178 90 01", &info), FRAME_BAD_KEY);
    /* a container key is skipped whole: its elements are not read as keys and values */
    assert_int_equal(check_hex("82 92 a178 a26964 05 a474797065 a174", &info), FRAME_BAD_KEY);
    assert_int_equal(info.has_id, 0);
    assert_int_equal(check_hex("82 81 a26964 07 06 a474797065 a174", &info), FRAME_BAD_KEY);
    assert_int_equal(info.has_id, 0);
}

static void test_check_rejects_nested_keys_other_than_str_and_int(void **state)
{
    (void)state;
    const char *keys[] = {"c0", "c3", "ca 3f800000", "cb 3ff0000000000000", "90", "80", "c4 01 61"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, "82 a474797065 a178 a16d 81");
        put_hex(&b, keys[i]);
        put_byte(&b, 0x01);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_BAD_KEY);
        bytes_free(&b);
    }
}

static void test_check_rejects_missing_type(void **state)
{
    (void)state;
    struct frame_info info;
    assert_int_equal(check_hex("80", &info), FRAME_NO_TYPE);
    assert_int_equal(check_hex("81 a26964 01", &info), FRAME_NO_TYPE);
    assert_int_equal(check_hex("81 a3747970 a178", &info), FRAME_NO_TYPE);     /* "typ" */
    assert_int_equal(check_hex("81 a5747970657a a178", &info), FRAME_NO_TYPE); /* "typez" */
    /* a nested `type` does not count */
    assert_int_equal(check_hex("81 a16d 81 a474797065 a178", &info), FRAME_NO_TYPE);
}

static void test_check_rejects_type_not_a_str(void **state)
{
    (void)state;
    const char *values[] = {
        "c0", "01", "c3", "c4 01 78", "91 a178", "81 a178 a178", "cb 3ff0000000000000"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, "81 a474797065");
        put_hex(&b, values[i]);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_BAD_TYPE);
        assert_null(info.type);
        bytes_free(&b);
    }
}

static void test_check_rejects_a_bad_id(void **state)
{
    (void)state;
    const char *ids[] = {
        "ff",      "e0", "d0 80", "d1 8000",     "d2 80000000",         "d3 8000000000000000",
        "a131",    "c0", "c2",    "ca 3f800000", "cb 3ff0000000000000", "90",
        "c4 01 01"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, "82 a474797065 a178 a26964");
        put_hex(&b, ids[i]);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_BAD_ID);
        assert_int_equal(info.has_id, 0);
        bytes_free(&b);
    }
}

static void test_check_reads_the_id_even_when_the_type_is_bad(void **state)
{
    (void)state;
    struct frame_info info;
    /* id before and after a bad type */
    assert_int_equal(check_hex("82 a26964 09 a474797065 05", &info), FRAME_BAD_TYPE);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 9);
    assert_int_equal(check_hex("82 a474797065 05 a26964 cd0400", &info), FRAME_BAD_TYPE);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 1024);
    /* id with no type at all, and id after a bad key */
    assert_int_equal(check_hex("81 a26964 2a", &info), FRAME_NO_TYPE);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 42);
    assert_int_equal(check_hex("83 01 02 a26964 03 a474797065 a178", &info), FRAME_BAD_KEY);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 3);
    /* an id read before the body turns out to be truncated */
    assert_int_equal(check_hex("83 a26964 04 a474797065 a178 a162 a5 6869", &info),
                     FRAME_TRUNCATED);
    assert_int_equal(info.has_id, 1);
    assert_int_equal(info.id, 4);
}

static void test_check_rejects_huge_declared_lengths_without_allocating(void **state)
{
    (void)state;
    const char *values[] = {
        "db ffffffff 61",                  /* str32 of 4 GiB - 1 */
        "db 80000000",       "da ffff 61", /* str16 */
        "d9 ff 61",                        /* str8 */
        "c6 ffffffff 61",                  /* bin32 */
        "dd ffffffff 01 02",               /* array32 of 2^32-1 elements */
        "df ffffffff 01 02",               /* map32 of 2^32-1 pairs */
        "dc ffff 01",                      /* array16 */
        "de ffff 01 02",                   /* map16 */
    };
    /* the measurement itself can fail: it sees an allocation */
    size_t before = allocated_bytes();
    void *control = malloc(1 << 20);
    assert_non_null(control);
    assert_true(allocated_bytes() >= before + (1 << 20));
    free(control);

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, "82 a474797065 a178 a161");
        put_hex(&b, values[i]);
        struct frame_info info;
        before = allocated_bytes();
        assert_int_equal(check(&b, &info), FRAME_TRUNCATED);
        assert_int_equal(allocated_bytes(), before);
        bytes_free(&b);
    }
    struct frame_info info;
    assert_int_equal(check_hex("df ffffffff a474797065 a178", &info), FRAME_TRUNCATED);
    assert_int_equal(check_hex("de 0002 a474797065 a178", &info), FRAME_TRUNCATED);
}

static void test_check_rejects_ext_types_and_the_reserved_byte(void **state)
{
    (void)state;
    const char *values[] = {"c1",
                            "d4 01 00",
                            "d5 01 0000",
                            "d6 01 00000000",
                            "d7 01 0000000000000000",
                            "d8 01 00000000000000000000000000000000",
                            "c7 01 01 00",
                            "c8 0001 01 00",
                            "c9 00000001 01 00"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, "82 a474797065 a178 a161");
        put_hex(&b, values[i]);
        struct frame_info info;
        assert_int_equal(check(&b, &info), FRAME_UNSUPPORTED);
        bytes_free(&b);
    }
    struct frame_info info;
    assert_int_equal(check_hex("c1", &info), FRAME_UNSUPPORTED);
    assert_int_equal(check_hex("d4 01 00", &info), FRAME_UNSUPPORTED);
    /* as a nested map key */
    assert_int_equal(check_hex("82 a474797065 a178 a16d 81 d401 00 01", &info), FRAME_UNSUPPORTED);
}

static void test_error_text_names_every_error(void **state)
{
    (void)state;
    for (int e = FRAME_NOT_MAP; e <= FRAME_BAD_ID; e++) {
        const char *text = frame_error_text((enum frame_error)e);
        assert_non_null(text);
        assert_string_not_equal(text, "malformed frame");
        assert_string_not_equal(text, "ok");
        for (int other = FRAME_NOT_MAP; other < e; other++)
            assert_string_not_equal(text, frame_error_text((enum frame_error)other));
    }
    assert_string_equal(frame_error_text(FRAME_OK), "ok");
}

/* ---- msgread_next ---- */

/* Reads one item from HEX; its str/bin pointer stays valid until the next call. */
static struct msgread_item next_hex(const char *hex, size_t *used)
{
    static struct bytes b;
    b.len = 0;
    put_hex(&b, hex);
    struct mpr r;
    msgread_init(&r, b.data, b.len);
    struct msgread_item item;
    memset(&item, 0xaa, sizeof item);
    assert_int_equal(msgread_next(&r, &item), MSGREAD_OK);
    if (used) *used = b.len - msgread_left(&r);
    return item;
}

static void test_mpr_reads_every_unsigned_width(void **state)
{
    (void)state;
    struct {
        const char *hex;
        uint64_t value;
        size_t size;
    } cases[] = {
        {"00", 0, 1},
        {"7f", 127, 1},
        {"cc 80", 128, 2},
        {"cc ff", 255, 2},
        {"cd 0100", 256, 3},
        {"cd ffff", 65535, 3},
        {"ce 00010000", 65536, 5},
        {"ce ffffffff", UINT32_MAX, 5},
        {"cf 0000000100000000", 1ull << 32, 9},
        {"cf 7fffffffffffffff", INT64_MAX, 9},
        {"cf 8000000000000000", 1ull << 63, 9},
        {"cf ffffffffffffffff", UINT64_MAX, 9},
        {"d0 7f", 127, 2},
        {"d1 7fff", 32767, 3},
        {"d2 7fffffff", INT32_MAX, 5},
        {"d3 7fffffffffffffff", INT64_MAX, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t used;
        struct msgread_item item = next_hex(cases[i].hex, &used);
        assert_int_equal(item.type, MSGREAD_UINT);
        assert_true(item.v.u == cases[i].value);
        assert_int_equal(used, cases[i].size);
    }
}

static void test_mpr_reads_every_signed_width(void **state)
{
    (void)state;
    struct {
        const char *hex;
        int64_t value;
        size_t size;
    } cases[] = {
        {"ff", -1, 1},
        {"e0", -32, 1},
        {"d0 ff", -1, 2},
        {"d0 80", -128, 2},
        {"d1 ff7f", -129, 3},
        {"d1 8000", -32768, 3},
        {"d2 ffff7fff", -32769, 5},
        {"d2 80000000", INT32_MIN, 5},
        {"d3 ffffffff7fffffff", (int64_t)INT32_MIN - 1, 9},
        {"d3 8000000000000000", INT64_MIN, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t used;
        struct msgread_item item = next_hex(cases[i].hex, &used);
        assert_int_equal(item.type, MSGREAD_INT);
        assert_true(item.v.i == cases[i].value);
        assert_int_equal(used, cases[i].size);
    }
}

static void test_mpr_reads_float32_and_float64(void **state)
{
    (void)state;
    struct msgread_item item = next_hex("ca 3fc00000", NULL);
    assert_int_equal(item.type, MSGREAD_FLOAT);
    assert_true(item.v.f == 1.5);
    item = next_hex("ca c2f6e979", NULL); /* -123.456f */
    assert_true(item.v.f == (double)-123.456f);
    item = next_hex("ca 7f800000", NULL);
    assert_true(isinf(item.v.f) && item.v.f > 0);
    item = next_hex("ca 80000000", NULL);
    assert_true(item.v.f == 0.0 && signbit(item.v.f));
    item = next_hex("cb 400921fb54442d18", NULL);
    assert_int_equal(item.type, MSGREAD_FLOAT);
    assert_true(item.v.f == 3.141592653589793);
    item = next_hex("cb 7fefffffffffffff", NULL);
    assert_true(item.v.f == 1.7976931348623157e308);
    item = next_hex("cb 7ff8000000000000", NULL);
    assert_true(isnan(item.v.f));
}

static void test_mpr_reads_nil_bool_str_bin_and_container_headers(void **state)
{
    (void)state;
    struct msgread_item item = next_hex("c0", NULL);
    assert_int_equal(item.type, MSGREAD_NIL);
    item = next_hex("c2", NULL);
    assert_int_equal(item.type, MSGREAD_BOOL);
    assert_int_equal(item.v.boolean, 0);
    item = next_hex("c3", NULL);
    assert_int_equal(item.v.boolean, 1);

    const char *strs[] = {"a3 616263", "d9 03 616263", "da 0003 616263", "db 00000003 616263"};
    for (size_t i = 0; i < 4; i++) {
        item = next_hex(strs[i], NULL);
        assert_int_equal(item.type, MSGREAD_STR);
        assert_int_equal(item.v.str.len, 3);
        assert_memory_equal(item.v.str.ptr, "abc", 3);
    }
    const char *bins[] = {"c4 02 00ff", "c5 0002 00ff", "c6 00000002 00ff"};
    for (size_t i = 0; i < 3; i++) {
        item = next_hex(bins[i], NULL);
        assert_int_equal(item.type, MSGREAD_BIN);
        assert_int_equal(item.v.str.len, 2);
        assert_memory_equal(item.v.str.ptr, "\x00\xff", 2);
    }
    size_t used;
    item = next_hex("a0", &used);
    assert_int_equal(item.type, MSGREAD_STR);
    assert_int_equal(item.v.str.len, 0);
    item = next_hex("92 01 02", &used);
    assert_int_equal(item.type, MSGREAD_ARRAY);
    assert_int_equal(item.v.count, 2);
    assert_int_equal(used, 1); /* a header only */
    item = next_hex("dc 0003 01 02 03", &used);
    assert_int_equal(item.v.count, 3);
    assert_int_equal(used, 3);
    item = next_hex("dd 00000001 01", &used);
    assert_int_equal(item.v.count, 1);
    item = next_hex("81 01 02", NULL);
    assert_int_equal(item.type, MSGREAD_MAP);
    assert_int_equal(item.v.count, 1);
    item = next_hex("de 0001 01 02", NULL);
    assert_int_equal(item.v.count, 1);
    item = next_hex("df 00000001 01 02", NULL);
    assert_int_equal(item.type, MSGREAD_MAP);
    assert_int_equal(item.v.count, 1);
}

static void test_mpr_rejects_truncated_headers(void **state)
{
    (void)state;
    const char *items[] = {"cc ff",
                           "cd ffff",
                           "ce ffffffff",
                           "cf 0102030405060708",
                           "d3 0102030405060708",
                           "ca 3fc00000",
                           "cb 400921fb54442d18",
                           "d9 01 61",
                           "da 0001 61",
                           "db 00000001 61",
                           "c6 00000001 61",
                           "dc 0001 01",
                           "dd 00000001 01",
                           "df 00000001 01 01"};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        struct bytes b = {0};
        put_hex(&b, items[i]);
        for (size_t len = 0; len < b.len; len++) {
            struct mpr r;
            struct msgread_item item;
            msgread_init(&r, b.data, len);
            assert_int_equal(msgread_next(&r, &item), MSGREAD_TRUNCATED);
        }
        bytes_free(&b);
    }
}

static void test_mpr_skip_stops_at_max_depth(void **state)
{
    (void)state;
    struct bytes b = {0};
    put_hex(&b, "91 91 91 c0");
    struct mpr r;
    msgread_init(&r, b.data, b.len);
    assert_int_equal(msgread_skip(&r, 3), MSGREAD_OK);
    assert_int_equal(msgread_left(&r), 0);
    msgread_init(&r, b.data, b.len);
    assert_int_equal(msgread_skip(&r, 2), MSGREAD_TOO_DEEP);
    bytes_free(&b);
}

/* ---- frame_get ---- */

static void test_get_finds_top_level_keys(void **state)
{
    (void)state;
    struct bytes b = {0};
    /* {"list": [1, {"id": 5}], "type": "send", "typ": 1, "id": 77, "to": "bob", "m": {}} */
    put_hex(&b, "86 a46c697374 92 01 81 a26964 05 a474797065 a473656e64 a3747970 01");
    put_hex(&b, "a26964 4d a2746f a3626f62 a16d 80");
    struct frame_info info;
    assert_int_equal(check(&b, &info), FRAME_OK);

    struct msgread_item item;
    assert_int_equal(frame_get(b.data, b.len, "type", &item), 1);
    assert_int_equal(item.type, MSGREAD_STR);
    assert_int_equal(item.v.str.len, 4);
    assert_memory_equal(item.v.str.ptr, "send", 4);
    assert_int_equal(frame_get(b.data, b.len, "typ", &item), 1);
    assert_int_equal(item.type, MSGREAD_UINT);
    assert_int_equal(item.v.u, 1);
    assert_int_equal(frame_get(b.data, b.len, "id", &item), 1); /* the top-level one */
    assert_int_equal(item.v.u, 77);
    assert_int_equal(frame_get(b.data, b.len, "to", &item), 1);
    assert_memory_equal(item.v.str.ptr, "bob", 3);
    assert_int_equal(frame_get(b.data, b.len, "list", &item), 1);
    assert_int_equal(item.type, MSGREAD_ARRAY);
    assert_int_equal(item.v.count, 2);
    assert_int_equal(frame_get(b.data, b.len, "m", &item), 1);
    assert_int_equal(item.type, MSGREAD_MAP);
    assert_int_equal(item.v.count, 0);
    assert_int_equal(frame_get(b.data, b.len, "body", &item), 0);
    assert_int_equal(frame_get(b.data, b.len, "", &item), 0);
    assert_int_equal(frame_get(b.data, b.len, "types", &item), 0);
    bytes_free(&b);
}

static void test_get_takes_the_last_of_repeated_keys_like_check(void **state)
{
    (void)state;
    struct bytes b = {0};
    /* {"type": "admin.kick", "id": 1, "user": "a", "type": "ping", "user": "b", "id": 2} */
    put_hex(&b, "86 a474797065 aa 61646d696e2e6b69636b a26964 01 a475736572 a161");
    put_hex(&b, "a474797065 a470696e67 a475736572 a162 a26964 02");
    struct frame_info info;
    assert_int_equal(check(&b, &info), FRAME_OK);
    assert_int_equal(info.type_len, 4);
    assert_memory_equal(info.type, "ping", 4);
    assert_int_equal(info.id, 2);

    struct msgread_item item;
    assert_int_equal(frame_get(b.data, b.len, "type", &item), 1);
    assert_ptr_equal(item.v.str.ptr, info.type);
    assert_int_equal(frame_get(b.data, b.len, "id", &item), 1);
    assert_int_equal(item.v.u, 2);
    assert_int_equal(frame_get(b.data, b.len, "user", &item), 1);
    assert_int_equal(item.v.str.len, 1);
    assert_memory_equal(item.v.str.ptr, "b", 1);
    bytes_free(&b);
}

static void test_get_fails_safely_on_bodies_check_would_refuse(void **state)
{
    (void)state;
    struct bytes b = {0};
    struct msgread_item item;
    put_hex(&b, "91 a474797065");
    assert_int_equal(frame_get(b.data, b.len, "type", &item), 0);
    b.len = 0;
    put_hex(&b, "82 a161 dd ffffffff a474797065 a178");
    assert_int_equal(frame_get(b.data, b.len, "type", &item), 0);
    b.len = 0;
    put_hex(&b, "82 a161");
    for (int i = 0; i < 1000; i++)
        put_byte(&b, 0x91);
    put_hex(&b, "c0 a474797065 a178");
    assert_int_equal(frame_get(b.data, b.len, "type", &item), 0);
    bytes_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_stream_in_chunks_of_every_size),
        cmocka_unit_test(test_split_stream_at_every_split_point),
        cmocka_unit_test(test_split_many_frames_in_one_buffer),
        cmocka_unit_test(test_split_needs_the_whole_header),
        cmocka_unit_test(test_split_zero_length_is_empty),
        cmocka_unit_test(test_split_oversize_only_past_max_frame),
        cmocka_unit_test(test_length_prefix_is_big_endian),
        cmocka_unit_test(test_check_accepts_type_and_id),
        cmocka_unit_test(test_check_without_id_has_no_id),
        cmocka_unit_test(test_check_accepts_every_unsigned_id_width),
        cmocka_unit_test(test_check_ignores_unknown_keys_of_every_type),
        cmocka_unit_test(test_check_accepts_nested_integer_keys),
        cmocka_unit_test(test_check_rejects_every_truncation),
        cmocka_unit_test(test_check_rejects_a_body_that_is_not_a_map),
        cmocka_unit_test(test_check_rejects_trailing_bytes),
        cmocka_unit_test(test_check_accepts_depth_32),
        cmocka_unit_test(test_check_rejects_depth_33),
        cmocka_unit_test(test_check_rejects_a_depth_bomb_without_recursing),
        cmocka_unit_test(test_check_rejects_a_non_string_top_level_key),
        cmocka_unit_test(test_check_rejects_nested_keys_other_than_str_and_int),
        cmocka_unit_test(test_check_rejects_missing_type),
        cmocka_unit_test(test_check_rejects_type_not_a_str),
        cmocka_unit_test(test_check_rejects_a_bad_id),
        cmocka_unit_test(test_check_reads_the_id_even_when_the_type_is_bad),
        cmocka_unit_test(test_check_rejects_huge_declared_lengths_without_allocating),
        cmocka_unit_test(test_check_rejects_ext_types_and_the_reserved_byte),
        cmocka_unit_test(test_error_text_names_every_error),
        cmocka_unit_test(test_mpr_reads_every_unsigned_width),
        cmocka_unit_test(test_mpr_reads_every_signed_width),
        cmocka_unit_test(test_mpr_reads_float32_and_float64),
        cmocka_unit_test(test_mpr_reads_nil_bool_str_bin_and_container_headers),
        cmocka_unit_test(test_mpr_rejects_truncated_headers),
        cmocka_unit_test(test_mpr_skip_stops_at_max_depth),
        cmocka_unit_test(test_get_finds_top_level_keys),
        cmocka_unit_test(test_get_takes_the_last_of_repeated_keys_like_check),
        cmocka_unit_test(test_get_fails_safely_on_bodies_check_would_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
