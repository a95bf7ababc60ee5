/* msgread: a bounds-checked MessagePack reader that never allocates.
 *
 * Every declared length or element count is checked against the bytes that are left before
 * the caller sees it, so a 5-byte body cannot ask anyone for gigabytes. */
#ifndef MOONPOST_MSGREAD_H
#define MOONPOST_MSGREAD_H

#include <stddef.h>
#include <stdint.h>

enum msgread_type { MSGREAD_NIL, MSGREAD_BOOL, MSGREAD_INT, MSGREAD_UINT, MSGREAD_FLOAT, MSGREAD_STR, MSGREAD_BIN, MSGREAD_ARRAY, MSGREAD_MAP };

struct msgread_item {
    enum msgread_type type;
    union {
        int boolean;
        int64_t i;  /* MSGREAD_INT: negative integers only */
        uint64_t u; /* MSGREAD_UINT */
        double f;
        struct {
            const uint8_t *ptr;
            uint32_t len;
        } str;          /* MSGREAD_STR, MSGREAD_BIN */
        uint32_t count; /* MSGREAD_ARRAY: elements, MSGREAD_MAP: pairs */
    } v;
};

struct mpr {
    const uint8_t *pos;
    const uint8_t *end;
};

enum msgread_status {
    MSGREAD_OK = 0,
    MSGREAD_TRUNCATED = -1,   /* the data ends inside an item, or a declared size exceeds what is left */
    MSGREAD_UNSUPPORTED = -2, /* ext types and the reserved byte 0xc1 */
};

static inline void msgread_init(struct mpr *r, const void *data, size_t len)
{
    r->pos = data;
    r->end = r->pos + len;
}

static inline size_t msgread_left(const struct mpr *r)
{
    return (size_t)(r->end - r->pos);
}

/* Reads one item header (a whole scalar, or a container's header). */
int msgread_next(struct mpr *r, struct msgread_item *item);

/* Skips one whole item, containers included, refusing nesting deeper than max_depth.
 * Returns MSGREAD_OK, an msgread_status, or MSGREAD_TOO_DEEP. */
#define MSGREAD_TOO_DEEP (-3)
int msgread_skip(struct mpr *r, int max_depth);

#endif
