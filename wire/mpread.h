/* mpread: a bounds-checked MessagePack reader that never allocates.
 *
 * Every declared length or element count is checked against the bytes that are left before
 * the caller sees it, so a 5-byte body cannot ask anyone for gigabytes. */
#ifndef MOONPOST_MPREAD_H
#define MOONPOST_MPREAD_H

#include <stddef.h>
#include <stdint.h>

enum mpr_type { MPR_NIL, MPR_BOOL, MPR_INT, MPR_UINT, MPR_FLOAT, MPR_STR, MPR_BIN, MPR_ARRAY, MPR_MAP };

struct mpr_item {
    enum mpr_type type;
    union {
        int boolean;
        int64_t i;  /* MPR_INT: negative integers only */
        uint64_t u; /* MPR_UINT */
        double f;
        struct {
            const uint8_t *ptr;
            uint32_t len;
        } str;          /* MPR_STR, MPR_BIN */
        uint32_t count; /* MPR_ARRAY: elements, MPR_MAP: pairs */
    } v;
};

struct mpr {
    const uint8_t *pos;
    const uint8_t *end;
};

enum mpr_status {
    MPR_OK = 0,
    MPR_TRUNCATED = -1,   /* the data ends inside an item, or a declared size exceeds what is left */
    MPR_UNSUPPORTED = -2, /* ext types and the reserved byte 0xc1 */
};

static inline void mpr_init(struct mpr *r, const void *data, size_t len)
{
    r->pos = data;
    r->end = r->pos + len;
}

static inline size_t mpr_left(const struct mpr *r)
{
    return (size_t)(r->end - r->pos);
}

/* Reads one item header (a whole scalar, or a container's header). */
int mpr_next(struct mpr *r, struct mpr_item *item);

/* Skips one whole item, containers included, refusing nesting deeper than max_depth.
 * Returns MPR_OK, an mpr_status, or MPR_TOO_DEEP. */
#define MPR_TOO_DEEP (-3)
int mpr_skip(struct mpr *r, int max_depth);

#endif
