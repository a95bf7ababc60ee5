/* buf: the growable byte buffers behind a client's input, output and dispatch copies. */
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"

/* Never moves the data within the buffer (callers keep offsets of frames being encoded);
 * compaction is explicit, at points where no offset is held. */
int mp_buf_reserve(struct mp_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return -1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int mp_buf_append(struct mp_buf *b, const void *data, size_t len)
{
    if (len == 0) return 0;
    if (mp_buf_reserve(b, len) != 0) return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void mp_buf_consume(struct mp_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) b->off = b->len = 0;
}

void mp_buf_compact(struct mp_buf *b)
{
    if (b->off == 0) return;
    size_t used = mp_buf_used(b);
    memmove(b->data, b->data + b->off, used);
    b->off = 0;
    b->len = used;
}

void mp_buf_reset(struct mp_buf *b)
{
    b->off = b->len = 0;
}

void mp_buf_free(struct mp_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
