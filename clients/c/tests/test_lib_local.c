/* test_lib_local: libmoonpost against local fake peers: connection errors, timeouts, a broker
 * that hangs up or talks nonsense, and argument checks. Needs no broker. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "moonpost.h"
#include "util.h"

/* A listening socket on 127.0.0.1 with backlog BACKLOG; *PORT gets its port. */
static int listener(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A client connected to a fresh listener; *PEER is the broker side, accepted. */
static mp_client *connected_pair(int *lfd, int *peer)
{
    uint16_t port;
    *lfd = listener(4, &port);
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect(c, "127.0.0.1", port, 1000), MP_OK);
    *peer = accept(*lfd, NULL, NULL);
    assert_true(*peer >= 0);
    return c;
}

static void test_connect_refused(void **state)
{
    (void)state;
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect(c, "127.0.0.1", test_dead_port(), 1000), MP_ERR_REFUSED);
    assert_non_null(strstr(mp_client_errmsg(c), "refused"));
    assert_int_equal(mp_client_code(c), 0);
    assert_false(mp_client_is_connected(c));
    assert_int_equal(mp_client_fd(c), -1);
    mp_client_free(c);
}

/* A full accept queue drops further SYNs, so the handshake never completes. */
static void test_connect_timeout(void **state)
{
    (void)state;
    uint16_t port;
    int lfd = listener(0, &port);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fillers[8];
    for (int i = 0; i < 8; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int rc = connect(fillers[i], (struct sockaddr *)&sa, sizeof sa);
        assert_true(rc == 0 || errno == EINPROGRESS);
    }
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect(c, "127.0.0.1", port, 300), MP_ERR_TIMEOUT);
    assert_non_null(strstr(mp_client_errmsg(c), "timed out"));
    mp_client_free(c);
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(lfd);
}

static void test_connect_resolve_error(void **state)
{
    (void)state;
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect(c, "no-such-host.invalid", 8889, 1000), MP_ERR_RESOLVE);
    mp_client_free(c);
}

static void test_connect_unix_missing_socket(void **state)
{
    (void)state;
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect_unix(c, "/nonexistent/moonpost.sock", 1000), MP_ERR_REFUSED);
    assert_non_null(strstr(mp_client_errmsg(c), "/nonexistent/moonpost.sock"));
    mp_client_free(c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    mp_client *c = mp_client_new();
    assert_int_equal(mp_client_connect(c, NULL, 1, 1000), MP_ERR_INVAL);
    assert_int_equal(mp_client_connect(c, "127.0.0.1", 1, 0), MP_ERR_INVAL);
    assert_int_equal(mp_login(NULL, "a", "b", NULL), MP_ERR_INVAL);
    assert_int_equal(mp_login(c, NULL, "b", NULL), MP_ERR_INVAL);
    assert_int_equal(mp_send(c, "bob", NULL, 3, MP_BODY_STR, NULL, NULL), MP_ERR_INVAL);
    assert_int_equal(mp_client_reconnect(c, 1000, NULL), MP_ERR_STATE); /* never connected */
    mp_client_free(c);
    mp_client_free(NULL);
    mp_userlist_free(NULL);
    mp_reply_free(NULL);
}

static void test_requests_need_a_connection(void **state)
{
    (void)state;
    mp_client *c = mp_client_new();
    assert_int_equal(mp_ping(c, NULL), MP_ERR_CLOSED);
    assert_string_equal(mp_client_errmsg(c), "not connected");
    assert_int_equal(mp_send_async(c, "bob", "x", 1, MP_BODY_STR, NULL, NULL), MP_ERR_CLOSED);
    assert_int_equal(mp_client_process(c), MP_ERR_CLOSED);
    assert_int_equal(mp_client_events(c), 0);
    mp_client_free(c);
}

static void test_reply_timeout(void **state)
{
    (void)state;
    int lfd, peer;
    mp_client *c = connected_pair(&lfd, &peer);
    mp_client_set_timeout(c, 200);
    assert_int_equal(mp_ping(c, NULL), MP_ERR_TIMEOUT);
    assert_non_null(strstr(mp_client_errmsg(c), "200 ms"));
    assert_true(mp_client_is_connected(c)); /* a late reply is dropped, the link stays */
    assert_int_equal(mp_client_pending(c), 0);
    mp_client_free(c);
    close(peer);
    close(lfd);
}

static int async_calls;
static mp_err async_err;

static void on_async(mp_client *c, mp_err err, const mp_reply *r, void *ud)
{
    (void)c, (void)ud;
    async_calls++;
    async_err = err;
    assert_null(r);
}

static void test_async_timeout(void **state)
{
    (void)state;
    int lfd, peer;
    mp_client *c = connected_pair(&lfd, &peer);
    mp_client_set_timeout(c, 100);
    async_calls = 0;
    assert_int_equal(mp_send_async(c, "bob", "hi", 2, MP_BODY_STR, on_async, NULL), MP_OK);
    assert_int_equal(mp_client_pending(c), 1);
    assert_true(mp_client_next_timeout(c) <= 100);
    assert_true(mp_client_events(c) & MP_EV_WRITE); /* queued, not written yet */
    test_run_until(c, &async_calls, 1, 2000);
    assert_int_equal(async_calls, 1);
    assert_int_equal(async_err, MP_ERR_TIMEOUT);
    assert_int_equal(mp_client_pending(c), 0);
    assert_int_equal(mp_client_next_timeout(c), -1);
    mp_client_free(c);
    close(peer);
    close(lfd);
}

