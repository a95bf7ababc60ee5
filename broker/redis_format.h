/* redis_format: commands in Redis's wire format (RESP), written into one buffer that is reused
 * from command to command (hiredis's own formatting allocates a string for every command). */
#ifndef MOONPOST_REDIS_FORMAT_H
#define MOONPOST_REDIS_FORMAT_H

#include <stddef.h>

struct redis_format_buf {
    char *data;
    size_t cap;
};

/* ARGC words ARGV (lengths ARGV_LEN) as one command in BUF: its length, or -1 out of memory
 * (BUF keeps its older contents then). BUF->data is valid until the next call. */
long redis_format_argv(struct redis_format_buf *buf, int argc, const char **argv,
                       const size_t *argv_len);
void redis_format_free(struct redis_format_buf *buf);

/* The most bytes redis_format_integer writes ("-9223372036854775808"). */
#define REDIS_INTEGER_TEXT_MAX 20
/* V in decimal at AT, as Redis and Lua write it (no terminating 0): the bytes written. */
size_t redis_format_integer(char *at, long long v);

#endif
