/* Unit tests for broker/topic.c: the topic -> sessions index under thousands of random
 * subscribes, unsubscribes and closes checked against a plain matrix model, and the fan-out of
 * one frame (over the bus format) to real sessions on socketpairs, the sender's own left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "session_fixture.h"
#include "topic.h"

#define SESSIONS 40
#define TOPICS 70
#define STEPS 30000

static const char *topic_name(int t, char *buf, size_t cap)
{
    snprintf(buf, cap, "room:%d", t);
    return buf;
}

static struct session *fake_session(int i)
{
    struct session *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->handle = (session_handle)(i + 1) << 32 | (session_handle)i;
    s->user_len = (uint8_t)snprintf(s->user, sizeof s->user, "u%d", i);
    return s;
}

static void check_against(struct session *const sessions[SESSIONS],
                          unsigned char model[SESSIONS][TOPICS])
{
    char buf[32];
    size_t live_topics = 0;
    for (int t = 0; t < TOPICS; t++) {
        size_t followers = 0;
        for (int i = 0; i < SESSIONS; i++)
            followers += model[i][t];
        const char *name = topic_name(t, buf, sizeof buf);
        assert_int_equal(topic_subscriber_count(name, strlen(name)), followers);
        live_topics += followers > 0;
    }
    assert_int_equal(topic_count(), live_topics);
    for (int i = 0; i < SESSIONS; i++) {
        size_t follows = 0;
        for (int t = 0; t < TOPICS; t++)
            follows += model[i][t];
        assert_int_equal(topic_session_count(sessions[i]), follows);
    }
}

static void test_churn_matches_a_model(void **state)
{
    (void)state;
    struct session *sessions[SESSIONS];
    static unsigned char model[SESSIONS][TOPICS];
    memset(model, 0, sizeof model);
    for (int i = 0; i < SESSIONS; i++)
        sessions[i] = fake_session(i);
    srand(16);
    char buf[32];
    for (int step = 0; step < STEPS; step++) {
        int i = rand() % SESSIONS, t = rand() % TOPICS, what = rand() % 10;
        const char *name = topic_name(t, buf, sizeof buf);
        if (what < 6) {
            assert_int_equal(topic_subscribe(sessions[i], name, strlen(name)), !model[i][t]);
            model[i][t] = 1;
        } else if (what < 9) {
            assert_int_equal(topic_unsubscribe(sessions[i], name, strlen(name)), model[i][t]);
            model[i][t] = 0;
        } else {
            topic_drop_session(sessions[i]); /* the session closed */
            memset(model[i], 0, sizeof model[i]);
        }
        if (step % 1000 == 0) check_against(sessions, model);
    }
    check_against(sessions, model);
    topic_stop();
    assert_int_equal(topic_count(), 0);
    for (int i = 0; i < SESSIONS; i++)
        free(sessions[i]);
}

static void test_names_out_of_range_are_refused(void **state)
{
    (void)state;
    struct session *s = fake_session(1);
    char long_name[TOPIC_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name);
    assert_int_equal(topic_subscribe(s, long_name, 0), -1);
    assert_int_equal(topic_subscribe(s, long_name, TOPIC_NAME_MAX + 1), -1);
    assert_int_equal(topic_subscribe(s, long_name, TOPIC_NAME_MAX), 1);
    assert_int_equal(topic_unsubscribe(s, long_name, TOPIC_NAME_MAX + 1), 0);
    assert_int_equal(topic_unsubscribe(s, "nothing", 7), 0);
    uint8_t header[TOPIC_HEADER_MAX];
    assert_int_equal(topic_header(header, long_name, TOPIC_NAME_MAX + 1, "", 0), 0);
    assert_int_equal(topic_header(header, "r", 1, long_name, SESSION_USER_MAX + 1), 0);
    topic_stop();
    free(s);
}

/* The `from` field of the next frame PEER got, or "" when none came. */
static void next_from(const struct fixture_peer *p, char *out, size_t cap)
{
    uint8_t body[4096];
    out[0] = '\0';
    ssize_t len = fixture_read_frame(p, body, sizeof body);
    if (len < 0) return;
    struct msgread_item item;
    assert_true(frame_get(body, (size_t)len, "from", &item));
    snprintf(out, cap, "%.*s", (int)item.v.str.len, (const char *)item.v.str.ptr);
}

/* A body {type = "room.msg", from = FROM} as a Redis function would publish it, behind the bus
 * header of TOPIC; returns the payload's length. */
static size_t bus_payload(uint8_t *out, const char *topic, const char *from)
{
    size_t n = topic_header(out, topic, strlen(topic), from, strlen(from));
    assert_true(n > 0);
    struct codec_buf b;
    codec_buf_init(&b);
    codec_frame_begin(&b);
    msgpack_pack_map(&b.pk, 2);
    msgpack_pack_str_with_body(&b.pk, "type", 4);
    msgpack_pack_str_with_body(&b.pk, "room.msg", 8);
    msgpack_pack_str_with_body(&b.pk, "from", 4);
    msgpack_pack_str_with_body(&b.pk, from, strlen(from));
    size_t frame_len = codec_frame_end(&b);
    memcpy(out + n, b.sb.data + FRAME_HEADER_LEN, frame_len - FRAME_HEADER_LEN);
    n += frame_len - FRAME_HEADER_LEN;
    codec_buf_free(&b);
    return n;
}

