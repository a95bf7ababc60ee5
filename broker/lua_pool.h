/* lua_pool: the allocator behind a Lua state's small blocks. A request allocates and frees
 * hundreds of small strings, tables and closures; served by glibc each costs a search of its
 * bins (fastbins are off: see main.c), here a pop from a free list.
 *
 * Blocks of one size class (16, 32, ... LUA_POOL_MAX bytes) come from 16 KiB slabs of their
 * own, carved from 1 MiB arenas mapped from the system. A slab whose blocks are all free goes
 * back to its arena; lua_pool_trim (when the broker is idle) hands the free slabs' pages back
 * to the system and unmaps the arenas left empty, so what a burst took is given back once the
 * collector has freed it. Blocks above LUA_POOL_MAX bytes go to malloc. */
#ifndef MOONPOST_LUA_POOL_H
#define MOONPOST_LUA_POOL_H

#include <stddef.h>

#define LUA_POOL_GRAIN 16
#define LUA_POOL_MAX 256
#define LUA_POOL_CLASSES (LUA_POOL_MAX / LUA_POOL_GRAIN)
#define LUA_POOL_SLAB ((size_t)16 << 10)  /* bytes per slab, and its alignment */
#define LUA_POOL_ARENA ((size_t)1 << 20)  /* bytes per arena, and its alignment */

struct lua_pool_slab;
struct lua_pool_arena;

struct lua_pool {
    struct lua_pool_slab *partial[LUA_POOL_CLASSES]; /* per class, the slabs with a free block */
    struct lua_pool_arena *arenas;                   /* every arena */
    size_t slabs_in_use;                             /* slabs holding blocks */
    size_t arena_bytes;                              /* mapped */
};

/* A lua_Alloc on POOL: frees PTR (of OSIZE bytes) when NSIZE is 0, else allocates or resizes
 * to NSIZE bytes. PTR's old size must be OSIZE exactly (Lua guarantees it). NULL on failure,
 * PTR untouched then. */
void *lua_pool_realloc(struct lua_pool *pool, void *ptr, size_t osize, size_t nsize);
/* Hands the pages of the free slabs back to the system, and unmaps the arenas with no slab in
 * use (one is kept). Returns the bytes given back. */
size_t lua_pool_trim(struct lua_pool *pool);
/* Unmaps every arena: after lua_close, when no block is in use. */
void lua_pool_release(struct lua_pool *pool);

#endif
