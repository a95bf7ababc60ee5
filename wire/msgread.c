/* msgread: decoding of MessagePack item headers with every size checked against the input. */
#include "msgread.h"

#include <string.h>

static uint64_t load_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Takes n bytes of header payload; fails when they are not there. */
static int take(struct mpr *r, size_t n, const uint8_t **out)
{
    if (msgread_left(r) < n) return MSGREAD_TRUNCATED;
    *out = r->pos;
    r->pos += n;
    return MSGREAD_OK;
}

static int read_uint(struct mpr *r, int n, uint64_t *v)
{
    const uint8_t *p;
    if (take(r, (size_t)n, &p) != MSGREAD_OK) return MSGREAD_TRUNCATED;
    *v = load_be(p, n);
    return MSGREAD_OK;
}

static int read_bytes(struct mpr *r, struct msgread_item *item, enum msgread_type type, uint64_t len)
{
    if (len > msgread_left(r)) return MSGREAD_TRUNCATED;
    item->type = type;
    item->v.str.ptr = r->pos;
    item->v.str.len = (uint32_t)len;
    r->pos += len;
    return MSGREAD_OK;
}

/* A container of n elements needs at least one byte per element. */
static int read_container(struct mpr *r, struct msgread_item *item, enum msgread_type type, uint64_t n)
{
    uint64_t min_bytes = type == MSGREAD_MAP ? n * 2 : n;
    if (min_bytes > msgread_left(r)) return MSGREAD_TRUNCATED;
    item->type = type;
    item->v.count = (uint32_t)n;
    return MSGREAD_OK;
}

static int read_sized(struct mpr *r, struct msgread_item *item, enum msgread_type type, int size_bytes)
{
    uint64_t n;
    if (read_uint(r, size_bytes, &n) != MSGREAD_OK) return MSGREAD_TRUNCATED;
    if (type == MSGREAD_STR || type == MSGREAD_BIN) return read_bytes(r, item, type, n);
    return read_container(r, item, type, n);
}

static int read_signed(struct mpr *r, struct msgread_item *item, int n)
{
    uint64_t raw;
    if (read_uint(r, n, &raw) != MSGREAD_OK) return MSGREAD_TRUNCATED;
    int64_t v;
    switch (n) {
    case 1: v = (int64_t)(raw ^ 0x80) - 0x80; break;
    case 2: v = (int16_t)raw; break;
    case 4: v = (int32_t)raw; break;
    default: v = (int64_t)raw; break;
    }
    if (v >= 0) {
        item->type = MSGREAD_UINT;
        item->v.u = (uint64_t)v;
    } else {
        item->type = MSGREAD_INT;
        item->v.i = v;
    }
    return MSGREAD_OK;
}

static int read_float(struct mpr *r, struct msgread_item *item, int n)
{
    uint64_t raw;
    if (read_uint(r, n, &raw) != MSGREAD_OK) return MSGREAD_TRUNCATED;
    item->type = MSGREAD_FLOAT;
    if (n == 4) {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof f);
        item->v.f = f;
    } else {
        memcpy(&item->v.f, &raw, sizeof item->v.f);
    }
    return MSGREAD_OK;
}

int msgread_next(struct mpr *r, struct msgread_item *item)
{
    if (r->pos >= r->end) return MSGREAD_TRUNCATED;
    uint8_t b = *r->pos++;
    if (b <= 0x7f) {
        item->type = MSGREAD_UINT;
        item->v.u = b;
        return MSGREAD_OK;
    }
    if (b >= 0xe0) {
        item->type = MSGREAD_INT;
        item->v.i = (int64_t)b - 256; /* negative fixint */
        return MSGREAD_OK;
    }
    if ((b & 0xf0) == 0x80) return read_container(r, item, MSGREAD_MAP, b & 0x0f);
    if ((b & 0xf0) == 0x90) return read_container(r, item, MSGREAD_ARRAY, b & 0x0f);
    if ((b & 0xe0) == 0xa0) return read_bytes(r, item, MSGREAD_STR, b & 0x1f);

    uint64_t u;
    switch (b) {
    case 0xc0: item->type = MSGREAD_NIL; return MSGREAD_OK;
    case 0xc2:
    case 0xc3:
        item->type = MSGREAD_BOOL;
        item->v.boolean = b == 0xc3;
        return MSGREAD_OK;
    case 0xc4: return read_sized(r, item, MSGREAD_BIN, 1);
    case 0xc5: return read_sized(r, item, MSGREAD_BIN, 2);
    case 0xc6: return read_sized(r, item, MSGREAD_BIN, 4);
    case 0xca: return read_float(r, item, 4);
    case 0xcb: return read_float(r, item, 8);
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (read_uint(r, 1 << (b - 0xcc), &u) != MSGREAD_OK) return MSGREAD_TRUNCATED;
        item->type = MSGREAD_UINT;
        item->v.u = u;
        return MSGREAD_OK;
    case 0xd0: return read_signed(r, item, 1);
    case 0xd1: return read_signed(r, item, 2);
    case 0xd2: return read_signed(r, item, 4);
    case 0xd3: return read_signed(r, item, 8);
    case 0xd9: return read_sized(r, item, MSGREAD_STR, 1);
    case 0xda: return read_sized(r, item, MSGREAD_STR, 2);
    case 0xdb: return read_sized(r, item, MSGREAD_STR, 4);
    case 0xdc: return read_sized(r, item, MSGREAD_ARRAY, 2);
    case 0xdd: return read_sized(r, item, MSGREAD_ARRAY, 4);
    case 0xde: return read_sized(r, item, MSGREAD_MAP, 2);
    case 0xdf: return read_sized(r, item, MSGREAD_MAP, 4);
    default: return MSGREAD_UNSUPPORTED; /* 0xc1, ext and fixext */
    }
}

int msgread_skip(struct mpr *r, int max_depth)
{
    struct msgread_item item;
    int rc = msgread_next(r, &item);
    if (rc != MSGREAD_OK) return rc;
    if (item.type != MSGREAD_ARRAY && item.type != MSGREAD_MAP) return MSGREAD_OK;
    if (max_depth < 1) return MSGREAD_TOO_DEEP;
    uint64_t n = item.type == MSGREAD_MAP ? (uint64_t)item.v.count * 2 : item.v.count;
    for (uint64_t i = 0; i < n; i++) {
        rc = msgread_skip(r, max_depth - 1);
        if (rc != MSGREAD_OK) return rc;
    }
    return MSGREAD_OK;
}
