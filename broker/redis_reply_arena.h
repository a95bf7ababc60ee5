/* redis_reply_arena: hiredis replies built in one arena per connection instead of a malloc per
 * object and string. hiredis frees each reply after its callback returns, before it builds the
 * next, so the arena is emptied then and its first block serves the next reply. */
#ifndef MOONPOST_REDIS_REPLY_ARENA_H
#define MOONPOST_REDIS_REPLY_ARENA_H

#include <hiredis/read.h>

struct reply_arena_block;

struct reply_arena {
    struct reply_arena_block *blocks; /* the newest first; the last one is kept when emptied */
    size_t used;                      /* bytes taken in the newest */
};

/* READER's replies (a context's: ctx->c.reader) are built in ARENA from now on. ARENA must
 * outlive READER (hiredis frees a reply it was building when the reader goes). A reply is then
 * valid until it is freed, which the next reply must wait for (an async context frees each
 * after its callback): copy what outlives it, and never hand one to freeReplyObject. */
void reply_arena_attach(struct reply_arena *arena, redisReader *reader);
/* Frees every block (no context may be using ARENA). */
void reply_arena_free(struct reply_arena *arena);

#endif
