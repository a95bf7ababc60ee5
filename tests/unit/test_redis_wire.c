/* Commands formatted into a reused buffer (redis_format) and replies built in an arena
 * (redis_reply_arena): each checked against hiredis's own formatting and reply objects. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "redis_format.h"
#include "redis_reply_arena.h"

/* ---- formatting ---- */

static void assert_formats_like_hiredis(struct redis_format_buf *buf, int argc,
                                        const char **argv, const size_t *lens)
{
    char *expected = NULL;
    int expected_len = redisFormatCommandArgv(&expected, argc, argv, lens);
    assert_true(expected_len > 0);
    long len = redis_format_argv(buf, argc, argv, lens);
    assert_int_equal(len, expected_len);
    assert_memory_equal(buf->data, expected, (size_t)len);
    free(expected);
}

static void test_commands_format_like_hiredis(void **state)
{
    (void)state;
    struct redis_format_buf buf = {0};
    const char *set[] = {"SET", "key", "value"};
    size_t set_lens[] = {3, 3, 5};
    assert_formats_like_hiredis(&buf, 3, set, set_lens);

    /* empty words, binary bytes, a word of 0 bytes at the end */
    const char *odd[] = {"FCALL", "", "a\r\nb\0c", ""};
    size_t odd_lens[] = {5, 0, 6, 0};
    assert_formats_like_hiredis(&buf, 4, odd, odd_lens);

    /* many words, and one long enough to grow the buffer several times: lengths of 1 to 6
     * digits */
    enum { WORDS = 300 };
    const char *many[WORDS];
    size_t many_lens[WORDS];
    char *big = malloc(200000);
    assert_non_null(big);
    memset(big, 'x', 200000);
    for (int i = 0; i < WORDS; i++) {
        many[i] = big;
        many_lens[i] = (size_t)(i * 37) % 1000;
    }
    many_lens[WORDS - 1] = 200000;
    assert_formats_like_hiredis(&buf, WORDS, many, many_lens);

    /* reused: a short command after the long one is the short command only */
    assert_formats_like_hiredis(&buf, 3, set, set_lens);
    free(big);
    redis_format_free(&buf);
    assert_null(buf.data);
}

static void test_no_words_is_an_empty_array(void **state)
{
    (void)state;
    struct redis_format_buf buf = {0};
    assert_int_equal(redis_format_argv(&buf, 0, NULL, NULL), 4);
    assert_memory_equal(buf.data, "*0\r\n", 4);
    assert_int_equal(redis_format_argv(&buf, -1, NULL, NULL), -1);
    redis_format_free(&buf);
}

static void test_integers_print_as_printf_does(void **state)
{
    (void)state;
    const long long values[] = {0, 1, -1, 9, 10, -10, 1000000007LL, 1796289531456LL,
                                LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char expected[32], got[REDIS_INTEGER_TEXT_MAX];
        int n = snprintf(expected, sizeof expected, "%lld", values[i]);
        size_t len = redis_format_integer(got, values[i]);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(got, expected, len);
    }
}

/* ---- replies ---- */

static void assert_same_reply(const redisReply *a, const redisReply *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->integer, b->integer);
    assert_int_equal(a->len, b->len);
    if (a->str == NULL) {
        assert_null(b->str);
    } else {
        assert_non_null(b->str);
        assert_memory_equal(a->str, b->str, a->len + 1); /* with the terminating 0 */
    }
    assert_int_equal(a->elements, b->elements);
    for (size_t i = 0; i < a->elements; i++) assert_same_reply(a->element[i], b->element[i]);
}

/* Reads every reply of WIRE (fed in pieces of STEP bytes) with hiredis's functions and with the
 * arena: the same replies; returns how many. */
static int assert_reads_like_hiredis(const char *wire, size_t len, size_t step)
{
    redisReader *plain = redisReaderCreate();
    redisReader *in_arena = redisReaderCreate();
    struct reply_arena arena = {0};
    reply_arena_attach(&arena, in_arena);
    int replies = 0;
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        assert_int_equal(redisReaderFeed(plain, wire + at, n), REDIS_OK);
        assert_int_equal(redisReaderFeed(in_arena, wire + at, n), REDIS_OK);
        for (;;) {
            void *expected = NULL, *got = NULL;
            assert_int_equal(redisReaderGetReply(plain, &expected), REDIS_OK);
            assert_int_equal(redisReaderGetReply(in_arena, &got), REDIS_OK);
            if (expected == NULL) {
                assert_null(got);
                break;
            }
            assert_non_null(got);
            assert_same_reply(expected, got);
            freeReplyObject(expected);
            in_arena->fn->freeObject(got);
            replies++;
        }
    }
    redisReaderFree(plain);
    redisReaderFree(in_arena); /* may free a reply it was still building */
    reply_arena_free(&arena);
    return replies;
}

static void test_replies_read_like_hiredis(void **state)
{
    (void)state;
    static const char wire[] = "+OK\r\n"
                               ":-42\r\n"
                               "$5\r\nhello\r\n"
                               "$0\r\n\r\n"
                               "$-1\r\n"
                               "*-1\r\n"
                               "*0\r\n"
                               "-ERR no such function\r\n"
                               "*3\r\n:7\r\n:6\r\n$5\r\nnodeA\r\n"
                               "*2\r\n*2\r\n$1\r\na\r\n$-1\r\n*1\r\n*1\r\n:1\r\n";
    for (size_t step = 1; step <= sizeof wire; step++)
        assert_int_equal(assert_reads_like_hiredis(wire, sizeof wire - 1, step), 10);
}

static void test_large_replies_and_reuse(void **state)
{
    (void)state;
    /* a reply of 200 strings of 1,000 bytes (more than one block), then one past a block on
     * its own, then small ones that reuse the first block */
    size_t cap = 400000, len = 0;
    char *wire = malloc(cap);
    assert_non_null(wire);
    len += (size_t)snprintf(wire + len, cap - len, "*200\r\n");
    for (int i = 0; i < 200; i++) {
        len += (size_t)snprintf(wire + len, cap - len, "$1000\r\n");
        memset(wire + len, 'a' + i % 26, 1000);
        len += 1000;
        len += (size_t)snprintf(wire + len, cap - len, "\r\n");
    }
    len += (size_t)snprintf(wire + len, cap - len, "$100000\r\n");
    memset(wire + len, 'z', 100000);
    len += 100000;
    len += (size_t)snprintf(wire + len, cap - len, "\r\n");
    for (int i = 0; i < 50; i++) len += (size_t)snprintf(wire + len, cap - len, ":%d\r\n", i);
    assert_int_equal(assert_reads_like_hiredis(wire, len, len), 52);
    assert_int_equal(assert_reads_like_hiredis(wire, len, 4096), 52);
    /* cut off in the middle of the big array: the reader frees the part it built */
    assert_int_equal(assert_reads_like_hiredis(wire, 50000, 50000), 0);
    free(wire);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_format_like_hiredis),
        cmocka_unit_test(test_no_words_is_an_empty_array),
        cmocka_unit_test(test_integers_print_as_printf_does),
        cmocka_unit_test(test_replies_read_like_hiredis),
        cmocka_unit_test(test_large_replies_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
