/* redis_format: RESP commands into a reused buffer: "*ARGC\r\n" then "$LEN\r\nWORD\r\n" per
 * word. */
#include "redis_format.h"

#include <stdlib.h>
#include <string.h>

#define DECIMAL_MAX 20 /* digits of a 64-bit number */

/* Writes V in decimal at AT: the bytes written. */
static size_t put_decimal(char *at, unsigned long long v)
{
    char digits[DECIMAL_MAX];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) at[i] = digits[n - 1 - i];
    return n;
}

size_t redis_format_integer(char *at, long long v)
{
    if (v >= 0) return put_decimal(at, (unsigned long long)v);
    at[0] = '-';
    return 1 + put_decimal(at + 1, 0ULL - (unsigned long long)v);
}

/* A header ("*N\r\n" or "$N\r\n") at AT: the bytes written. */
static size_t put_header(char *at, char kind, size_t n)
{
    at[0] = kind;
    size_t len = 1 + put_decimal(at + 1, n);
    at[len] = '\r';
    at[len + 1] = '\n';
    return len + 2;
}

#define HEADER_MAX (1 + DECIMAL_MAX + 2)

long redis_format_argv(struct redis_format_buf *buf, int argc, const char **argv,
                       const size_t *argv_len)
{
    if (argc < 0) return -1;
    size_t need = HEADER_MAX;
    for (int i = 0; i < argc; i++) need += HEADER_MAX + argv_len[i] + 2;
    if (need > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < need) cap *= 2;
        char *grown = realloc(buf->data, cap);
        if (grown == NULL) return -1;
        buf->data = grown;
        buf->cap = cap;
    }
    char *at = buf->data;
    at += put_header(at, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        at += put_header(at, '$', argv_len[i]);
        if (argv_len[i] > 0) memcpy(at, argv[i], argv_len[i]);
        at += argv_len[i];
        *at++ = '\r';
        *at++ = '\n';
    }
    return (long)(at - buf->data);
}

void redis_format_free(struct redis_format_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->cap = 0;
}
