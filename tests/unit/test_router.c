/* Unit tests for broker/router.c: the route table and its flags, the order of checks of
 * PROTOCOL.md (403 socket, 401 login, 404 type, then the message hooks), and the count of
 * requests in flight, with fake handlers and real sessions on socketpairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "router.h"
#include "session_fixture.h"

/* What the fake handlers and hooks saw. */
static int handled[8];
static int hook_calls;
static int hook_refuses; /* the code the hook answers, 0 = let through */

static void handler(void *state, struct session *s, const struct frame_info *info,
                    const uint8_t *body, size_t len)
{
    (void)s, (void)info, (void)body, (void)len;
    handled[(intptr_t)state]++;
}

/* A handler that answers at once, ending its request. */
static void answering_handler(void *state, struct session *s, const struct frame_info *info,
                              const uint8_t *body, size_t len)
{
    handler(state, s, info, body, len);
    session_reply(s, info->has_id, info->id, 200, NULL);
    session_handler_done(s);
}

static int hook(void *state, struct session *s, const struct frame_info *info,
                const uint8_t *body, size_t len, const char **error)
{
    (void)state, (void)s, (void)info, (void)body, (void)len;
    hook_calls++;
    *error = "hooked";
    return hook_refuses;
}

enum { H_PUB = 1, H_ANON, H_ADMIN, H_PING, H_OTHER };

