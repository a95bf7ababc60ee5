/* lua_pool: see lua_pool.h. */
#include "lua_pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLABS_PER_ARENA (LUA_POOL_ARENA / LUA_POOL_SLAB) /* the first holds the arena's header */

/* A slab: this header, then blocks of one class. A block finds its slab, and a slab its arena,
 * by rounding the address down: both are aligned to their size. */
struct lua_pool_slab {
    struct lua_pool_slab *next, *prev; /* in its class's partial list, or its arena's free list */
    void *free;                        /* blocks given back, threaded through themselves */
    uint32_t live;                     /* blocks in use */
    uint32_t fresh;                    /* blocks never handed out yet (at the end) */
    uint32_t cls;
    uint32_t listed;                   /* in the partial list */
};

struct lua_pool_arena {
    struct lua_pool_arena *next;
    struct lua_pool_slab *free_slabs; /* slabs with no block in use */
    uint32_t free_count;
    uint32_t untouched; /* slabs never used yet (at the end): no page behind them */
    uint8_t dirty[SLABS_PER_ARENA];   /* a free slab whose pages are still the process's */
};

#define HEADER \
    ((sizeof(struct lua_pool_slab) + LUA_POOL_GRAIN - 1) / LUA_POOL_GRAIN * LUA_POOL_GRAIN)

static size_t class_of(size_t size)
{
    return (size - 1) / LUA_POOL_GRAIN;
}

static size_t block_bytes(size_t cls)
{
    return (cls + 1) * LUA_POOL_GRAIN;
}

static uint32_t blocks_per_slab(size_t cls)
{
    return (uint32_t)((LUA_POOL_SLAB - HEADER) / block_bytes(cls));
}

static int pooled(size_t size)
{
    return size > 0 && size <= LUA_POOL_MAX;
}

/* P rounded down to a multiple of ALIGN (a power of two), by pointer arithmetic. */
static void *align_down(void *p, size_t align)
{
    return (char *)p - ((uintptr_t)p & (align - 1));
}

static struct lua_pool_slab *slab_of(void *block)
{
    return align_down(block, LUA_POOL_SLAB);
}

static struct lua_pool_arena *arena_of(void *slab)
{
    return align_down(slab, LUA_POOL_ARENA);
}

static size_t slab_index(struct lua_pool_slab *s)
{
    return ((uintptr_t)s - (uintptr_t)arena_of(s)) / LUA_POOL_SLAB;
}

/* ---- arenas ---- */

/* LUA_POOL_ARENA bytes aligned to their size: twice that mapped, the rest unmapped. */
static struct lua_pool_arena *map_arena(struct lua_pool *pool)
{
    size_t span = 2 * LUA_POOL_ARENA;
    char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    char *start = align_down(raw + LUA_POOL_ARENA - 1, LUA_POOL_ARENA);
    size_t head = (size_t)(start - raw), tail = span - head - LUA_POOL_ARENA;
    if (head > 0) munmap(raw, head);
    if (tail > 0) munmap(start + LUA_POOL_ARENA, tail);
    struct lua_pool_arena *a = (struct lua_pool_arena *)(void *)start;
    a->untouched = (uint32_t)SLABS_PER_ARENA - 1;
    a->next = pool->arenas;
    pool->arenas = a;
    pool->arena_bytes += LUA_POOL_ARENA;
    return a;
}

static struct lua_pool_slab *take_slab(struct lua_pool *pool)
{
    struct lua_pool_arena *a = pool->arenas;
    while (a != NULL && a->free_slabs == NULL && a->untouched == 0) a = a->next;
    if (a == NULL && (a = map_arena(pool)) == NULL) return NULL;
    struct lua_pool_slab *s;
    if (a->free_slabs != NULL) {
        s = a->free_slabs;
        a->free_slabs = s->next;
        a->free_count--;
        a->dirty[slab_index(s)] = 0;
    } else {
        s = (struct lua_pool_slab *)((char *)a + (SLABS_PER_ARENA - a->untouched) * LUA_POOL_SLAB);
        a->untouched--;
    }
    pool->slabs_in_use++;
    return s;
}

