/* test_lib_restart: a logged-in client survives a broker restart: bye 503 on shutdown, then
 * mp_client_reconnect resumes the session with the token, and mail flows again.
 * Started by run_with_broker.py --restart, which brings the broker back after it exits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "moonpost.h"
#include "util.h"

struct seen {
    int msgs, byes, bye_code;
    char body[64];
};

static void on_msg(mp_client *c, const mp_message *m, void *ud)
{
    (void)c;
    struct seen *s = ud;
    size_t n = m->body_len < sizeof s->body - 1 ? m->body_len : sizeof s->body - 1;
    memcpy(s->body, m->body, n);
    s->body[n] = '\0';
    s->msgs++;
}

static void on_bye(mp_client *c, int code, const char *error, void *ud)
{
    (void)c, (void)error;
    struct seen *s = ud;
    s->bye_code = code;
    s->byes++;
}

static void shutdown_broker(void)
{
    mp_client *admin = mp_client_new();
    assert_int_equal(mp_client_connect_unix(admin, test_admin_socket(), 2000), MP_OK);
    uint8_t map[64];
    size_t n = test_map(map, sizeof map, "admin.shutdown", NULL, NULL);
    assert_int_equal(mp_call(admin, map, n, NULL), MP_OK);
    mp_client_free(admin);
}

static void test_resume_after_broker_restart(void **state)
{
    (void)state;
    char a[40], b[40];
    struct seen sa = {0}, sb = {0};
    mp_callbacks cb = {.on_msg = on_msg, .on_bye = on_bye};
    mp_client *ca = test_login_new(a, sizeof a, "rsa");
    mp_client *cbob = test_login_new(b, sizeof b, "rsb");
    mp_client_set_callbacks(ca, &cb, &sa);
    mp_client_set_callbacks(cbob, &cb, &sb);
    char token[300];
    strcpy(token, mp_client_token(cbob));

    shutdown_broker();
    assert_int_equal(test_run_until(cbob, &sb.byes, 1, 10000), 1);
    assert_int_equal(sb.bye_code, 503);
    assert_false(mp_client_is_connected(cbob));
    assert_int_equal(mp_ping(cbob, NULL), MP_ERR_CLOSED);
    test_run_until(ca, &sa.byes, 1, 10000);

    /* The broker comes back on the same port; both resume without their passwords. */
    assert_int_equal(mp_client_reconnect(cbob, 30000, NULL), MP_OK);
    assert_string_equal(mp_client_user(cbob), b);
    assert_int_equal(mp_client_reconnect(ca, 30000, NULL), MP_OK);
    assert_int_equal(mp_ping(cbob, NULL), MP_OK);
    assert_int_equal(mp_send(ca, b, "after restart", 13, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_int_equal(test_run_until(cbob, &sb.msgs, 1, 5000), 1);
    assert_string_equal(sb.body, "after restart");
    mp_client_free(ca);
    mp_client_free(cbob);
}

static void test_reconnect_without_a_session_only_connects(void **state)
{
    (void)state;
    mp_client *c = test_connect();
    mp_client_close(c);
    assert_int_equal(mp_client_reconnect(c, 5000, NULL), MP_OK);
    assert_null(mp_client_user(c));
    assert_int_equal(mp_ping(c, NULL), MP_OK);
    mp_client_free(c);
}

static void test_reconnect_gives_up_after_its_timeout(void **state)
{
    (void)state;
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect(c, "127.0.0.1", test_dead_port(), 1000), MP_ERR_REFUSED);
    assert_int_equal(mp_client_reconnect(c, 400, NULL), MP_ERR_REFUSED);
    mp_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_after_broker_restart),
        cmocka_unit_test(test_reconnect_without_a_session_only_connects),
        cmocka_unit_test(test_reconnect_gives_up_after_its_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
