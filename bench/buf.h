/* buf: a growable byte buffer with a read offset, for one connection's input and output. */
#ifndef MOONPOST_BENCH_BUF_H
#define MOONPOST_BENCH_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len; /* bytes held, counted from data */
    size_t off; /* bytes already consumed (written out, or parsed) */
    size_t cap;
};

/* Makes room for N more bytes; returns a pointer to where they go, or NULL when out of memory. */
uint8_t *buf_reserve(struct buf *b, size_t n);

/* Appends N bytes. Returns 0, or -1 when out of memory. */
int buf_append(struct buf *b, const void *data, size_t n);

/* Drops consumed bytes; frees a large buffer once it is empty so idle clients stay small. */
void buf_compact(struct buf *b);

void buf_free(struct buf *b);

static inline size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}

#endif
