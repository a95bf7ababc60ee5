/* chain_pool: see chain_pool.h. */
#include "chain_pool.h"

#include <malloc.h>
#include <stdlib.h>

#include <event2/event.h>

/* libevent's chain sizes on 64-bit systems: MIN_BUFFER_SIZE (evbuffer-internal.h), doubled
 * for a larger frame or for the chain after a full one, up to 8 KiB. */
#define CHAIN_MIN 1024
#define CHAIN_SIZES 4 /* 1, 2, 4 and 8 KiB */
#define CAPACITY(i) (CHAIN_POOL_BYTES / ((size_t)CHAIN_MIN << (i)))

static void *slots[CAPACITY(0) + CAPACITY(1) + CAPACITY(2) + CAPACITY(3)];

static struct {
    struct {
        void **blocks; /* CAPACITY(i) slots of `slots` */
        size_t count;
        size_t usable; /* what malloc_usable_size says of a block of this size */
    } size[CHAIN_SIZES];
    size_t bytes;
} pool;

/* The size class of a request, or -1. */
static int class_of_request(size_t size)
{
    for (int i = 0; i < CHAIN_SIZES; i++)
        if (size == (size_t)CHAIN_MIN << i) return i;
    return -1;
}

/* The size class of a block: any block as large as a class's requests can serve the next. */
static int class_of_block(void *block)
{
    size_t usable = malloc_usable_size(block);
    for (int i = 0; i < CHAIN_SIZES; i++)
        if (usable == pool.size[i].usable) return i;
    return -1;
}

static void *pool_malloc(size_t size)
{
    int i = class_of_request(size);
    if (i < 0 || pool.size[i].count == 0) return malloc(size);
    pool.bytes -= size;
    return pool.size[i].blocks[--pool.size[i].count];
}

static void *pool_realloc(void *block, size_t size)
{
    return realloc(block, size);
}

static void pool_free(void *block)
{
    int i = block == NULL ? -1 : class_of_block(block);
    if (i < 0 || pool.bytes + ((size_t)CHAIN_MIN << i) > CHAIN_POOL_BYTES) {
        free(block);
        return;
    }
    pool.size[i].blocks[pool.size[i].count++] = block;
    pool.bytes += (size_t)CHAIN_MIN << i;
}

void chain_pool_install(void)
{
    void **next = slots;
    for (int i = 0; i < CHAIN_SIZES; i++) {
        void *probe = malloc((size_t)CHAIN_MIN << i);
        if (probe == NULL) return; /* libevent keeps malloc: correct, only slower */
        pool.size[i].usable = malloc_usable_size(probe);
        free(probe);
        pool.size[i].blocks = next;
        next += CAPACITY(i);
    }
    event_set_mem_functions(pool_malloc, pool_realloc, pool_free);
}

void chain_pool_trim(void)
{
    for (int i = 0; i < CHAIN_SIZES; i++)
        while (pool.size[i].count > 0) free(pool.size[i].blocks[--pool.size[i].count]);
    pool.bytes = 0;
}

size_t chain_pool_count(void)
{
    size_t count = 0;
    for (int i = 0; i < CHAIN_SIZES; i++) count += pool.size[i].count;
    return count;
}

size_t chain_pool_bytes(void)
{
    return pool.bytes;
}
