/* test_lib_broker: every libmoonpost call against a real broker and redis-server: replies,
 * errors, callbacks, auto-ack and de-duplication of offline mail, the admin socket, and both
 * ways of driving a client (mp_client_run and a program's own poll loop).
 * Started by run_with_broker.py with presence_notify on. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moonpost.h"
#include "util.h"

#define MAX_SEEN 128

/* What the callbacks of one client saw. */
struct inbox {
    int msgs, broadcasts, presences, byes, errors;
    mp_message last;
    char from[40], to[40], body[256];
    uint64_t mids[MAX_SEEN];
    int offline[MAX_SEEN];
    char presence_user[40];
    int presence_online;
    int bye_code, error_code;
    mp_client *echo_to_sender; /* when set, on_msg answers the sender with a blocking send */
    int room_msgs;
    uint64_t room_seqs[MAX_SEEN];
    char room[80], room_from[40], room_body[256];
    int room_body_is_bin;
};

static void keep(struct inbox *in, const mp_message *m)
{
    in->last = *m;
    snprintf(in->from, sizeof in->from, "%s", m->from);
    snprintf(in->to, sizeof in->to, "%s", m->to);
    size_t n = m->body_len < sizeof in->body - 1 ? m->body_len : sizeof in->body - 1;
    memcpy(in->body, m->body, n);
    in->body[n] = '\0';
    in->last.from = in->last.to = NULL;
    in->last.body = NULL;
}

static void on_msg(mp_client *c, const mp_message *m, void *ud)
{
    struct inbox *in = ud;
    assert_int_equal(((const char *)m->body)[m->body_len], '\0');
    keep(in, m);
    if (in->msgs < MAX_SEEN) {
        in->mids[in->msgs] = m->mid;
        in->offline[in->msgs] = m->offline;
    }
    in->msgs++;
    if (in->echo_to_sender) {
        char echo[300];
        int n = snprintf(echo, sizeof echo, "echo: %s", in->body);
        assert_int_equal(mp_send(c, m->from, echo, (size_t)n, MP_BODY_STR, NULL, NULL), MP_OK);
    }
}

static void on_broadcast(mp_client *c, const mp_message *m, void *ud)
{
    (void)c;
    struct inbox *in = ud;
    keep(in, m);
    in->broadcasts++;
}

static void on_presence(mp_client *c, const char *user, int online, void *ud)
{
    (void)c;
    struct inbox *in = ud;
    snprintf(in->presence_user, sizeof in->presence_user, "%s", user);
    in->presence_online = online;
    in->presences++;
}

static void on_bye(mp_client *c, int code, const char *error, void *ud)
{
    (void)c, (void)error;
    struct inbox *in = ud;
    in->bye_code = code;
    in->byes++;
}

static void on_error(mp_client *c, int code, const char *error, void *ud)
{
    (void)c, (void)error;
    struct inbox *in = ud;
    in->error_code = code;
    in->errors++;
}

static void on_room_msg(mp_client *c, const mp_room_msg *m, void *ud)
{
    (void)c;
    struct inbox *in = ud;
    assert_int_equal(((const char *)m->body)[m->body_len], '\0');
    if (in->room_msgs < MAX_SEEN) in->room_seqs[in->room_msgs] = m->seq;
    in->room_msgs++;
    snprintf(in->room, sizeof in->room, "%s", m->room);
    snprintf(in->room_from, sizeof in->room_from, "%s", m->from);
    size_t n = m->body_len < sizeof in->room_body - 1 ? m->body_len : sizeof in->room_body - 1;
    memcpy(in->room_body, m->body, n);
    in->room_body[n] = '\0';
    in->room_body_is_bin = m->body_is_bin;
    assert_true(m->ts > 1600000000000LL);
}

static const mp_callbacks recorder = {on_msg, on_broadcast, on_presence, on_bye, on_error,
                                      on_room_msg};

static void listen_on(mp_client *c, struct inbox *in)
{
    memset(in, 0, sizeof *in);
    mp_client_set_callbacks(c, &recorder, in);
}

/* A registered user nobody is logged in as. */
static void offline_user(char *user, size_t len, const char *prefix)
{
    test_user(user, len, prefix);
    mp_client *c = test_connect();
    assert_int_equal(mp_register(c, user, TEST_PASSWORD, "Someone"), MP_OK);
    mp_client_free(c);
}

