/* Unit tests for the plugin API's own types: the mp_writer (broker/plugin_writer.c), the
 * conversion of hiredis replies to mp_redis_reply (broker/plugin_redis.c), reading values with
 * mp_reader (broker/plugin_value.c) and the timers (broker/plugin_timer.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "codec.h"
#include "plugin_redis_reply.h"
#include "plugin_timer.h"
#include "plugin_value.h"
#include "plugin_writer.h"

/* ---- the writer ---- */

static void assert_written(mp_writer *w, const char *expected, size_t len)
{
    size_t n;
    const void *data = plugin_writer_data(w, &n);
    assert_int_equal(n, len);
    assert_memory_equal(data, expected, len);
}

static void test_writer_scalars(void **unused)
{
    (void)unused;
    mp_writer *w = plugin_writer_new();
    assert_non_null(w);
    size_t n;
    plugin_writer_data(w, &n);
    assert_int_equal(n, 0);
    plugin_write_nil(w);
    plugin_write_bool(w, 1);
    plugin_write_bool(w, 0);
    plugin_write_bool(w, 42); /* any non-zero is true */
    plugin_write_uint(w, 5);
    plugin_write_uint(w, 200);
    plugin_write_uint(w, UINT64_MAX);
    plugin_write_int(w, -1);
    plugin_write_int(w, -200);
    plugin_write_int(w, 7); /* a non-negative int is written as the smallest uint */
    plugin_write_float(w, 1.5);
    static const char expected[] = "\xc0\xc3\xc2\xc3\x05\xcc\xc8"
                                   "\xcf\xff\xff\xff\xff\xff\xff\xff\xff"
                                   "\xff\xd1\xff\x38\x07"
                                   "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00";
    assert_written(w, expected, sizeof expected - 1);
    plugin_writer_reset(w);
    plugin_writer_data(w, &n);
    assert_int_equal(n, 0);
    plugin_writer_free(w);
    plugin_writer_free(NULL);
}

static void test_writer_containers_and_bytes(void **unused)
{
    (void)unused;
    mp_writer *w = plugin_writer_new();
    plugin_write_map(w, 2);
    plugin_write_str(w, "a", 1);
    plugin_write_array(w, 2);
    plugin_write_str(w, "", 0);
    plugin_write_bin(w, "\x00\xff", 2);
    plugin_write_str(w, "b\0c", 3); /* lengths, not NUL-terminated */
    plugin_write_map(w, 0);
    static const char expected[] = "\x82\xa1\x61\x92\xa0\xc4\x02\x00\xff\xa3\x62\x00\x63\x80";
    assert_written(w, expected, sizeof expected - 1);
    plugin_writer_reset(w);
    char big[300];
    memset(big, 'x', sizeof big);
    plugin_write_str(w, big, sizeof big);
    plugin_write_array(w, 70000);
    size_t n;
    const uint8_t *data = plugin_writer_data(w, &n);
    assert_int_equal(n, 3 + sizeof big + 5);
    assert_int_equal(data[0], 0xda);              /* str 16 */
    assert_int_equal(data[3 + sizeof big], 0xdd); /* array 32 */
    plugin_writer_free(w);
}

/* A writer of the loader's kind: a frame with its length prefix. */
static void test_writer_in_a_frame(void **unused)
{
    (void)unused;
    mp_writer w;
    codec_buf_init(&w.buf);
    codec_frame_begin(&w.buf);
    plugin_write_map(&w, 1);
    plugin_write_str(&w, "type", 4);
    plugin_write_str(&w, "x", 1);
    size_t len = codec_frame_end(&w.buf);
    static const char expected[] = "\x00\x00\x00\x08\x81\xa4type\xa1x";
    assert_int_equal(len, sizeof expected - 1);
    assert_memory_equal(w.buf.sb.data, expected, len);
    codec_buf_free(&w.buf);
}

/* ---- Redis replies ---- */

static redisReply scalar(int type, long long integer, const char *str)
{
    redisReply r;
    memset(&r, 0, sizeof r);
    r.type = type;
    r.integer = integer;
    if (str != NULL) {
        r.str = (char *)str;
        r.len = strlen(str);
    }
    return r;
}

