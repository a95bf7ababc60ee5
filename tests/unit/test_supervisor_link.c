/* Unit tests for the frame helpers of broker/supervisor_link.c: a request's id replaced on its
 * way to a worker, a reply's id put back (or removed) on its way to the console, and frames
 * pulled one by one from a stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <event2/buffer.h>
#include <msgpack.h>

#include "frame.h"
#include "msgread.h"
#include "reply.h"
#include "supervisor_link.h"

/* {type: "admin.kick", user: "bob", [id: ID]} into SB. */
static void kick_request(msgpack_sbuffer *sb, int with_id, uint64_t id)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, with_id ? 3 : 2);
    reply_pack_str(&pk, "type");
    reply_pack_str(&pk, "admin.kick");
    if (with_id) {
        reply_pack_str(&pk, "id");
        msgpack_pack_uint64(&pk, id);
    }
    reply_pack_str(&pk, "user");
    reply_pack_str(&pk, "bob");
}

/* The body of the frame in OUT, checked: its type, id and user. */
static void assert_kick(struct codec_buf *out, int has_id, uint64_t id)
{
    const uint8_t *data = (const uint8_t *)out->sb.data;
    assert_int_equal(frame_read_length(data), out->sb.size - FRAME_HEADER_LEN);
    const uint8_t *body = data + FRAME_HEADER_LEN;
    size_t len = out->sb.size - FRAME_HEADER_LEN;
    struct frame_info info;
    assert_int_equal(frame_check(body, len, &info), FRAME_OK);
    assert_int_equal(info.type_len, 10);
    assert_memory_equal(info.type, "admin.kick", 10);
    assert_int_equal(info.has_id, has_id);
    if (has_id) assert_int_equal(info.id, id);
    struct msgread_item user;
    assert_true(frame_get(body, len, "user", &user));
    assert_int_equal(user.type, MSGREAD_STR);
    assert_memory_equal(user.v.str.ptr, "bob", 3);
}

static void test_frame_with_id_sets_replaces_and_removes(void **state)
{
    (void)state;
    struct codec_buf out;
    codec_buf_init(&out);
    msgpack_sbuffer with, without;
    kick_request(&with, 1, 7);
    kick_request(&without, 0, 0);
    assert_int_equal(frame_with_id((uint8_t *)without.data, without.size, 1, 1ULL << 40, &out), 0);
    assert_kick(&out, 1, 1ULL << 40);
    assert_int_equal(frame_with_id((uint8_t *)with.data, with.size, 1, 99, &out), 0);
    assert_kick(&out, 1, 99);
    assert_int_equal(frame_with_id((uint8_t *)with.data, with.size, 0, 0, &out), 0);
    assert_kick(&out, 0, 0);
    static const uint8_t not_a_map[] = {0x92, 0x01, 0x02};
    assert_int_equal(frame_with_id(not_a_map, sizeof not_a_map, 1, 1, &out), -1);
    msgpack_sbuffer_destroy(&with);
    msgpack_sbuffer_destroy(&without);
    codec_buf_free(&out);
}

static void test_frame_pull_takes_whole_frames_only(void **state)
{
    (void)state;
    struct evbuffer *in = evbuffer_new();
    static const uint8_t two[] = {0, 0, 0, 1, 0x80, 0, 0, 0, 2, 0x81};
    uint8_t *body;
    uint32_t len;
    evbuffer_add(in, two, 3);
    assert_int_equal(frame_pull(in, 100, &body, &len), 0);
    evbuffer_add(in, two + 3, sizeof two - 3);
    assert_int_equal(frame_pull(in, 100, &body, &len), 1);
    assert_int_equal(len, 1);
    assert_int_equal(body[0], 0x80);
    evbuffer_drain(in, FRAME_HEADER_LEN + len);
    assert_int_equal(frame_pull(in, 100, &body, &len), 0); /* 1 of 2 body bytes */
    assert_int_equal(frame_pull(in, 1, &body, &len), FRAME_PULL_TOO_LARGE);
    evbuffer_drain(in, evbuffer_get_length(in));
    static const uint8_t empty[] = {0, 0, 0, 0};
    evbuffer_add(in, empty, sizeof empty);
    assert_int_equal(frame_pull(in, 100, &body, &len), FRAME_PULL_EMPTY);
    evbuffer_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_with_id_sets_replaces_and_removes),
        cmocka_unit_test(test_frame_pull_takes_whole_frames_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