static mp_client *login_as(const char *user, struct inbox *in)
{
    mp_client *c = test_connect();
    if (in) listen_on(c, in);
    if (mp_login(c, user, TEST_PASSWORD, NULL) != MP_OK)
        fail_msg("login %s: %s", user, mp_client_errmsg(c));
    return c;
}

static int lists(const mp_userlist *l, const char *user)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->users[i], user) == 0) return 1;
    return 0;
}

static void test_ping_before_login(void **state)
{
    (void)state;
    mp_client *c = test_connect();
    int64_t ts = 0;
    assert_int_equal(mp_ping(c, &ts), MP_OK);
    assert_true(ts > 1600000000000LL);
    assert_string_equal(mp_client_errmsg(c), "");
    mp_client_free(c);
}

static void test_register_errors(void **state)
{
    (void)state;
    char user[40];
    test_user(user, sizeof user, "reg");
    mp_client *c = test_connect();
    assert_int_equal(mp_register(c, user, TEST_PASSWORD, NULL), MP_OK);
    assert_int_equal(mp_register(c, user, TEST_PASSWORD, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 409);
    assert_int_equal(mp_register(c, "bad name!", TEST_PASSWORD, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 400);
    char other[40];
    test_user(other, sizeof other, "reg");
    assert_int_equal(mp_register(c, other, "123", NULL), MP_ERR_SERVER); /* too short */
    assert_int_equal(mp_client_code(c), 400);
    assert_string_not_equal(mp_client_errmsg(c), "");
    mp_client_free(c);
}

static void test_login_errors(void **state)
{
    (void)state;
    char user[40];
    offline_user(user, sizeof user, "log");
    mp_client *c = test_connect();
    mp_userlist *online = (mp_userlist *)&online;
    assert_int_equal(mp_login(c, user, "wrong-password", &online), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 401);
    assert_null(online);
    assert_null(mp_client_user(c));
    assert_null(mp_client_token(c));
    assert_int_equal(mp_login(c, "nobody-here", TEST_PASSWORD, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 401);
    assert_int_equal(mp_login(c, user, TEST_PASSWORD, NULL), MP_OK);
    assert_int_equal(mp_login(c, user, TEST_PASSWORD, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 409);
    mp_client_free(c);
}

static void test_requests_before_login_are_401(void **state)
{
    (void)state;
    mp_client *c = test_connect();
    mp_userlist *list = NULL;
    assert_int_equal(mp_users(c, 0, &list), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 401);
    assert_null(list);
    assert_int_equal(mp_send(c, "anyone", "x", 1, MP_BODY_STR, NULL, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 401);
    assert_int_equal(mp_ack(c, 1), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 401);
    mp_client_free(c);
}

static void test_login_gives_token_and_online_users(void **state)
{
    (void)state;
    char user[40];
    offline_user(user, sizeof user, "tok");
    mp_client *c = test_connect();
    mp_userlist *online = NULL;
    assert_int_equal(mp_login(c, user, TEST_PASSWORD, &online), MP_OK);
    assert_non_null(online);
    assert_true(lists(online, user));
    assert_true(online->total >= online->n);
    mp_userlist_free(online);
    assert_string_equal(mp_client_user(c), user);
    assert_true(mp_client_is_logged_in(c));
    assert_non_null(mp_client_token(c));
    assert_true(strlen(mp_client_token(c)) >= 16);
    mp_client_free(c);
}

static void test_users_lists_online_users(void **state)
{
    (void)state;
    char a[40], b[40];
    mp_client *ca = test_login_new(a, sizeof a, "usa");
    mp_client *cb = test_login_new(b, sizeof b, "usb");
    mp_userlist *list = NULL;
    assert_int_equal(mp_users(ca, 0, &list), MP_OK);
    assert_true(lists(list, a) && lists(list, b));
    assert_true(list->total >= 2);
    mp_userlist_free(list);
    assert_int_equal(mp_users(ca, 1, &list), MP_OK);
    assert_int_equal(list->n, 1);
    assert_true(list->total >= 2);
    mp_userlist_free(list);
    assert_int_equal(mp_users(ca, 100000, &list), MP_ERR_SERVER); /* limit is 1..10000 */
    assert_int_equal(mp_client_code(ca), 400);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_send_private_message(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox in;
    mp_client *ca = test_login_new(a, sizeof a, "spa");
    mp_client *cb = test_login_new(b, sizeof b, "spb");
    listen_on(cb, &in);
    uint64_t mid = 0;
    int online = 0;
    assert_int_equal(mp_send(ca, b, "hello bob", 9, MP_BODY_STR, &mid, &online), MP_OK);
    assert_true(mid > 0);
    assert_int_equal(online, 1);
    assert_int_equal(test_run_until(cb, &in.msgs, 1, 5000), 1);
    assert_string_equal(in.from, a);
    assert_string_equal(in.to, b);
    assert_string_equal(in.body, "hello bob");
    assert_int_equal(in.last.body_len, 9);
    assert_int_equal(in.last.body_is_bin, 0);
    assert_int_equal(in.last.offline, 0);
    assert_int_equal(in.last.mid, mid);
    assert_true(in.last.ts > 1600000000000LL);
    assert_int_equal(mp_client_last_mid(cb), mid);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_send_binary_body(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox in;
    mp_client *ca = test_login_new(a, sizeof a, "bia");
    mp_client *cb = test_login_new(b, sizeof b, "bib");
    listen_on(cb, &in);
    static const uint8_t bytes[] = {0, 1, 2, 0, 255};
    assert_int_equal(mp_send(ca, b, bytes, sizeof bytes, MP_BODY_BIN, NULL, NULL), MP_OK);
    assert_int_equal(test_run_until(cb, &in.msgs, 1, 5000), 1);
    assert_int_equal(in.last.body_is_bin, 1);
    assert_int_equal(in.last.body_len, sizeof bytes);
    assert_memory_equal(in.body, bytes, sizeof bytes);
    assert_int_equal(mp_send(ca, b, NULL, 0, MP_BODY_STR, NULL, NULL), MP_OK); /* empty is fine */
    assert_int_equal(test_run_until(cb, &in.msgs, 2, 5000), 2);
    assert_int_equal(in.last.body_len, 0);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_send_errors(void **state)
{
    (void)state;
    char a[40];
    mp_client *ca = test_login_new(a, sizeof a, "sea");
    assert_int_equal(mp_send(ca, "no-such-user", "x", 1, MP_BODY_STR, NULL, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 404);
    static char big[20000];
    memset(big, 'x', sizeof big);
    assert_int_equal(mp_send(ca, a, big, sizeof big, MP_BODY_STR, NULL, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 413);
    assert_int_equal(mp_broadcast(ca, big, sizeof big, MP_BODY_STR, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(ca), 413);
    assert_true(mp_client_is_connected(ca)); /* handler errors leave the connection open */
    mp_client_free(ca);
}

static void test_broadcast_reaches_the_others(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox ia, ib;
    mp_client *ca = test_login_new(a, sizeof a, "bra");
    mp_client *cb = test_login_new(b, sizeof b, "brb");
    listen_on(ca, &ia);
    listen_on(cb, &ib);
    uint64_t mid = 0;
    assert_int_equal(mp_broadcast(ca, "hello all", 9, MP_BODY_STR, &mid), MP_OK);
    assert_true(mid > 0);
    assert_int_equal(test_run_until(cb, &ib.broadcasts, 1, 5000), 1);
    assert_string_equal(ib.from, a);
    assert_string_equal(ib.to, "");
    assert_string_equal(ib.body, "hello all");
    assert_int_equal(ib.last.mid, mid);
    mp_client_run(ca, 200);
    assert_int_equal(ia.broadcasts, 0); /* not to the sender */
    assert_int_equal(ib.msgs, 0);       /* and it is not a msg */
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_offline_mail_arrives_in_order_and_is_acked(void **state)
{
    (void)state;
    char a[40], b[40];
    mp_client *ca = test_login_new(a, sizeof a, "ofa");
    offline_user(b, sizeof b, "ofb");
    uint64_t mids[3];
    for (int i = 0; i < 3; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "mail %d", i);
        int online = 1;
        assert_int_equal(mp_send(ca, b, text, (size_t)n, MP_BODY_STR, &mids[i], &online), MP_OK);
        assert_int_equal(online, 0);
    }
    struct inbox in;
    mp_client *cb = login_as(b, &in);
    assert_int_equal(test_run_until(cb, &in.msgs, 3, 5000), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(in.mids[i], mids[i]);
        assert_int_equal(in.offline[i], 1);
    }
    assert_string_equal(in.body, "mail 2");
    mp_client_run(cb, 300); /* the batched ack goes out */
    mp_client_free(cb);

    cb = login_as(b, &in);
    mp_client_run(cb, 500);
    assert_int_equal(in.msgs, 0); /* acked: the mailbox is empty */
    mp_client_free(cb);
    mp_client_free(ca);
}

static void test_live_messages_are_acked_too(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox in;
    mp_client *ca = test_login_new(a, sizeof a, "lia");
    mp_client *cb = test_login_new(b, sizeof b, "lib");
    listen_on(cb, &in);
    assert_int_equal(mp_send(ca, b, "live", 4, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_int_equal(test_run_until(cb, &in.msgs, 1, 5000), 1);
    mp_client_run(cb, 300);
    mp_client_free(cb);
    cb = login_as(b, &in);
    mp_client_run(cb, 500);
    assert_int_equal(in.msgs, 0);
    mp_client_free(cb);
    mp_client_free(ca);
}

static void test_repeated_offline_mail_is_dropped(void **state)
{
    (void)state;
    char a[40], b[40];
    mp_client *ca = test_login_new(a, sizeof a, "dda");
    offline_user(b, sizeof b, "ddb");
    assert_int_equal(mp_send(ca, b, "one", 3, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_int_equal(mp_send(ca, b, "two", 3, MP_BODY_STR, NULL, NULL), MP_OK);

    struct inbox in;
    mp_client *cb = test_connect();
    listen_on(cb, &in);
    mp_client_set_auto_ack(cb, 0); /* so that the broker sends them again */
    assert_int_equal(mp_login(cb, b, TEST_PASSWORD, NULL), MP_OK);
    assert_int_equal(test_run_until(cb, &in.msgs, 2, 5000), 2);
    uint64_t seen = mp_client_last_mid(cb);
    assert_int_equal(seen, in.mids[1]);

    /* Reconnect: the broker replays both, the client drops them. */
    mp_client_close(cb);
    assert_int_equal(mp_client_reconnect(cb, 5000, NULL), MP_OK);
    mp_client_run(cb, 500);
    assert_int_equal(in.msgs, 2);

    /* A new message still comes through. */
    assert_int_equal(mp_send(ca, b, "three", 5, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_int_equal(test_run_until(cb, &in.msgs, 3, 5000), 3);
    assert_string_equal(in.body, "three");

    /* A new client object that was told the last mid drops the replay as well. */
    struct inbox in2;
    mp_client *cb2 = test_connect();
    listen_on(cb2, &in2);
    mp_client_set_last_mid(cb2, mp_client_last_mid(cb));
    mp_client_set_auto_ack(cb2, 0);
    assert_int_equal(mp_login(cb2, b, TEST_PASSWORD, NULL), MP_OK);
    mp_client_run(cb2, 500);
    assert_int_equal(in2.msgs, 0);

    /* Manual ack empties the mailbox. */
    assert_int_equal(mp_ack(cb2, mp_client_last_mid(cb2)), MP_OK);
    mp_client_free(cb2);
    mp_client_free(cb);
    cb = login_as(b, &in);
    mp_client_run(cb, 500);
    assert_int_equal(in.msgs, 0);
    mp_client_free(cb);
    mp_client_free(ca);
}

static void test_without_msg_callback_mail_stays(void **state)
{
    (void)state;
    char a[40], b[40];
    mp_client *ca = test_login_new(a, sizeof a, "nca");
    offline_user(b, sizeof b, "ncb");
    assert_int_equal(mp_send(ca, b, "keep me", 7, MP_BODY_STR, NULL, NULL), MP_OK);
    mp_client *cb = login_as(b, NULL);
    mp_client_run(cb, 300);
    mp_client_free(cb);
    struct inbox in;
    cb = login_as(b, &in);
    assert_int_equal(test_run_until(cb, &in.msgs, 1, 5000), 1);
    assert_string_equal(in.body, "keep me");
    mp_client_free(cb);
    mp_client_free(ca);
}

static void test_presence_notifications(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox in;
    mp_client *ca = test_login_new(a, sizeof a, "pra");
    listen_on(ca, &in);
    offline_user(b, sizeof b, "prb");
    mp_client *cb = login_as(b, NULL);
    /* others from earlier tests may still be going offline: wait for B's own notices */
    for (int i = 0; i < 250 && !(strcmp(in.presence_user, b) == 0 && in.presence_online); i++)
        mp_client_run(ca, 20);
    assert_string_equal(in.presence_user, b);
    assert_int_equal(in.presence_online, 1);
    assert_int_equal(mp_logout(cb), MP_OK);
    for (int i = 0; i < 250 && strcmp(in.presence_user, b) == 0 && in.presence_online; i++)
        mp_client_run(ca, 20);
    assert_string_equal(in.presence_user, b);
    assert_int_equal(in.presence_online, 0);
    mp_client_free(cb);
    mp_client_free(ca);
}

static void test_second_login_says_bye_409(void **state)
{
    (void)state;
    char a[40];
    struct inbox in;
    mp_client *c1 = test_login_new(a, sizeof a, "bye");
    listen_on(c1, &in);
    mp_client *c2 = login_as(a, NULL);
    assert_int_equal(test_run_until(c1, &in.byes, 1, 5000), 1);
    assert_int_equal(in.bye_code, 409);
    assert_false(mp_client_is_connected(c1));
    assert_int_equal(mp_client_code(c1), 409);
    assert_non_null(strstr(mp_client_errmsg(c1), "409"));
    assert_int_equal(mp_client_run(c1, 10), MP_ERR_CLOSED);
    assert_int_equal(mp_ping(c2, NULL), MP_OK);
    mp_client_free(c1);
    mp_client_free(c2);
}

static void test_logout_revokes_the_token(void **state)
{
    (void)state;
    char a[40], token[300];
    mp_client *c = test_login_new(a, sizeof a, "out");
    snprintf(token, sizeof token, "%s", mp_client_token(c));
    assert_int_equal(mp_logout(c), MP_OK);
    assert_false(mp_client_is_connected(c));
    assert_null(mp_client_user(c));
    assert_null(mp_client_token(c));
    assert_int_equal(mp_logout(c), MP_ERR_CLOSED);
    mp_client *c2 = test_connect();
    assert_int_equal(mp_resume(c2, a, token, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c2), 401);
    mp_client_free(c2);
    mp_client_free(c);
}

static void test_resume_with_token(void **state)
{
    (void)state;
    char a[40], token[300];
    mp_client *c = test_login_new(a, sizeof a, "res");
    snprintf(token, sizeof token, "%s", mp_client_token(c));
    mp_client_free(c);
    c = test_connect();
    mp_userlist *online = NULL;
    assert_int_equal(mp_resume(c, a, token, &online), MP_OK);
    assert_true(lists(online, a));
    mp_userlist_free(online);
    assert_string_equal(mp_client_user(c), a);
    assert_int_equal(mp_resume(c, a, "not-the-token", NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 409); /* this connection is logged in already */
    mp_client_free(c);
}

static void test_reconnect_resumes_and_gets_missed_mail(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox in;
    mp_client *ca = test_login_new(a, sizeof a, "rca");
    mp_client *cb = test_login_new(b, sizeof b, "rcb");
    listen_on(cb, &in);
    mp_client_close(cb);
    assert_int_equal(mp_client_run(cb, 10), MP_ERR_CLOSED);
    assert_false(mp_client_is_logged_in(cb));
    assert_string_equal(mp_client_user(cb), b); /* kept for the resume */
    int online = 1;
    assert_int_equal(mp_send(ca, b, "while away", 10, MP_BODY_STR, NULL, &online), MP_OK);
    mp_userlist *list = NULL;
    assert_int_equal(mp_client_reconnect(cb, 5000, &list), MP_OK);
    assert_true(lists(list, b));
    mp_userlist_free(list);
    assert_string_equal(mp_client_user(cb), b);
    assert_true(mp_client_is_logged_in(cb));
    assert_int_equal(test_run_until(cb, &in.msgs, 1, 5000), 1);
    assert_string_equal(in.body, "while away");
    assert_int_equal(in.last.offline, 1);
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_raw_requests(void **state)
{
    (void)state;
    char a[40];
    mp_client *c = test_login_new(a, sizeof a, "raw");
    uint8_t map[128];
    size_t n = test_map(map, sizeof map, "users", NULL, NULL);
    mp_reply *r = NULL;
    assert_int_equal(mp_call(c, map, n, &r), MP_OK);
    assert_int_equal(mp_reply_code(r), 200);
    uint64_t count = 0;
    assert_true(mp_reply_uint(r, "count", &count));
    assert_true(count >= 1);
    size_t len = 0;
    assert_non_null(mp_reply_data(r, &len));
    assert_true(len > 10);
    const char *type;
    size_t type_len;
    assert_true(mp_reply_str(r, "type", &type, &type_len));
    assert_int_equal(type_len, 3);
    assert_false(mp_reply_str(r, "nothing", &type, &type_len));
    mp_reply_free(r);

    n = test_map(map, sizeof map, "no.such.type", NULL, NULL);
    assert_int_equal(mp_call(c, map, n, &r), MP_ERR_SERVER);
    assert_non_null(r);
    assert_int_equal(mp_reply_code(r), 404);
    assert_int_equal(mp_client_code(c), 404);
    mp_reply_free(r);

    n = test_map(map, sizeof map, "admin.stats", NULL, NULL);
    assert_int_equal(mp_call(c, map, n, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 403); /* admin types only on the admin socket */
    mp_client_free(c);
}

static void test_admin_socket_speaks_the_same_framing(void **state)
{
    (void)state;
    char a[40];
    struct inbox in;
    mp_client *user = test_login_new(a, sizeof a, "adm");
    listen_on(user, &in);
    mp_client *admin = mp_client_new();
    assert_int_equal(mp_client_connect_unix(admin, test_admin_socket(), 2000), MP_OK);
    uint8_t map[128];
    size_t n = test_map(map, sizeof map, "admin.stats", NULL, NULL);
    mp_reply *r = NULL;
    assert_int_equal(mp_call(admin, map, n, &r), MP_OK);
    assert_true(mp_reply_uint(r, "uptime", NULL));
    assert_true(mp_reply_str(r, "redis", NULL, NULL));
    mp_reply_free(r);
    n = test_map(map, sizeof map, "admin.loglevel", "level", "loud");
    assert_int_equal(mp_call(admin, map, n, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(admin), 400);
    n = test_map(map, sizeof map, "admin.kick", "user", a);
    assert_int_equal(mp_call(admin, map, n, NULL), MP_OK);
    assert_int_equal(test_run_until(user, &in.byes, 1, 5000), 1);
    assert_int_equal(in.bye_code, 403);
    mp_client_free(admin);
    mp_client_free(user);
}

struct async_log {
    int done, ok;
    uint64_t mids[64];
};

static void on_sent(mp_client *c, mp_err err, const mp_reply *r, void *ud)
{
    (void)c;
    struct async_log *log = ud;
    if (err == MP_OK && mp_reply_uint(r, "mid", &log->mids[log->ok])) log->ok++;
    log->done++;
}

static void test_async_requests(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox ia, ib;
    mp_client *ca = test_login_new(a, sizeof a, "asa");
    mp_client *cb = test_login_new(b, sizeof b, "asb");
    listen_on(ca, &ia);
    listen_on(cb, &ib);
    struct async_log log = {0};
    for (int i = 0; i < 50; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "n%d", i);
        assert_int_equal(mp_send_async(ca, b, text, (size_t)n, MP_BODY_STR, on_sent, &log), MP_OK);
    }
    assert_int_equal(mp_client_pending(ca), 50);
    assert_int_equal(test_run_until(ca, &log.done, 50, 10000), 50);
    assert_int_equal(log.ok, 50);
    assert_int_equal(test_run_until(cb, &ib.msgs, 50, 10000), 50);
    for (int i = 1; i < 50; i++)
        assert_true(ib.mids[i] > ib.mids[i - 1]);
    assert_string_equal(ib.body, "n49");

    /* Without a callback the request goes without an id; a failure reaches on_error. */
    assert_int_equal(mp_send_async(ca, "no-such-user", "x", 1, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_int_equal(mp_client_pending(ca), 0);
    assert_int_equal(test_run_until(ca, &ia.errors, 1, 5000), 1);
    assert_int_equal(ia.error_code, 404);
    assert_int_equal(mp_broadcast_async(ca, "all", 3, MP_BODY_STR, NULL, NULL), MP_OK);
    assert_true(mp_client_events(ca) & MP_EV_WRITE); /* queued until processed or flushed */
    assert_int_equal(mp_client_flush(ca), MP_OK);
    assert_int_equal(mp_client_events(ca), MP_EV_READ);
    assert_int_equal(test_run_until(cb, &ib.broadcasts, 1, 5000), 1);
    mp_client_free(ca);
    mp_client_free(cb);
}

/* A program with its own poll loop over two clients. */
static void test_own_event_loop(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox ib;
    mp_client *ca = test_login_new(a, sizeof a, "ela");
    mp_client *cb = test_login_new(b, sizeof b, "elb");
    listen_on(cb, &ib);
    struct async_log log = {0};
    assert_int_equal(mp_send_async(ca, b, "via poll", 8, MP_BODY_STR, on_sent, &log), MP_OK);
    mp_client *clients[2] = {ca, cb};
    for (int round = 0; round < 500 && (log.done < 1 || ib.msgs < 1); round++) {
        struct pollfd pfd[2];
        int timeout = 20;
        for (int i = 0; i < 2; i++) {
            int ev = mp_client_events(clients[i]);
            pfd[i].fd = mp_client_fd(clients[i]);
            pfd[i].events =
                (short)((ev & MP_EV_READ ? POLLIN : 0) | (ev & MP_EV_WRITE ? POLLOUT : 0));
            int t = mp_client_next_timeout(clients[i]);
            if (t >= 0 && t < timeout) timeout = t;
        }
        poll(pfd, 2, timeout);
        for (int i = 0; i < 2; i++)
            assert_int_equal(mp_client_process(clients[i]), MP_OK);
    }
    assert_int_equal(log.ok, 1);
    assert_int_equal(ib.msgs, 1);
    assert_string_equal(ib.body, "via poll");
    mp_client_free(ca);
    mp_client_free(cb);
}

static void test_rooms(void **state)
{
    (void)state;
    char alice[40], bob[40], carol[40], room[40], priv[40];
    struct inbox ain, bin;
    mp_client *a = test_login_new(alice, sizeof alice, "ra");
    listen_on(a, &ain);
    mp_client *b = test_login_new(bob, sizeof bob, "rb");
    listen_on(b, &bin);
    mp_client *c = test_login_new(carol, sizeof carol, "rc");
    test_user(room, sizeof room, "room");
    test_user(priv, sizeof priv, "priv");

    assert_int_equal(mp_room_create(a, room, "A title", 0), MP_OK);
    assert_int_equal(mp_room_create(b, room, NULL, 0), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(b), 409);
    uint64_t seq = 99;
    assert_int_equal(mp_room_join(b, room, &seq), MP_OK);
    assert_int_equal(seq, 0);

    uint64_t seqs[3];
    assert_int_equal(mp_room_send(a, room, "one", 3, MP_BODY_STR, &seqs[0]), MP_OK);
    assert_int_equal(mp_room_send(a, room, "\x00\x01", 2, MP_BODY_BIN, &seqs[1]), MP_OK);
    assert_int_equal(mp_room_send(a, room, "three", 5, MP_BODY_STR, &seqs[2]), MP_OK);
    assert_true(seqs[0] < seqs[1] && seqs[1] < seqs[2]);
    assert_int_equal(test_run_until(b, &bin.room_msgs, 3, 10000), 3);
    assert_memory_equal(bin.room_seqs, seqs, sizeof seqs);
    assert_string_equal(bin.room, room);
    assert_string_equal(bin.room_from, alice);
    assert_string_equal(bin.room_body, "three");
    assert_int_equal(bin.room_body_is_bin, 0);
    mp_client_run(a, 100);
    assert_int_equal(ain.room_msgs, 0); /* not to the sender */

    mp_room_history *h = NULL;
    assert_int_equal(mp_room_history_get(b, room, 0, 2, &h), MP_OK);
    assert_int_equal(h->n, 2);
    assert_int_equal(h->messages[0].seq, seqs[1]);
    assert_int_equal(h->messages[0].body_is_bin, 1);
    assert_int_equal(h->messages[0].body_len, 2);
    assert_memory_equal(h->messages[0].body, "\x00\x01", 2);
    assert_string_equal(h->messages[1].body, "three");
    assert_string_equal(h->messages[1].from, alice);
    assert_string_equal(h->messages[1].room, room);
    uint64_t first = h->messages[0].seq;
    mp_room_history_free(h);
    assert_int_equal(mp_room_history_get(b, room, first, 0, &h), MP_OK);
    assert_int_equal(h->n, 1);
    assert_string_equal(h->messages[0].body, "one");
    mp_room_history_free(h);
    assert_int_equal(mp_room_history_get(c, room, 0, 0, &h), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 403);
    assert_null(h);

    assert_int_equal(mp_room_read(b, room, seqs[0]), MP_OK);
    assert_int_equal(mp_room_create(b, priv, NULL, 1), MP_OK);
    mp_room_list *list = NULL;
    assert_int_equal(mp_room_list_get(b, &list), MP_OK);
    assert_int_equal(list->n, 2);
    for (size_t i = 0; i < list->n; i++) {
        const mp_room_info *e = &list->rooms[i];
        if (strcmp(e->room, room) == 0) {
            assert_string_equal(e->title, "A title");
            assert_int_equal(e->is_private, 0);
            assert_int_equal(e->seq, seqs[2]);
            assert_int_equal(e->read, seqs[0]);
            assert_int_equal(e->unread, 2);
            assert_int_equal(e->members, 2);
        } else {
            assert_string_equal(e->room, priv);
            assert_string_equal(e->title, "");
            assert_int_equal(e->is_private, 1);
            assert_int_equal(e->members, 1);
        }
    }
    mp_room_list_free(list);

    assert_int_equal(mp_room_join(c, priv, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 403);
    assert_int_equal(mp_room_invite(b, priv, carol), MP_OK);
    assert_int_equal(mp_room_join(c, priv, NULL), MP_OK);
    mp_userlist *members = NULL, *online = NULL;
    assert_int_equal(mp_room_members(c, priv, &members, &online), MP_OK);
    assert_int_equal(members->n, 2);
    assert_int_equal(members->total, 2);
    assert_true(lists(members, bob) && lists(members, carol));
    assert_true(lists(online, bob) && lists(online, carol));
    mp_userlist_free(members);
    mp_userlist_free(online);

    assert_int_equal(mp_room_leave(c, priv), MP_OK);
    assert_int_equal(mp_room_leave(c, priv), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 404);
    assert_int_equal(mp_room_send(c, priv, "x", 1, MP_BODY_STR, NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 403);
    assert_int_equal(mp_room_join(c, "no such room!", NULL), MP_ERR_SERVER);
    assert_int_equal(mp_client_code(c), 404);
    assert_int_equal(mp_room_join(c, "", NULL), MP_ERR_INVAL);
    assert_int_equal(mp_room_list_get(c, NULL), MP_ERR_INVAL);
    mp_client_free(a);
    mp_client_free(b);
    mp_client_free(c);
}

static void test_blocking_call_inside_a_callback(void **state)
{
    (void)state;
    char a[40], b[40];
    struct inbox ia, ib;
    mp_client *ca = test_login_new(a, sizeof a, "nea");
    mp_client *cb = test_login_new(b, sizeof b, "neb");
    listen_on(ca, &ia);
    listen_on(cb, &ib);
    ib.echo_to_sender = cb;
    for (int i = 0; i < 3; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "ping %d", i);
        assert_int_equal(mp_send(ca, b, text, (size_t)n, MP_BODY_STR, NULL, NULL), MP_OK);
    }
    assert_int_equal(test_run_until(cb, &ib.msgs, 3, 5000), 3);
    assert_int_equal(test_run_until(ca, &ia.msgs, 3, 5000), 3);
    assert_string_equal(ia.body, "echo: ping 2");
    mp_client_free(ca);
    mp_client_free(cb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_before_login),
        cmocka_unit_test(test_register_errors),
        cmocka_unit_test(test_login_errors),
        cmocka_unit_test(test_requests_before_login_are_401),
        cmocka_unit_test(test_login_gives_token_and_online_users),
        cmocka_unit_test(test_users_lists_online_users),
        cmocka_unit_test(test_send_private_message),
        cmocka_unit_test(test_send_binary_body),
        cmocka_unit_test(test_send_errors),
        cmocka_unit_test(test_broadcast_reaches_the_others),
        cmocka_unit_test(test_offline_mail_arrives_in_order_and_is_acked),
        cmocka_unit_test(test_live_messages_are_acked_too),
        cmocka_unit_test(test_repeated_offline_mail_is_dropped),
        cmocka_unit_test(test_without_msg_callback_mail_stays),
        cmocka_unit_test(test_presence_notifications),
        cmocka_unit_test(test_second_login_says_bye_409),
        cmocka_unit_test(test_logout_revokes_the_token),
        cmocka_unit_test(test_resume_with_token),
        cmocka_unit_test(test_reconnect_resumes_and_gets_missed_mail),
        cmocka_unit_test(test_raw_requests),
        cmocka_unit_test(test_admin_socket_speaks_the_same_framing),
        cmocka_unit_test(test_async_requests),
        cmocka_unit_test(test_own_event_loop),
        cmocka_unit_test(test_blocking_call_inside_a_callback),
        cmocka_unit_test(test_rooms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
