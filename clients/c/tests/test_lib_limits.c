/* test_lib_limits: the broker's limits as libmoonpost reports them: a full mailbox (507), too
 * many failed logins (429), and a broker that goes away for good (503, then refused).
 * Started by run_with_broker.py with mailbox_max 3 and login_max_failures 3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "moonpost.h"
#include "util.h"

static void test_full_mailbox_is_507(void **state)
{
    (void)state;
    char a[40], b[40];
    mp_client *ca = test_login_new(a, sizeof a, "mfa");
    test_user(b, sizeof b, "mfb");
    mp_client *cb = test_connect();
    assert_int_equal(mp_register(cb, b, TEST_PASSWORD, NULL), MP_OK);
    mp_client_free(cb);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mp_send(ca, b, "x", 1, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_int_equal(mp_send(ca, b, "x", 1, MP_BODY_STR, NULL, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 507);
    assert_string_equal(mp_code_text(507), "the recipient's mailbox is full");
    mp_client_free(ca);
}

static void test_too_many_failed_logins_is_429(void **state)
{
    (void)state;
    char a[40];
    test_user(a, sizeof a, "lf");
    mp_client *c = test_connect();
    assert_int_equal(mp_register(c, a, TEST_PASSWORD, NULL), MP_OK);
    int code = 0;
    for (int i = 0; i < 6 && code != 429; i++) {
        assert_int_equal(mp_login(c, a, "wrong-password", NULL), MP_ERR_SERVER);
        code = mp_client_code(c);
    }
    assert_int_equal(code, 429);
    assert_int_equal(mp_login(c, a, TEST_PASSWORD, NULL), MP_ERR_SERVER); /* even the right one */
    assert_int_equal(mp_client_code(c), 429);
    mp_client_free(c);
}

/* Logged in before the failed logins, which block this address for a while. */
static mp_client *survivor;

static int group_setup(void **state)
{
    (void)state;
    char a[40];
    survivor = test_login_new(a, sizeof a, "gone");
    return 0;
}

static void test_broker_gone_for_good(void **state)
{
    (void)state;
    mp_client *c = survivor;
    mp_client *admin = mp_client_new();
    assert_int_equal(mp_client_connect_unix(admin, test_admin_socket(), 2000), MP_OK);
    uint8_t map[64];
    size_t n = test_map(map, sizeof map, "admin.shutdown", NULL, NULL);
    assert_int_equal(mp_call(admin, map, n, NULL), MP_OK);
    mp_client_free(admin);
    mp_err err = MP_OK;
    for (int i = 0; i < 500 && err == MP_OK; i++)
        err = mp_client_run(c, 20);
    assert_int_equal(err, MP_ERR_CLOSED);
    assert_int_equal(mp_client_code(c), 503); /* bye 503: shutting down */
    assert_int_equal(mp_client_reconnect(c, 1500, NULL), MP_ERR_REFUSED);
    mp_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_mailbox_is_507),
        cmocka_unit_test(test_too_many_failed_logins_is_429),
        cmocka_unit_test(test_broker_gone_for_good), /* last: stops the broker */
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
