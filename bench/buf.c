/* buf: growable byte buffers. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define BUF_MIN 512
#define BUF_KEEP 65536 /* an empty buffer larger than this is given back */

uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n) return b->data + b->len;
    if (b->off > 0 && b->cap - (b->len - b->off) >= n) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : BUF_MIN;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) return NULL;
    b->data = data;
    b->cap = cap;
    return b->data + b->len;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
    uint8_t *p = buf_reserve(b, n);
    if (p == NULL) return -1;
    memcpy(p, data, n);
    b->len += n;
    return 0;
}

void buf_compact(struct buf *b)
{
    if (b->off == 0) return;
    if (b->off == b->len) {
        b->off = b->len = 0;
        if (b->cap > BUF_KEEP) buf_free(b);
        return;
    }
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->off = b->cap = 0;
}
