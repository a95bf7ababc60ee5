/* lua_pool: the allocator behind a Lua state's small blocks. A request allocates and frees
 * hundreds of small strings, tables and closures; served by glibc each costs a search of its
 * bins (fastbins are off: see main.c), here a pop from a free list of its size class. Blocks
 * above LUA_POOL_MAX bytes go to malloc. Memory taken from malloc for small blocks is kept for
 * reuse until the state is closed: the pool holds its peak of small blocks. */
#ifndef MOONPOST_LUA_POOL_H
#define MOONPOST_LUA_POOL_H

#include <stddef.h>

#define LUA_POOL_GRAIN 16 /* size classes: 16, 32, ... LUA_POOL_MAX bytes */
#define LUA_POOL_MAX 256
#define LUA_POOL_CLASSES (LUA_POOL_MAX / LUA_POOL_GRAIN)

struct lua_pool_slab;

struct lua_pool {
    void *free[LUA_POOL_CLASSES];  /* per class, a list threaded through the free blocks */
    struct lua_pool_slab *slabs;   /* every slab, for lua_pool_release */
    char *next, *end;              /* the untouched rest of the newest slab */
    size_t slab_bytes;             /* taken from malloc for small blocks */
};

/* A lua_Alloc on POOL: frees PTR (of OSIZE bytes) when NSIZE is 0, else allocates or resizes
 * to NSIZE bytes. PTR's old size must be OSIZE exactly (Lua guarantees it). NULL on failure,
 * PTR untouched then. */
void *lua_pool_realloc(struct lua_pool *pool, void *ptr, size_t osize, size_t nsize);
/* Gives every slab back to malloc: after lua_close, when no block is in use. */
void lua_pool_release(struct lua_pool *pool);

#endif
