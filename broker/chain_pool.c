/* chain_pool: see chain_pool.h. */
#include "chain_pool.h"

#include <malloc.h>
#include <stdlib.h>

#include <event2/event.h>

/* libevent's smallest chain on 64-bit systems (MIN_BUFFER_SIZE in evbuffer-internal.h): the
 * request it makes for a buffer that is empty, whatever the few bytes first added. */
#define CHAIN_BLOCK 1024

static struct {
    void *blocks[CHAIN_POOL_MAX];
    size_t count;
    size_t usable; /* what malloc_usable_size says of a CHAIN_BLOCK request */
} pool;

static void *pool_malloc(size_t size)
{
    if (size == CHAIN_BLOCK && pool.count > 0) return pool.blocks[--pool.count];
    return malloc(size);
}

static void *pool_realloc(void *block, size_t size)
{
    return realloc(block, size);
}

/* Any block as large as a CHAIN_BLOCK request's is kept: it can serve the next one. */
static void pool_free(void *block)
{
    if (block != NULL && pool.count < CHAIN_POOL_MAX && malloc_usable_size(block) == pool.usable) {
        pool.blocks[pool.count++] = block;
        return;
    }
    free(block);
}

void chain_pool_install(void)
{
    void *probe = malloc(CHAIN_BLOCK);
    if (probe == NULL) return; /* libevent keeps malloc: correct, only slower */
    pool.usable = malloc_usable_size(probe);
    free(probe);
    event_set_mem_functions(pool_malloc, pool_realloc, pool_free);
}

void chain_pool_trim(void)
{
    while (pool.count > 0) free(pool.blocks[--pool.count]);
}

size_t chain_pool_count(void)
{
    return pool.count;
}
