/* Unit tests for the order of live mailbox messages (router.c, docs/cluster.md): a message
 * whose prev was not pushed waits for a resync, messages arriving during a replay make it read
 * again, repeats of what a replay pushed are silent, a mid that went back is counted, and what
 * has no session here goes to the cluster. Real sessions on socketpairs, no broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "router.h"
#include "session_fixture.h"
#include "stats.h"

static int resyncs; /* how often the fake resync handler ran */
static int resync_answer;

static int fake_resync(struct session *s)
{
    (void)s;
    resyncs++;
    return resync_answer;
}

/* What the fake cluster was handed. */
static struct {
    int delivered, broadcast;
    uint64_t mid, prev;
    char user[40];
} remote_seen;

static void fake_remote_deliver(const char *user, size_t user_len, const void *frame,
                                size_t frame_len, uint64_t mid, uint64_t prev)
{
    (void)frame, (void)frame_len;
    remote_seen.delivered++;
    snprintf(remote_seen.user, sizeof remote_seen.user, "%.*s", (int)user_len, user);
    remote_seen.mid = mid;
    remote_seen.prev = prev;
}

static void fake_remote_broadcast(const void *frame, size_t frame_len)
{
    (void)frame, (void)frame_len;
    remote_seen.broadcast++;
}

static int setup(void **state)
{
    (void)state;
    resyncs = 0;
    resync_answer = 0;
    memset(&remote_seen, 0, sizeof remote_seen);
    memset(&stats, 0, sizeof stats);
    fixture_start(NULL);
    assert_int_equal(router_start(fixture_base), 0);
    router_set_resync(fake_resync);
    static const struct router_remote remote = {fake_remote_deliver, fake_remote_broadcast};
    router_set_remote(&remote);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    router_set_resync(NULL);
    router_set_remote(NULL);
    fixture_stop();
    router_stop();
    return 0;
}

static struct fixture_peer logged_in(const char *user)
{
    struct fixture_peer p = fixture_open(SESSION_CLIENT);
    const char *error = NULL;
    assert_int_equal(session_login(p.s, user, strlen(user), &error), 0);
    return p;
}

/* {type = "msg"}, length prefix first: the content does not matter here. */
static const uint8_t frame[] = {0, 0, 0, 10, 0x81, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'm', 's', 'g'};

/* Delivers a live message MID with PREV to USER. */
static int deliver(const char *user, uint64_t mid, uint64_t prev)
{
    return router_deliver(user, strlen(user), frame, sizeof frame, mid, prev);
}

static void test_in_order_is_pushed(void **state)
{
    (void)state;
    struct fixture_peer a = logged_in("a");
    assert_int_equal(deliver("a", 10, 0), 1);
    assert_int_equal(deliver("a", 11, 10), 1);
    assert_int_equal(a.s->last_mid, 11);
    assert_int_equal(resyncs, 0);
    assert_int_equal(stats.deliveries_total, 2);
}

/* Reads the frames peer P got; returns how many. */
static int frames_waiting(const struct fixture_peer *p)
{
    uint8_t body[64];
    int n = 0;
    while (fixture_read_frame(p, body, sizeof body) > 0) n++;
    return n;
}

static void test_a_message_before_its_earlier_one_waits_for_it(void **state)
{
    (void)state;
    struct fixture_peer a = logged_in("a");
    deliver("a", 10, 0);
    deliver("a", 12, 11); /* 11 is still on its way (the other connection) */
    deliver("a", 13, 12);
    assert_int_equal(a.s->last_mid, 10);
    assert_non_null(a.s->held);
    assert_int_equal(stats.live_held_total, 2);
    deliver("a", 11, 10); /* here it is: 11, then 12 and 13 follow */
    assert_int_equal(a.s->last_mid, 13);
    assert_null(a.s->held);
    assert_int_equal(resyncs, 0);
    assert_int_equal(frames_waiting(&a), 4);
}