static void test_fanout_reaches_followers_but_the_sender(void **state)
{
    (void)state;
    fixture_start(NULL);
    assert_int_equal(topic_start(), 0);
    struct fixture_peer alice = fixture_open(SESSION_CLIENT), bob = fixture_open(SESSION_CLIENT),
                        carol = fixture_open(SESSION_CLIENT);
    session_set_user(alice.s, "alice", 5);
    session_set_user(bob.s, "bob", 3);
    session_set_user(carol.s, "carol", 5);
    /* logged in: bound to their users, as session_login does (the fan-out finds the sender so) */
    assert_null(presence_add(alice.s));
    assert_null(presence_add(bob.s));
    assert_null(presence_add(carol.s));
    assert_int_equal(topic_subscribe(alice.s, "r1", 2), 1);
    assert_int_equal(topic_subscribe(bob.s, "r1", 2), 1);
    assert_int_equal(topic_subscribe(carol.s, "r2", 2), 1);

    uint8_t payload[512];
    size_t n = bus_payload(payload, "r1", "alice");
    topic_on_bus("r1", 2, payload + 4, n - 4); /* cluster.c has read 'T', the length and "r1" */
    char from[40];
    next_from(&bob, from, sizeof from);
    assert_string_equal(from, "alice");
    next_from(&alice, from, sizeof from);
    assert_string_equal(from, ""); /* the sender's own session is left out */
    next_from(&carol, from, sizeof from);
    assert_string_equal(from, ""); /* another topic */

    /* truncated payloads are ignored */
    topic_on_bus("r1", 2, payload + 4, 0);
    topic_on_bus("r1", 2, payload + 4, 3);
    next_from(&bob, from, sizeof from);
    assert_string_equal(from, "");

    /* a closed session leaves its topics */
    session_close(bob.s, 0, NULL);
    fixture_run();
    assert_int_equal(topic_subscriber_count("r1", 2), 1);
    assert_int_equal(topic_publish_local("r1", 2, "x", 1, "", 0), 1);
    fixture_stop();
    topic_stop();
    close(alice.fd);
    close(bob.fd);
    close(carol.fd);
}

/* A follow message: FOLLOWER's handle and USER, then the topics. */
static size_t follow_payload(uint8_t *out, const struct session *follower, const char *user,
                             const char *const *topics, int n)
{
    struct session as = *follower;
    as.user_len = (uint8_t)snprintf(as.user, sizeof as.user, "%s", user);
    size_t len = topic_follow_header(out, &as);
    for (int i = 0; i < n; i++) {
        out[len++] = (uint8_t)strlen(topics[i]);
        memcpy(out + len, topics[i], strlen(topics[i]));
        len += strlen(topics[i]);
    }
    return len;
}

static void test_follow_messages_subscribe_the_session_they_name(void **state)
{
    (void)state;
    fixture_start(NULL);
    assert_int_equal(topic_start(), 0);
    struct fixture_peer alice = fixture_open(SESSION_CLIENT), anon = fixture_open(SESSION_CLIENT);
    session_set_user(alice.s, "alice", 5);
    static const char *const topics[] = {"room:a", "room:b", "room:a"};
    uint8_t payload[512];

    /* cluster.c has read 'F', the length 8 and the handle (bytes 2..9) */
    size_t n = follow_payload(payload, alice.s, "alice", topics, 3);
    assert_int_equal(payload[0], TOPIC_FOLLOW_KIND);
    topic_on_follow((const char *)payload + 2, 8, payload + 10, n - 10);
    assert_int_equal(topic_session_count(alice.s), 2);
    assert_int_equal(topic_subscriber_count("room:a", 6), 1);

    /* another user's name, a session not logged in, a truncated message: nothing */
    static const char *const c[] = {"room:c"};
    n = follow_payload(payload, alice.s, "mallory", c, 1);
    topic_on_follow((const char *)payload + 2, 8, payload + 10, n - 10);
    n = follow_payload(payload, anon.s, "", c, 1);
    topic_on_follow((const char *)payload + 2, 8, payload + 10, n - 10);
    n = follow_payload(payload, alice.s, "alice", c, 1);
    topic_on_follow((const char *)payload + 2, 8, payload + 10, n - 12);
    topic_on_follow((const char *)payload + 2, 7, payload + 10, n - 10);
    assert_int_equal(topic_subscriber_count("room:c", 6), 0);
    assert_int_equal(topic_session_count(anon.s), 0);

    /* a closed session is not found by its handle */
    session_close(alice.s, 0, NULL);
    fixture_run();
    topic_on_follow((const char *)payload + 2, 8, payload + 10, n - 10);
    assert_int_equal(topic_count(), 0);
    fixture_stop();
    topic_stop();
    close(alice.fd);
    close(anon.fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn_matches_a_model),
        cmocka_unit_test(test_names_out_of_range_are_refused),
        cmocka_unit_test(test_fanout_reaches_followers_but_the_sender),
        cmocka_unit_test(test_follow_messages_subscribe_the_session_they_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
