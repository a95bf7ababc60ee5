/* frame: the wire framing of PROTOCOL.md, shared by the broker and the client library.
 *
 * A frame is a 4-byte big-endian body length, then a MessagePack map with string keys
 * that holds at least `type` (a str) and optionally `id` (a non-negative integer). */
#ifndef MOONPOST_FRAME_H
#define MOONPOST_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER_LEN 4
#define FRAME_MAX_DEPTH 32

enum frame_error {
    FRAME_OK = 0,
    FRAME_NOT_MAP,     /* the body is not a map */
    FRAME_TRUNCATED,   /* the map ends early, or a size inside it is larger than the body */
    FRAME_UNSUPPORTED, /* ext types or the reserved byte */
    FRAME_TRAILING,    /* bytes after the map */
    FRAME_TOO_DEEP,    /* containers nested deeper than FRAME_MAX_DEPTH */
    FRAME_BAD_KEY,     /* a top-level key that is not a str, or a nested key that is not a str or int */
    FRAME_NO_TYPE,     /* `type` missing */
    FRAME_BAD_TYPE,    /* `type` not a str */
    FRAME_BAD_ID,      /* `id` not a non-negative integer */
};

struct frame_info {
    const uint8_t *type; /* points into the body; not NUL-terminated */
    uint32_t type_len;
    int has_id;
    uint64_t id;
};

static inline uint32_t frame_read_length(const uint8_t header[FRAME_HEADER_LEN])
{
    return (uint32_t)header[0] << 24 | (uint32_t)header[1] << 16 | (uint32_t)header[2] << 8 |
           (uint32_t)header[3];
}

static inline void frame_write_length(uint8_t header[FRAME_HEADER_LEN], uint32_t len)
{
    header[0] = (uint8_t)(len >> 24);
    header[1] = (uint8_t)(len >> 16);
    header[2] = (uint8_t)(len >> 8);
    header[3] = (uint8_t)len;
}

/* Validates a whole frame body and finds `type` and `id` in it. Walks every byte once and
 * allocates nothing. info->has_id is set whenever a valid `id` was read, even when the frame
 * is rejected for another reason, so the error reply can carry it. */
enum frame_error frame_check(const uint8_t *body, size_t len, struct frame_info *info);

/* A human-readable reason for an error ("body is not a map"). */
const char *frame_error_text(enum frame_error err);



enum frame_split { FRAME_NEED_MORE, FRAME_READY, FRAME_EMPTY, FRAME_OVERSIZE };

/* Looks at the start of a byte stream: FRAME_READY when a whole frame of body length *body_len
 * is there, FRAME_NEED_MORE when more bytes are needed (*body_len tells how many the body has
 * when the header is complete, else 0), FRAME_EMPTY for a zero length, FRAME_OVERSIZE for a
 * length over MAX_FRAME. */
enum frame_split frame_split(const uint8_t *data, size_t len, uint32_t max_frame,
                             uint32_t *body_len);

struct msgread_item;
/* Finds top-level KEY in a body that frame_check accepted; fills ITEM with its value (for a
 * container, its header only). Returns 1 when found, 0 when not. */
int frame_get(const uint8_t *body, size_t len, const char *key, struct msgread_item *item);
#endif
