/* lua_pool: see lua_pool.h. */
#include "lua_pool.h"

#include <stdlib.h>
#include <string.h>

#define SLAB_BYTES (64 * 1024)

struct lua_pool_slab {
    struct lua_pool_slab *next;
    /* blocks follow, aligned to LUA_POOL_GRAIN */
};

/* The header rounded up to the grain, so that every block is aligned like malloc's. */
#define SLAB_HEADER \
    ((sizeof(struct lua_pool_slab) + LUA_POOL_GRAIN - 1) / LUA_POOL_GRAIN * LUA_POOL_GRAIN)

static size_t class_of(size_t size)
{
    return (size - 1) / LUA_POOL_GRAIN;
}

static int pooled(size_t size)
{
    return size > 0 && size <= LUA_POOL_MAX;
}

static void *take(struct lua_pool *pool, size_t size)
{
    size_t c = class_of(size);
    void *block = pool->free[c];
    if (block != NULL) {
        memcpy(&pool->free[c], block, sizeof(void *));
        return block;
    }
    size_t bytes = (c + 1) * LUA_POOL_GRAIN;
    if (pool->next == NULL || (size_t)(pool->end - pool->next) < bytes) {
        struct lua_pool_slab *slab = malloc(SLAB_BYTES);
        if (slab == NULL) return NULL;
        /* the old slab's tail (less than one block of this class) stays unused */
        slab->next = pool->slabs;
        pool->slabs = slab;
        pool->slab_bytes += SLAB_BYTES;
        pool->next = (char *)slab + SLAB_HEADER;
        pool->end = (char *)slab + SLAB_BYTES;
    }
    block = pool->next;
    pool->next += bytes;
    return block;
}

static void give(struct lua_pool *pool, void *block, size_t size)
{
    size_t c = class_of(size);
    memcpy(block, &pool->free[c], sizeof(void *));
    pool->free[c] = block;
}

void *lua_pool_realloc(struct lua_pool *pool, void *ptr, size_t osize, size_t nsize)
{
    if (ptr == NULL) osize = 0; /* Lua passes the object's type in osize then */
    if (nsize == 0) {
        if (pooled(osize)) give(pool, ptr, osize);
        else free(ptr);
        return NULL;
    }
    if (!pooled(osize) && !pooled(nsize)) return realloc(ptr, nsize);
    if (ptr != NULL && pooled(osize) && pooled(nsize) && class_of(osize) == class_of(nsize))
        return ptr;
    void *block = pooled(nsize) ? take(pool, nsize) : malloc(nsize);
    if (block == NULL) return NULL;
    if (ptr != NULL) {
        memcpy(block, ptr, osize < nsize ? osize : nsize);
        if (pooled(osize)) give(pool, ptr, osize);
        else free(ptr);
    }
    return block;
}

void lua_pool_release(struct lua_pool *pool)
{
    while (pool->slabs != NULL) {
        struct lua_pool_slab *next = pool->slabs->next;
        free(pool->slabs);
        pool->slabs = next;
    }
    memset(pool, 0, sizeof *pool);
}
