/* chain_pool: libevent's chains of 1 to 8 KiB are kept when a buffer empties and serve the next
 * buffer; the pool never holds more than CHAIN_POOL_BYTES, and the trim empties it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "chain_pool.h"

static const char frame[110] = "a frame of a broadcast, as a session's output holds it";

/* A new buffer holding LEN bytes of DATA. */
static struct evbuffer *buffer_holding(const void *data, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    assert_int_equal(evbuffer_add(out, data, len), 0);
    return out;
}

static int install(void **state)
{
    (void)state;
    chain_pool_install();
    return 0;
}

/* The block of the chain a drained buffer gave back is the one the next buffer writes into. */
static void test_a_drained_chain_serves_the_next_buffer(void **state)
{
    (void)state;
    chain_pool_trim();
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    size_t before = chain_pool_count();
    assert_int_equal(evbuffer_add(out, frame, sizeof frame), 0);
    unsigned char *first = evbuffer_pullup(out, -1);
    assert_int_equal(evbuffer_drain(out, sizeof frame), 0);
    assert_int_equal(chain_pool_count(), before + 1);

    assert_int_equal(evbuffer_add(out, frame, sizeof frame), 0);
    assert_int_equal(chain_pool_count(), before);
    assert_ptr_equal(evbuffer_pullup(out, -1), first);
    assert_memory_equal(first, frame, sizeof frame);
    evbuffer_free(out);
    chain_pool_trim();
    assert_int_equal(chain_pool_count(), 0);
}

/* A burst to more buffers than the pool keeps leaves CHAIN_POOL_BYTES of blocks, not one more. */
static void test_the_pool_is_bounded(void **state)
{
    (void)state;
    chain_pool_trim();
    size_t n = CHAIN_POOL_BYTES / 1024 + 100;
    struct evbuffer **bufs = calloc(n, sizeof *bufs);
    assert_non_null(bufs);
    for (size_t i = 0; i < n; i++) bufs[i] = buffer_holding(frame, sizeof frame);
    for (size_t i = 0; i < n; i++) evbuffer_free(bufs[i]);
    free(bufs);
    assert_int_equal(chain_pool_bytes(), CHAIN_POOL_BYTES);
    assert_int_equal(chain_pool_count(), CHAIN_POOL_BYTES / 1024);
    chain_pool_trim();
    assert_int_equal(chain_pool_count(), 0);
    assert_int_equal(chain_pool_bytes(), 0);
}

/* A frame of 3,000 bytes takes a 4 KiB chain, and a second one a chain of its own: both are
 * kept, and the next buffer's first 3,000 bytes go into a kept block. */
static void test_larger_chains_up_to_8_kib_are_kept(void **state)
{
    (void)state;
    chain_pool_trim();
    static char big[3000];
    memset(big, 'y', sizeof big);
    struct evbuffer *out = buffer_holding(big, sizeof big);
    assert_int_equal(evbuffer_add(out, big, sizeof big), 0);
    assert_int_equal(evbuffer_drain(out, 2 * sizeof big), 0);
    assert_int_equal(chain_pool_count(), 2);
    size_t kept = chain_pool_bytes();
    assert_true(kept >= 4096 + 4096 && kept <= 4096 + 8192);

    assert_int_equal(evbuffer_add(out, big, sizeof big), 0);
    assert_int_equal(chain_pool_count(), 1);
    assert_memory_equal(evbuffer_pullup(out, -1), big, sizeof big);
    evbuffer_free(out);
    chain_pool_trim();
}

/* A chain above 8 KiB goes back to malloc. */
static void test_chains_above_8_kib_are_not_kept(void **state)
{
    (void)state;
    chain_pool_trim();
    static char huge[20000];
    memset(huge, 'x', sizeof huge);
    evbuffer_free(buffer_holding(huge, sizeof huge));
    assert_int_equal(chain_pool_count(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_drained_chain_serves_the_next_buffer),
        cmocka_unit_test(test_the_pool_is_bounded),
        cmocka_unit_test(test_larger_chains_up_to_8_kib_are_kept),
        cmocka_unit_test(test_chains_above_8_kib_are_not_kept),
    };
    return cmocka_run_group_tests(tests, install, NULL);
}