static void test_peer_hangs_up(void **state)
{
    (void)state;
    int lfd, peer;
    mp_client *c = connected_pair(&lfd, &peer);
    async_calls = 0;
    assert_int_equal(mp_send_async(c, "bob", "hi", 2, MP_BODY_STR, on_async, NULL), MP_OK);
    close(peer);
    assert_int_equal(mp_ping(c, NULL), MP_ERR_CLOSED);
    assert_false(mp_client_is_connected(c));
    assert_int_equal(async_calls, 1); /* requests in flight fail with the connection */
    assert_int_equal(async_err, MP_ERR_CLOSED);
    assert_int_equal(mp_client_run(c, 10), MP_ERR_CLOSED);
    mp_client_free(c);
    close(lfd);
}

static void test_peer_sends_garbage(void **state)
{
    (void)state;
    int lfd, peer;
    mp_client *c = connected_pair(&lfd, &peer);
    static const uint8_t empty_frame[4] = {0, 0, 0, 0};
    assert_int_equal(write(peer, empty_frame, sizeof empty_frame), 4);
    assert_int_equal(mp_ping(c, NULL), MP_ERR_PROTOCOL);
    assert_false(mp_client_is_connected(c));
    mp_client_free(c);
    close(peer);
    close(lfd);

    c = connected_pair(&lfd, &peer);
    static const uint8_t not_a_map[5] = {0, 0, 0, 1, 0x01};
    assert_int_equal(write(peer, not_a_map, sizeof not_a_map), 5);
    assert_int_equal(mp_client_run(c, 1000), MP_ERR_PROTOCOL);
    assert_non_null(strstr(mp_client_errmsg(c), "malformed"));
    mp_client_free(c);
    close(peer);
    close(lfd);
}

static void test_raw_map_is_checked(void **state)
{
    (void)state;
    int lfd, peer;
    mp_client *c = connected_pair(&lfd, &peer);
    uint8_t map[64];
    size_t n = test_map(map, sizeof map, "ping", "id", "x");
    assert_int_equal(mp_call(c, map, n, NULL), MP_ERR_INVAL); /* holds an id */
    static const uint8_t no_type[] = {0x81, 0xa1, 'a', 0x01};
    assert_int_equal(mp_call(c, no_type, sizeof no_type, NULL), MP_ERR_INVAL);
    static const uint8_t not_a_map[] = {0x93, 1, 2, 3};
    assert_int_equal(mp_call(c, not_a_map, sizeof not_a_map, NULL), MP_ERR_INVAL);
    assert_int_equal(mp_call(c, NULL, 0, NULL), MP_ERR_INVAL);
    assert_int_equal(mp_client_events(c), MP_EV_READ); /* nothing was queued */
    mp_client_free(c);
    close(peer);
    close(lfd);
}

static void test_texts(void **state)
{
    (void)state;
    int codes[] = {400, 401, 403, 404, 408, 409, 413, 429, 500, 503, 507};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_not_equal(mp_code_text(codes[i]), "unknown error");
    assert_string_equal(mp_code_text(999), "unknown error");
    for (int e = MP_OK; e <= MP_ERR_BUSY; e++)
        assert_string_not_equal(mp_strerror((mp_err)e), "unknown error");
}

/* Names of received files come from another user: what mp_file_safe_name makes of them is
 * one harmless path component. */
static void test_file_safe_name(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"report.pdf", "report.pdf"},
        {"../../etc/passwd", "_.._etc_passwd"},
        {"..", "file"},
        {".bashrc", "bashrc"},
        {"a/b\\c", "a_b_c"},
        {"evil\x1b]0;title\x07name\r\n.txt", "evil]0;titlename.txt"},
        {"\x01\x02\x7f", "file"},
        {"trailing. . ", "trailing"},
        {"", "file"},
        {"caf\xc3\xa9 \xe2\x82\xac.txt", "caf\xc3\xa9 \xe2\x82\xac.txt"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = mp_file_safe_name(cases[i].in, out, sizeof out);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    assert_int_equal(mp_file_safe_name(NULL, out, sizeof out), 4);
    assert_string_equal(out, "file");
    char small[4];
    assert_int_equal(mp_file_safe_name("abcdef", small, sizeof small), 3);
    assert_string_equal(small, "abc");
    assert_int_equal(mp_file_safe_name("abc", out, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_connect_resolve_error),
        cmocka_unit_test(test_connect_unix_missing_socket),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_requests_need_a_connection),
        cmocka_unit_test(test_reply_timeout),
        cmocka_unit_test(test_async_timeout),
        cmocka_unit_test(test_peer_hangs_up),
        cmocka_unit_test(test_peer_sends_garbage),
        cmocka_unit_test(test_raw_map_is_checked),
        cmocka_unit_test(test_texts),
        cmocka_unit_test(test_file_safe_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