static int setup(void **state)
{
    (void)state;
    memset(handled, 0, sizeof handled);
    hook_calls = hook_refuses = 0;
    fixture_start(router_dispatch);
    assert_int_equal(router_add("pub", 0, answering_handler, (void *)H_PUB), ROUTER_ADDED);
    assert_int_equal(router_add("anon", ROUTE_ANONYMOUS, answering_handler, (void *)H_ANON),
                     ROUTER_ADDED);
    assert_int_equal(router_add("admin.x", ROUTE_ADMIN, answering_handler, (void *)H_ADMIN),
                     ROUTER_ADDED);
    assert_int_equal(router_add("ping", ROUTE_ANONYMOUS | ROUTE_ALSO_ADMIN, answering_handler,
                                (void *)H_PING),
                     ROUTER_ADDED);
    assert_int_equal(router_add_message_hook(hook, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    router_free();
    fixture_stop();
    return 0;
}

/* Sends TYPE from P through the router; returns the code P got back (-1: none yet). */
static int send_type(const struct fixture_peer *p, const char *type, char *error, size_t cap)
{
    struct codec_buf b;
    codec_buf_init(&b);
    struct frame_info info;
    const uint8_t *body;
    size_t len;
    fixture_frame(&b, type, &info, &body, &len);
    router_dispatch(p->s, &info, body, len);
    codec_buf_free(&b);
    uint8_t reply[4096];
    ssize_t n = fixture_read_frame(p, reply, sizeof reply);
    if (n < 0) return -1;
    struct msgread_item item;
    assert_true(frame_get(reply, (size_t)n, "code", &item));
    int code = (int)item.v.u;
    if (error != NULL) {
        error[0] = '\0';
        if (frame_get(reply, (size_t)n, "error", &item))
            snprintf(error, cap, "%.*s", (int)item.v.str.len, (const char *)item.v.str.ptr);
    }
    return code;
}

static void expect(const struct fixture_peer *p, const char *type, int code, const char *error)
{
    char got[128];
    assert_int_equal(send_type(p, type, got, sizeof got), code);
    if (error != NULL) assert_string_equal(got, error);
}

static void log_in(struct fixture_peer *p, const char *user)
{
    const char *why;
    assert_int_equal(session_login(p->s, user, strlen(user), &why), 0);
}

static void test_client_before_login(void **state)
{
    (void)state;
    struct fixture_peer c = fixture_open(SESSION_CLIENT);
    expect(&c, "admin.x", 403, "admin types are only served on the admin socket");
    expect(&c, "admin.unknown", 403, "admin types are only served on the admin socket");
    expect(&c, "pub", 401, "not logged in");
    expect(&c, "nope", 401, "not logged in");
    assert_int_equal(hook_calls, 0); /* the checks come before the hooks */
    expect(&c, "anon", 200, NULL);
    expect(&c, "ping", 200, NULL);
    assert_int_equal(hook_calls, 2);
    assert_int_equal(handled[H_ANON] + handled[H_PING], 2);
    assert_int_equal(handled[H_PUB], 0);
    close(c.fd);
}

static void test_client_logged_in(void **state)
{
    (void)state;
    struct fixture_peer c = fixture_open(SESSION_CLIENT);
    log_in(&c, "alice");
    expect(&c, "nope", 404, "unknown type");
    expect(&c, "admin.x", 403, NULL);
    assert_int_equal(hook_calls, 0);
    expect(&c, "pub", 200, NULL);
    hook_refuses = 429;
    expect(&c, "pub", 429, "hooked"); /* the hook refuses: the handler does not run */
    assert_int_equal(handled[H_PUB], 1);
    assert_int_equal(hook_calls, 2);
    close(c.fd);
}

static void test_admin_socket(void **state)
{
    (void)state;
    struct fixture_peer a = fixture_open(SESSION_ADMIN);
    expect(&a, "pub", 403, "the admin socket serves admin.* types and ping only");
    expect(&a, "nope", 403, NULL);
    expect(&a, "anon", 403, NULL);
    expect(&a, "admin.unknown", 404, "unknown type");
    expect(&a, "admin.x", 200, NULL);
    expect(&a, "ping", 200, NULL); /* ROUTE_ALSO_ADMIN, no special case */
    assert_int_equal(handled[H_ADMIN], 1);
    assert_int_equal(handled[H_PING], 1);
    close(a.fd);
}

static void test_in_flight_counted_by_the_router(void **state)
{
    (void)state;
    assert_int_equal(router_add("slow", 0, handler, (void *)H_OTHER), ROUTER_ADDED);
    assert_int_equal(router_add("admin.slow", ROUTE_ADMIN, handler, (void *)H_OTHER),
                     ROUTER_ADDED);
    struct fixture_peer c = fixture_open(SESSION_CLIENT);
    struct fixture_peer a = fixture_open(SESSION_ADMIN);
    log_in(&c, "bob");
    assert_int_equal(send_type(&c, "slow", NULL, 0), -1); /* no reply yet: in flight */
    assert_int_equal(send_type(&c, "slow", NULL, 0), -1);
    assert_int_equal(c.s->inflight, 2);
    expect(&c, "nope", 404, NULL); /* refusals are not in flight */
    expect(&c, "pub", 200, NULL);  /* a handler that ends its request */
    assert_int_equal(c.s->inflight, 2);
    session_handler_done(c.s);
    session_handler_done(c.s);
    assert_int_equal(c.s->inflight, 0);
    assert_int_equal(send_type(&a, "admin.slow", NULL, 0), -1); /* admin routes count too */
    assert_int_equal(a.s->inflight, 1);
    session_handler_done(a.s);
    assert_int_equal(a.s->inflight, 0);
    close(c.fd);
    close(a.fd);
}

static void test_add_rules(void **state)
{
    (void)state;
    assert_int_equal(router_add("admin.y", 0, handler, NULL), ROUTER_BAD_FLAGS);
    assert_int_equal(router_add("y", ROUTE_ADMIN, handler, NULL), ROUTER_BAD_FLAGS);
    assert_int_equal(router_add("admin.y", ROUTE_ADMIN | ROUTE_ANONYMOUS, handler, NULL),
                     ROUTER_BAD_FLAGS);
    assert_int_equal(router_add("pub", 0, handler, NULL), ROUTER_TAKEN);
    /* a replaceable route (the scripts') yields to another handler, and can be removed */
    assert_int_equal(router_add("soft", ROUTE_REPLACEABLE, handler, (void *)H_OTHER),
                     ROUTER_ADDED);
    assert_int_equal(router_add("soft", 0, answering_handler, (void *)H_PUB), ROUTER_ADDED);
    assert_int_equal(router_add("soft", ROUTE_REPLACEABLE, handler, NULL), ROUTER_TAKEN);
    size_t before = router_count();
    router_remove_fn(answering_handler);
    assert_int_equal(router_count(), before - 5); /* pub anon admin.x ping soft */
    unsigned flags;
    router_handler fn;
    for (size_t i = 0; router_route_at(i, &flags, &fn) != NULL; i++)
        assert_ptr_not_equal(fn, answering_handler);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_before_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_logged_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_counted_by_the_router, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