static void give_slab(struct lua_pool *pool, struct lua_pool_slab *s)
{
    struct lua_pool_arena *a = arena_of(s);
    s->next = a->free_slabs;
    a->free_slabs = s;
    a->free_count++;
    a->dirty[slab_index(s)] = 1;
    pool->slabs_in_use--;
}

/* ---- slabs of a class ---- */

static void list_add(struct lua_pool *pool, struct lua_pool_slab *s)
{
    s->prev = NULL;
    s->next = pool->partial[s->cls];
    if (s->next != NULL) s->next->prev = s;
    pool->partial[s->cls] = s;
    s->listed = 1;
}

static void list_remove(struct lua_pool *pool, struct lua_pool_slab *s)
{
    if (s->prev != NULL) s->prev->next = s->next;
    else pool->partial[s->cls] = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    s->listed = 0;
}

static struct lua_pool_slab *new_slab(struct lua_pool *pool, size_t cls)
{
    struct lua_pool_slab *s = take_slab(pool);
    if (s == NULL) return NULL;
    memset(s, 0, sizeof *s);
    s->cls = (uint32_t)cls;
    s->fresh = blocks_per_slab(cls);
    list_add(pool, s);
    return s;
}

static void *take(struct lua_pool *pool, size_t size)
{
    size_t cls = class_of(size);
    struct lua_pool_slab *s = pool->partial[cls];
    if (s == NULL && (s = new_slab(pool, cls)) == NULL) return NULL;
    void *block;
    if (s->free != NULL) {
        block = s->free;
        memcpy(&s->free, block, sizeof(void *));
    } else {
        block = (char *)s + HEADER + (size_t)(blocks_per_slab(cls) - s->fresh) * block_bytes(cls);
        s->fresh--;
    }
    s->live++;
    if (s->free == NULL && s->fresh == 0) list_remove(pool, s); /* full */
    return block;
}

static void give(struct lua_pool *pool, void *block)
{
    struct lua_pool_slab *s = slab_of(block);
    memcpy(block, &s->free, sizeof(void *));
    s->free = block;
    s->live--;
    if (!s->listed) list_add(pool, s);
    /* an empty slab goes back to its arena, unless it is its class's only one with room */
    if (s->live == 0 && (s->prev != NULL || s->next != NULL)) {
        list_remove(pool, s);
        give_slab(pool, s);
    }
}

void *lua_pool_realloc(struct lua_pool *pool, void *ptr, size_t osize, size_t nsize)
{
    if (ptr == NULL) osize = 0; /* Lua passes the object's type in osize then */
    if (nsize == 0) {
        if (pooled(osize)) give(pool, ptr);
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
        if (pooled(osize)) give(pool, ptr);
        else free(ptr);
    }
    return block;
}

size_t lua_pool_trim(struct lua_pool *pool)
{
    size_t given = 0;
    struct lua_pool_arena **link = &pool->arenas;
    while (*link != NULL) {
        struct lua_pool_arena *a = *link;
        int empty = a->free_count + a->untouched == SLABS_PER_ARENA - 1;
        if (empty && (a != pool->arenas || a->next != NULL)) {
            *link = a->next;
            pool->arena_bytes -= LUA_POOL_ARENA;
            given += (size_t)a->free_count * LUA_POOL_SLAB;
            munmap(a, LUA_POOL_ARENA);
            continue;
        }
        for (struct lua_pool_slab *s = a->free_slabs; s != NULL; s = s->next) {
            size_t i = slab_index(s);
            if (!a->dirty[i]) continue;
            /* the slab's header stays: the list runs through it */
            char *pages = (char *)s + 4096;
            if (madvise(pages, LUA_POOL_SLAB - 4096, MADV_DONTNEED) == 0) {
                a->dirty[i] = 0;
                given += LUA_POOL_SLAB - 4096;
            }
        }
        link = &a->next;
    }
    return given;
}

void lua_pool_release(struct lua_pool *pool)
{
    while (pool->arenas != NULL) {
        struct lua_pool_arena *a = pool->arenas;
        pool->arenas = a->next;
        munmap(a, LUA_POOL_ARENA);
    }
    memset(pool, 0, sizeof *pool);
}