static void test_redis_scalars(void **unused)
{
    (void)unused;
    struct {
        redisReply r;
        mp_redis_type type;
    } cases[] = {
        {scalar(REDIS_REPLY_STRING, 0, "bulk"), MP_REDIS_STRING},
        {scalar(REDIS_REPLY_STATUS, 0, "OK"), MP_REDIS_STATUS},
        {scalar(REDIS_REPLY_ERROR, 0, "ERR no"), MP_REDIS_ERROR},
        {scalar(REDIS_REPLY_INTEGER, -507, NULL), MP_REDIS_INTEGER},
        {scalar(REDIS_REPLY_NIL, 0, NULL), MP_REDIS_NIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const redisReply *r = &cases[i].r;
        assert_int_equal(plugin_redis_nodes(r), 1);
        mp_redis_reply out;
        memset(&out, 0xab, sizeof out);
        plugin_redis_convert(r, &out);
        assert_int_equal(out.type, cases[i].type);
        assert_int_equal(out.count, 0);
        assert_null(out.elements);
        if (r->str != NULL) {
            assert_ptr_equal(out.str, r->str); /* not copied */
            assert_int_equal(out.len, r->len);
        } else {
            assert_null(out.str);
        }
        assert_int_equal(out.integer, r->type == REDIS_REPLY_INTEGER ? -507 : 0);
    }
}

static void test_redis_nested_arrays(void **unused)
{
    (void)unused;
    /* [ "a", [1, [], nil], 2 ] */
    redisReply a = scalar(REDIS_REPLY_STRING, 0, "a"), one = scalar(REDIS_REPLY_INTEGER, 1, NULL);
    redisReply nil = scalar(REDIS_REPLY_NIL, 0, NULL), two = scalar(REDIS_REPLY_INTEGER, 2, NULL);
    redisReply empty = scalar(REDIS_REPLY_ARRAY, 0, NULL);
    redisReply *inner_items[] = {&one, &empty, &nil};
    redisReply inner = scalar(REDIS_REPLY_ARRAY, 0, NULL);
    inner.elements = 3;
    inner.element = inner_items;
    redisReply *top_items[] = {&a, &inner, &two};
    redisReply top = scalar(REDIS_REPLY_ARRAY, 0, NULL);
    top.elements = 3;
    top.element = top_items;

    size_t n = plugin_redis_nodes(&top);
    assert_int_equal(n, 7);
    mp_redis_reply *nodes = calloc(n, sizeof *nodes);
    plugin_redis_convert(&top, nodes);
    const mp_redis_reply *t = &nodes[0];
    assert_int_equal(t->type, MP_REDIS_ARRAY);
    assert_int_equal(t->count, 3);
    assert_int_equal(t->elements[0].type, MP_REDIS_STRING);
    assert_string_equal(t->elements[0].str, "a");
    const mp_redis_reply *in = &t->elements[1];
    assert_int_equal(in->type, MP_REDIS_ARRAY);
    assert_int_equal(in->count, 3);
    assert_int_equal(in->elements[0].integer, 1);
    assert_int_equal(in->elements[1].type, MP_REDIS_ARRAY);
    assert_int_equal(in->elements[1].count, 0);
    assert_int_equal(in->elements[2].type, MP_REDIS_NIL);
    assert_int_equal(t->elements[2].integer, 2);
    /* every node lies inside the one block */
    for (size_t i = 0; i < 3; i++) {
        assert_true(&t->elements[i] > nodes && &t->elements[i] < nodes + n);
        assert_true(&in->elements[i] > nodes && &in->elements[i] < nodes + n);
    }
    free(nodes);
}

/* ---- reading values ---- */

static void test_read_nested(void **unused)
{
    (void)unused;
    /* [1, {"k": [true, -3]}, "s"], then nil */
    static const uint8_t data[] = {0x93, 0x01, 0x81, 0xa1, 'k', 0x92, 0xc3, 0xfd, 0xa1, 's', 0xc0};
    mp_reader r = {data, data + sizeof data};
    mp_value v, e, k, inner, x;
    assert_true(plugin_value_read(&r, &v));
    assert_int_equal(v.type, MP_ARRAY);
    assert_int_equal(v.v.count, 3);
    assert_ptr_equal(r.pos, data + 10); /* past the whole array */
    assert_true(plugin_value_read(&v.items, &e));
    assert_int_equal(e.type, MP_UINT);
    assert_int_equal(e.v.u, 1);
    assert_true(plugin_value_read(&v.items, &e));
    assert_int_equal(e.type, MP_MAP);
    assert_int_equal(e.v.count, 1);
    assert_true(plugin_value_read(&e.items, &k));
    assert_int_equal(k.type, MP_STR);
    assert_memory_equal(k.v.str.ptr, "k", 1);
    assert_true(plugin_value_read(&e.items, &inner));
    assert_int_equal(inner.type, MP_ARRAY);
    assert_true(plugin_value_read(&inner.items, &x));
    assert_int_equal(x.type, MP_BOOL);
    assert_true(x.v.boolean);
    assert_true(plugin_value_read(&inner.items, &x));
    assert_int_equal(x.type, MP_INT);
    assert_int_equal(x.v.i, -3);
    assert_false(plugin_value_read(&inner.items, &x)); /* the inner array's end */
    assert_false(plugin_value_read(&e.items, &x));
    assert_true(plugin_value_read(&v.items, &e));
    assert_int_equal(e.type, MP_STR);
    assert_false(plugin_value_read(&v.items, &e));
    assert_true(plugin_value_read(&r, &v));
    assert_int_equal(v.type, MP_NIL);
    assert_null(v.items.pos);
    assert_false(plugin_value_read(&r, &v));
}

static void test_read_refuses_bad_data(void **unused)
{
    (void)unused;
    static const uint8_t truncated[] = {0x92, 0x01}; /* an array of 2 with 1 element */
    mp_reader r = {truncated, truncated + sizeof truncated};
    mp_value v;
    assert_false(plugin_value_read(&r, &v));
    assert_ptr_equal(r.pos, r.end);
    static const uint8_t short_str[] = {0xa5, 'a'};
    r = (mp_reader){short_str, short_str + sizeof short_str};
    assert_false(plugin_value_read(&r, &v));
    uint8_t deep[PLUGIN_VALUE_MAX_DEPTH + 3];
    memset(deep, 0x91, sizeof deep - 1); /* arrays of one array ... */
    deep[sizeof deep - 1] = 0xc0;
    r = (mp_reader){deep, deep + sizeof deep};
    assert_false(plugin_value_read(&r, &v));
    mp_reader empty = {NULL, NULL};
    assert_false(plugin_value_read(&empty, &v));
}

static void test_field(void **unused)
{
    (void)unused;
    /* {"type": "t", "a": 1, "m": {"x": 2}, "a": [3]}: a repeated key's last value wins */
    static const uint8_t body[] = {0x84, 0xa4, 't',  'y',  'p', 'e',  0xa1, 't', 0xa1, 'a', 0x01,
                                   0xa1, 'm',  0x81, 0xa1, 'x', 0x02, 0xa1, 'a', 0x91, 0x03};
    mp_value v, e;
    assert_true(plugin_value_field(body, sizeof body, "a", &v));
    assert_int_equal(v.type, MP_ARRAY);
    assert_true(plugin_value_read(&v.items, &e));
    assert_int_equal(e.v.u, 3);
    assert_true(plugin_value_field(body, sizeof body, "m", &v));
    assert_int_equal(v.type, MP_MAP);
    assert_ptr_equal(v.items.end, body + 17);
    assert_false(plugin_value_field(body, sizeof body, "x", &v)); /* not top-level */
    assert_false(plugin_value_field(body, sizeof body, "", &v));
    assert_false(plugin_value_field(NULL, 0, "a", &v));
    static const uint8_t not_a_map[] = {0x91, 0x01};
    assert_false(plugin_value_field(not_a_map, sizeof not_a_map, "a", &v));
}

/* ---- timers ---- */

struct timer_counts {
    int once, every, self, never;
    mp_timer self_id;
};

static void count_once(void *state, void *arg)
{
    (void)arg;
    ((struct timer_counts *)state)->once++;
}

static void count_every(void *state, void *arg)
{
    struct timer_counts *c = state;
    c->every++;
    if (c->every == 5) event_base_loopbreak(arg);
}

static void count_self(void *state, void *arg)
{
    (void)arg;
    struct timer_counts *c = state;
    if (++c->self == 2) plugin_timer_cancel(c, c->self_id);
}

static void count_never(void *state, void *arg)
{
    (void)arg;
    ((struct timer_counts *)state)->never++;
}

static void test_timers(void **unused)
{
    (void)unused;
    struct event_base *base = event_base_new();
    struct timer_counts counts = {0};
    void *state = &counts;
    const int owner = 0, other = 0;
    assert_int_not_equal(plugin_timer_start(base, &owner, &state, 0, 0, count_once, NULL), 0);
    assert_int_not_equal(plugin_timer_start(base, &owner, &state, 1, 1, count_every, base), 0);
    counts.self_id = plugin_timer_start(base, &counts, &state, 0, 1, count_self, NULL);
    mp_timer never = plugin_timer_start(base, &owner, &state, 0, 1, count_never, NULL);
    plugin_timer_cancel(&other, never); /* another owner's cancel does nothing */
    plugin_timer_cancel(&owner, never);
    plugin_timer_cancel(&owner, never); /* twice: nothing */
    plugin_timer_cancel(&owner, 0);
    event_base_dispatch(base);
    assert_int_equal(counts.every, 5);
    assert_int_equal(counts.once, 1);
    assert_int_equal(counts.self, 2);
    assert_int_equal(counts.never, 0);
    plugin_timer_stop_all();
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_scalars),
        cmocka_unit_test(test_writer_containers_and_bytes),
        cmocka_unit_test(test_writer_in_a_frame),
        cmocka_unit_test(test_redis_scalars),
        cmocka_unit_test(test_redis_nested_arrays),
        cmocka_unit_test(test_read_nested),
        cmocka_unit_test(test_read_refuses_bad_data),
        cmocka_unit_test(test_field),
        cmocka_unit_test(test_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
