/* Unit tests for broker/session_events.c: subscribers see opened, logged-in and closed in
 * order, a login check can refuse a login, and a second login of a user sends the older
 * session away with `bye` 409. Real sessions on socketpairs, no broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "session_fixture.h"

#define LOG_MAX 64

/* Every event as "<subscriber><event><session>": "AO1" = subscriber A, opened, session 1. */
static char event_log[LOG_MAX][8];
static size_t event_count;
static session_handle handles[4];

static int session_number(const struct session *s)
{
    for (int i = 0; i < 4; i++)
        if (handles[i] == s->handle) return i;
    return 9;
}

static void record(void *state, struct session *s, enum session_event event)
{
    static const char letters[] = {'O', 'L', 'C'};
    assert_true(event_count < LOG_MAX);
    snprintf(event_log[event_count++], sizeof event_log[0], "%s%c%d", (const char *)state,
             letters[event], session_number(s));
}

static int refuse_mallory(void *state, struct session *s, const char *user, size_t len,
                          const char **error)
{
    (void)state, (void)s;
    if (len == 7 && memcmp(user, "mallory", 7) == 0) {
        *error = "banned";
        return 403;
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    event_count = 0;
    memset(handles, 0, sizeof handles);
    fixture_start(NULL);
    assert_int_equal(session_subscribe(record, "A"), 0);
    assert_int_equal(session_subscribe(record, "B"), 0);
    assert_int_equal(session_add_login_check(refuse_mallory, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fixture_stop();
    return 0;
}

static struct fixture_peer open_numbered(int i)
{
    handles[i] = 0;
    struct fixture_peer p = fixture_open(SESSION_CLIENT);
    handles[i] = p.s->handle;
    return p;
}

static void expect_log(const char *const *want, size_t n)
{
    assert_int_equal(event_count, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(event_log[i], want[i]);
}

static void test_events_in_order(void **state)
{
    (void)state;
    struct fixture_peer p = fixture_open(SESSION_CLIENT);
    handles[1] = p.s->handle; /* the opened event came before the number: session 9 */
    const char *why;
    assert_int_equal(session_login(p.s, "alice", 5, &why), 0);
    assert_int_equal(p.s->state, SESSION_AUTHENTICATED);
    assert_ptr_equal(presence_find("alice", 5), p.s);
    session_close(p.s, 0, NULL);
    fixture_run(); /* the reaper frees it */
    const char *want[] = {"AO9", "BO9", "AL1", "BL1", "AC1", "BC1"};
    expect_log(want, 6);
    assert_null(presence_find("alice", 5));
    assert_int_equal(session_count(), 0);
    close(p.fd);
}

static void test_login_check_refuses(void **state)
{
    (void)state;
    struct fixture_peer p = open_numbered(1);
    event_count = 0;
    const char *why = NULL;
    assert_int_equal(session_login(p.s, "mallory", 7, &why), 403);
    assert_string_equal(why, "banned");
    assert_int_equal(p.s->state, SESSION_ANONYMOUS); /* nothing changed */
    assert_int_equal(p.s->user_len, 0);
    assert_null(presence_find("mallory", 7));
    assert_int_equal(event_count, 0);
    assert_int_equal(session_login(p.s, "", 0, &why), 400);
    close(p.fd);
}

static void test_second_login_sends_the_first_away(void **state)
{
    (void)state;
    struct fixture_peer first = open_numbered(1);
    struct fixture_peer second = open_numbered(2);
    const char *why;
    assert_int_equal(session_login(first.s, "carol", 5, &why), 0);
    first.s->last_mid = 42;
    event_count = 0;
    assert_int_equal(session_login(second.s, "carol", 5, &why), 0);
    assert_ptr_equal(presence_find("carol", 5), second.s);
    assert_int_equal(presence_count(), 1);
    assert_int_equal(second.s->last_mid, 0);
    char type[16];
    assert_int_equal(fixture_next_code(&first, type, sizeof type), 409);
    assert_string_equal(type, "bye");
    assert_int_equal(fixture_next_code(&second, NULL, 0), -1); /* the new one got nothing */
    /* the older session closes after its bye: logged in, then closed (still "carol", but
     * no longer the bound session) */
    const char *want[] = {"AL2", "BL2", "AC1", "BC1"};
    expect_log(want, 4);
    close(first.fd);
    close(second.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_events_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_check_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_login_sends_the_first_away, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
