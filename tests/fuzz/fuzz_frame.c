/* libFuzzer target for the wire format: frame_split over the input as a byte stream, then
 * frame_check and frame_get on every frame it yields and on the whole input as one body.
 * Besides the sanitizers, it aborts when the three disagree with each other. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msgread.h"

#define MAX_FRAME 65536

static void require(int ok)
{
    if (!ok) abort();
}

/* Whatever frame_check says, frame_get must stay inside the body; when the body is accepted,
 * frame_get must find what frame_check found. */
static void check_body(const uint8_t *body, size_t len)
{
    struct frame_info info;
    enum frame_error err = frame_check(body, len, &info);
    require(frame_error_text(err) != NULL);
    if (info.type != NULL) require(info.type >= body && info.type + info.type_len <= body + len);

    struct msgread_item item;
    static const char *const keys[] = {"type", "id", "body", "to", ""};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (frame_get(body, len, keys[i], &item) && (item.type == MSGREAD_STR || item.type == MSGREAD_BIN))
            require(item.v.str.ptr >= body && item.v.str.ptr + item.v.str.len <= body + len);
    }
    if (err != FRAME_OK) return;

    require(info.type != NULL);
    require(frame_get(body, len, "type", &item) == 1);
    require(item.type == MSGREAD_STR && item.v.str.ptr == info.type && item.v.str.len == info.type_len);
    if (info.has_id) {
        require(frame_get(body, len, "id", &item) == 1);
        require(item.type == MSGREAD_UINT && item.v.u == info.id);
    }
    /* an accepted body is exactly one item no deeper than the limit */
    struct mpr r;
    msgread_init(&r, body, len);
    require(msgread_skip(&r, FRAME_MAX_DEPTH) == MSGREAD_OK && msgread_left(&r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    for (;;) {
        uint32_t body_len;
        enum frame_split s = frame_split(data + off, size - off, MAX_FRAME, &body_len);
        if (s == FRAME_NEED_MORE) {
            size_t left = size - off;
            require(left < FRAME_HEADER_LEN ? body_len == 0
                                            : body_len > 0 && left - FRAME_HEADER_LEN < body_len);
            break;
        }
        if (s != FRAME_READY) {
            require(s == FRAME_EMPTY ? body_len == 0 : body_len > MAX_FRAME);
            break;
        }
        require(body_len > 0 && body_len <= MAX_FRAME);
        require(size - off - FRAME_HEADER_LEN >= body_len);
        /* a copy of exactly the body, so that ASan sees any read past its end */
        uint8_t *body = malloc(body_len);
        require(body != NULL);
        memcpy(body, data + off + FRAME_HEADER_LEN, body_len);
        check_body(body, body_len);
        free(body);
        off += FRAME_HEADER_LEN + body_len;
    }
    check_body(data, size);
    return 0;
}
