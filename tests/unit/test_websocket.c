/* Unit tests for the WebSocket transport: the handshake's accept key (RFC 6455's example), the
 * size of a server frame read back from an output buffer, and a session on a socketpair whose
 * fragmented message reaches the frame handler whole and whose reply leaves as one binary
 * message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "session_fixture.h"
#include "websocket.h"
#include "websocket_upgrade.h"

static void test_accept_key_of_the_rfc_example(void **state)
{
    (void)state;
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
    char accept[WEBSOCKET_ACCEPT_LEN + 1];
    websocket_accept_key(key, strlen(key), accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static size_t frame_size_of(const uint8_t *bytes, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, bytes, len);
    struct evbuffer_ptr p;
    evbuffer_ptr_set(out, &p, 0, EVBUFFER_PTR_SET);
    size_t n = websocket_frame_size(out, &p);
    evbuffer_free(out);
    return n;
}

static void test_frame_size_reads_each_length_form(void **state)
{
    (void)state;
    static const uint8_t short_form[] = {0x82, 5};
    static const uint8_t mid_form[] = {0x82, 126, 0x01, 0x00};
    static const uint8_t long_form[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    static const uint8_t cut[] = {0x82, 126, 0x01};
    assert_int_equal(frame_size_of(short_form, sizeof short_form), 2 + 5);
    assert_int_equal(frame_size_of(mid_form, sizeof mid_form), 4 + 256);
    assert_int_equal(frame_size_of(long_form, sizeof long_form), 10 + 65536);
    assert_int_equal(frame_size_of(cut, sizeof cut), 0);
}

static size_t frames_seen;
static uint8_t body_seen[64];
static size_t body_seen_len;

static void on_frame(struct session *s, const struct frame_info *info, const uint8_t *body,
                     size_t len)
{
    frames_seen++;
    memcpy(body_seen, body, len < sizeof body_seen ? len : sizeof body_seen);
    body_seen_len = len;
    session_reply(s, info->has_id, info->id, 200, NULL);
}

/* A masked client frame (mask key 0: the payload goes as it is). */
static void send_client_frame(int fd, uint8_t first, const uint8_t *payload, uint8_t len)
{
    uint8_t frame[2 + 4 + 125] = {first, (uint8_t)(0x80 | len), 0, 0, 0, 0};
    memcpy(frame + 6, payload, len);
    assert_int_equal(write(fd, frame, 6 + (size_t)len), 6 + (ssize_t)len);
}

static void test_fragments_reach_the_handler_whole_and_the_reply_is_one_message(void **state)
{
    (void)state;
    fixture_start(on_frame);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    struct evbuffer *preread = evbuffer_new();
    struct session *s = websocket_open(fds[0], NULL, preread);
    assert_non_null(s);
    /* {"type": "ping", "id": 7} in three pieces */
    static const uint8_t body[] = {0x82, 0xa4, 't', 'y',  'p', 'e', 0xa4, 'p',
                                   'i',  'n',  'g', 0xa2, 'i', 'd', 0x07};
    send_client_frame(fds[1], 0x02, body, 3);                   /* binary, not final */
    send_client_frame(fds[1], 0x00, body + 3, 5);               /* continuation */
    send_client_frame(fds[1], 0x80, body + 8, sizeof body - 8); /* continuation, final */
    fixture_run();
    assert_int_equal(frames_seen, 1);
    assert_int_equal(body_seen_len, sizeof body);
    assert_memory_equal(body_seen, body, sizeof body);
    uint8_t reply[64];
    ssize_t n = read(fds[1], reply, sizeof reply);
    assert_true(n > 2);
    assert_int_equal(reply[0], 0x82);          /* final, binary */
    assert_int_equal(reply[1], (size_t)n - 2); /* unmasked, the whole body in one message */
    close(fds[1]);
    fixture_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_of_the_rfc_example),
        cmocka_unit_test(test_frame_size_reads_each_length_form),
        cmocka_unit_test(test_fragments_reach_the_handler_whole_and_the_reply_is_one_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