static void test_an_earlier_message_that_never_comes_resyncs(void **state)
{
    (void)state;
    struct fixture_peer a = logged_in("a");
    deliver("a", 10, 0);
    deliver("a", 12, 11); /* 11 was lost with a channel connection */
    usleep((ROUTER_GAP_WAIT_MS + 150) * 1000);
    fixture_run(); /* the sweep: it waited more than ROUTER_GAP_WAIT_MS */
    assert_int_equal(resyncs, 1);
    assert_true(a.s->replaying);
    assert_null(a.s->held); /* the mailbox has it */
    deliver("a", 13, 12); /* held back: the resync brings it */
    assert_int_equal(a.s->last_mid, 10);
    assert_int_equal(resyncs, 1);
    /* the resync read 11 and 12 before 13 was stored: it must read once more */
    router_push(a.s, frame, sizeof frame, 11);
    router_push(a.s, frame, sizeof frame, 12);
    assert_int_equal(router_replay_caught_up(a.s), 0);
    router_push(a.s, frame, sizeof frame, 13);
    assert_int_equal(router_replay_caught_up(a.s), 1);
    assert_false(a.s->replaying);
    /* 11 arrives live at last: a repeat of what the resync pushed, silently dropped */
    deliver("a", 11, 10);
    assert_int_equal(stats.mid_regressions_total, 0);
    assert_int_equal(a.s->last_mid, 13);
    deliver("a", 14, 13);
    assert_int_equal(a.s->last_mid, 14);
}

static void test_too_many_held_resyncs(void **state)
{
    (void)state;
    struct fixture_peer a = logged_in("a");
    deliver("a", 10, 0);
    for (uint64_t mid = 12; mid < 12 + 1024; mid++) deliver("a", mid, mid - 1);
    assert_int_equal(resyncs, 0);
    deliver("a", 12 + 1024, 12 + 1023);
    assert_int_equal(resyncs, 1);
    assert_null(a.s->held);
}

static void test_mid_that_went_back_is_counted(void **state)
{
    (void)state;
    struct fixture_peer a = logged_in("a");
    deliver("a", 20, 0);
    deliver("a", 15, 0); /* not a repeat of a replay: a mid handed out twice */
    assert_int_equal(stats.mid_regressions_total, 1);
    assert_int_equal(a.s->last_mid, 20);
}

static void test_no_resync_handler_closes_the_session(void **state)
{
    (void)state;
    resync_answer = -1;
    struct fixture_peer a = logged_in("a");
    deliver("a", 10, 0);
    deliver("a", 12, 11);
    uint8_t body[64];
    assert_true(fixture_read_frame(&a, body, sizeof body) > 0); /* the msg of mid 10 */
    usleep((ROUTER_GAP_WAIT_MS + 150) * 1000);
    fixture_run(); /* the sweep: 11 never came */
    char type[16];
    assert_int_equal(fixture_next_code(&a, type, sizeof type), 503);
    assert_string_equal(type, "bye");
}

static void test_other_nodes(void **state)
{
    (void)state;
    struct fixture_peer a = logged_in("a");
    struct fixture_peer b = logged_in("b");
    assert_int_equal(deliver("elsewhere", 30, 29), 0);
    assert_int_equal(remote_seen.delivered, 1);
    assert_string_equal(remote_seen.user, "elsewhere");
    assert_int_equal(remote_seen.mid, 30);
    assert_int_equal(remote_seen.prev, 29);
    assert_int_equal(router_broadcast(frame, sizeof frame, a.s), 1); /* b only, here */
    assert_int_equal(remote_seen.broadcast, 1);
    assert_int_equal(router_broadcast_local(frame, sizeof frame, NULL), 2);
    assert_int_equal(remote_seen.broadcast, 1); /* from another node: not sent back out */
    (void)b;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_is_pushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_message_before_its_earlier_one_waits_for_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_earlier_message_that_never_comes_resyncs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_too_many_held_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mid_that_went_back_is_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_resync_handler_closes_the_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_nodes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
