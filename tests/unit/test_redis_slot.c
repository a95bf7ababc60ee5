/* Redis Cluster key slots and the key a command is routed by. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "redis_slot.h"

static unsigned slot(const char *key)
{
    return redis_key_slot(key, strlen(key));
}

static int command_slot(int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return redis_command_slot(argc, argv, lens);
}

/* Values from Redis's own CLUSTER KEYSLOT. */
static void test_slots_match_redis(void **state)
{
    (void)state;
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("123456789"), 12739); /* CRC16/XMODEM check value 0x31C3 */
    assert_int_equal(slot(""), 0);
    assert_int_equal(slot("mp:user:alice"), slot("mp:user:alice"));
}

static void test_hash_tags(void **state)
{
    (void)state;
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_int_equal(slot("mp:mbox:{alice}"), slot("alice"));
    assert_int_equal(slot("foo{}{bar}"), redis_key_slot("foo{}{bar}", 10)); /* empty tag: all */
    assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("no{close"), redis_key_slot("no{close", 8));
}

static void test_commands_route_by_their_key(void **state)
{
    (void)state;
    const char *get[] = {"GET", "mp:user:{bob}"};
    assert_int_equal(command_slot(2, get), (int)slot("bob"));
    const char *fcall[] = {"FCALL", "moonpost_store", "3", "mp:user:{bob}", "x", "y", "z"};
    assert_int_equal(command_slot(7, fcall), (int)slot("bob"));
    const char *fcall_lower[] = {"fcall_ro", "f", "1", "k{t}"};
    assert_int_equal(command_slot(4, fcall_lower), (int)slot("t"));
    const char *no_keys[] = {"FCALL", "moonpost_users", "0", "mp:", "10"};
    assert_int_equal(command_slot(5, no_keys), -1);
    const char *publish[] = {"PUBLISH", "mp:broadcast", "x"};
    assert_int_equal(command_slot(3, publish), -1);
    const char *spublish[] = {"SPUBLISH", "mp:{n1}", "x"};
    assert_int_equal(command_slot(3, spublish), (int)slot("n1"));
    const char *ping[] = {"PING"};
    assert_int_equal(command_slot(1, ping), -1);
}

static void test_redirects(void **state)
{
    (void)state;
    char addr[64];
    unsigned slot = 0;
    int ask = -1;
    const char *moved = "MOVED 3999 127.0.0.1:6381";
    assert_true(redis_parse_redirect(moved, strlen(moved), "h", &ask, &slot, addr, sizeof addr));
    assert_int_equal(ask, 0);
    assert_int_equal(slot, 3999);
    assert_string_equal(addr, "127.0.0.1:6381");
    const char *asked = "ASK 16383 :7000";
    assert_true(redis_parse_redirect(asked, strlen(asked), "10.0.0.9", &ask, &slot, addr,
                                     sizeof addr));
    assert_int_equal(ask, 1);
    assert_int_equal(slot, 16383);
    assert_string_equal(addr, "10.0.0.9:7000");
    const char *bad[] = {"MOVED 16384 h:1", "MOVED x h:1", "ASK 1 nocolon", "ERR MOVED 1 h:1",
                         "MOVED 1 h:", "CLUSTERDOWN The cluster is down"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(redis_parse_redirect(bad[i], strlen(bad[i]), "h", &ask, &slot, addr,
                                          sizeof addr));
    assert_false(redis_parse_redirect(moved, strlen(moved), "h", &ask, &slot, addr, 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_match_redis),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_commands_route_by_their_key),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
