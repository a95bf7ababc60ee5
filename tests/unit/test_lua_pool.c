/* lua_pool: random allocations, resizes and frees checked against a model: every live block
 * keeps its bytes, no two live blocks overlap, freed blocks are reused, and a real Lua state
 * runs on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lua_pool.h"

#define LIVE 2000
#define STEPS 200000

struct block {
    unsigned char *p;
    size_t size;
    unsigned char fill;
};

static uint64_t rng = 88172645463325252ull;
static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Mostly small sizes, now and then one above LUA_POOL_MAX. */
static size_t random_size(void)
{
    return next_random() % 10 == 0 ? LUA_POOL_MAX + 1 + next_random() % 2000
                                   : 1 + next_random() % LUA_POOL_MAX;
}

static void check_block(const struct block *b)
{
    for (size_t i = 0; i < b->size; i++) assert_int_equal(b->p[i], b->fill);
}

static void set_block(struct block *b, size_t size, unsigned char fill)
{
    b->size = size;
    b->fill = fill;
    memset(b->p, fill, size);
}

static int by_address(const void *a, const void *b)
{
    const struct block *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void check_no_overlap(struct block *blocks)
{
    struct block sorted[LIVE];
    size_t n = 0;
    for (size_t i = 0; i < LIVE; i++)
        if (blocks[i].p != NULL) sorted[n++] = blocks[i];
    qsort(sorted, n, sizeof sorted[0], by_address);
    for (size_t i = 1; i < n; i++)
        assert_true(sorted[i - 1].p + sorted[i - 1].size <= sorted[i].p);
}

static void test_random_against_a_model(void **state)
{
    (void)state;
    struct lua_pool pool = {0};
    static struct block blocks[LIVE];
    memset(blocks, 0, sizeof blocks);
    for (int step = 0; step < STEPS; step++) {
        struct block *b = &blocks[next_random() % LIVE];
        unsigned char fill = (unsigned char)(step % 251 + 1);
        if (b->p == NULL) {
            size_t size = random_size();
            b->p = lua_pool_realloc(&pool, NULL, 5 /* a type tag, not a size */, size);
            assert_non_null(b->p);
            set_block(b, size, fill);
        } else if (next_random() % 2 == 0) {
            check_block(b);
            assert_null(lua_pool_realloc(&pool, b->p, b->size, 0));
            b->p = NULL;
        } else {
            check_block(b);
            size_t size = random_size();
            size_t kept = size < b->size ? size : b->size;
            unsigned char old = b->fill;
            b->p = lua_pool_realloc(&pool, b->p, b->size, size);
            assert_non_null(b->p);
            for (size_t i = 0; i < kept; i++) assert_int_equal(b->p[i], old);
            set_block(b, size, fill);
        }
        if (step % 20000 == 0) check_no_overlap(blocks);
    }
    check_no_overlap(blocks);
    for (size_t i = 0; i < LIVE; i++) {
        if (blocks[i].p == NULL) continue;
        check_block(&blocks[i]);
        lua_pool_realloc(&pool, blocks[i].p, blocks[i].size, 0);
    }
    /* every slab emptied went back to its arena but one per class */
    assert_true(pool.slabs_in_use <= LUA_POOL_CLASSES);
    lua_pool_release(&pool);
    assert_int_equal(pool.arena_bytes, 0);
}

static void test_freed_blocks_are_reused(void **state)
{
    (void)state;
    struct lua_pool pool = {0};
    void *a = lua_pool_realloc(&pool, NULL, 0, 40);
    lua_pool_realloc(&pool, a, 40, 0);
    void *b = lua_pool_realloc(&pool, NULL, 0, 33); /* the same class: 33..48 bytes */
    assert_ptr_equal(a, b);
    /* growing within the class keeps the block */
    assert_ptr_equal(lua_pool_realloc(&pool, b, 33, 48), b);
    lua_pool_realloc(&pool, lua_pool_realloc(&pool, NULL, 0, 64), 64, 0);
    size_t slabs = pool.slabs_in_use; /* with the slab of 64-byte blocks, kept though empty */
    for (int i = 0; i < 100000; i++) {
        void *p = lua_pool_realloc(&pool, NULL, 0, 64);
        lua_pool_realloc(&pool, p, 64, 0);
    }
    assert_int_equal(pool.slabs_in_use, slabs);
    lua_pool_release(&pool);
}

static void test_a_burst_is_given_back(void **state)
{
    (void)state;
    struct lua_pool pool = {0};
    enum { BURST = 100000 };
    static void *blocks[BURST];
    void *kept = lua_pool_realloc(&pool, NULL, 0, 24); /* a long-lived block */
    for (int i = 0; i < BURST; i++) {
        blocks[i] = lua_pool_realloc(&pool, NULL, 0, 1 + (size_t)i % LUA_POOL_MAX);
        assert_non_null(blocks[i]);
    }
    size_t burst_slabs = pool.slabs_in_use, mapped = pool.arena_bytes;
    assert_true(burst_slabs * LUA_POOL_SLAB >= (size_t)BURST * 16);
    for (int i = 0; i < BURST; i++)
        lua_pool_realloc(&pool, blocks[i], 1 + (size_t)i % LUA_POOL_MAX, 0);
    /* the slabs of the burst went back: one per class is kept, and the one holding KEPT */
    assert_true(pool.slabs_in_use <= LUA_POOL_CLASSES + 1);
    /* ... and the trim gives their memory to the system */
    size_t given = lua_pool_trim(&pool);
    assert_true(given >= (burst_slabs - LUA_POOL_CLASSES - 1) * (LUA_POOL_SLAB - 4096));
    assert_true(pool.arena_bytes < mapped);
    assert_int_equal(lua_pool_trim(&pool), 0); /* nothing left to give */
    /* the pool still serves after a trim, from given-back slabs too */
    for (int i = 0; i < BURST; i++) {
        blocks[i] = lua_pool_realloc(&pool, NULL, 0, 100);
        assert_non_null(blocks[i]);
        memset(blocks[i], 0x5a, 100);
    }
    for (int i = 0; i < BURST; i++) lua_pool_realloc(&pool, blocks[i], 100, 0);
    lua_pool_realloc(&pool, kept, 24, 0);
    lua_pool_release(&pool);
}

static void *pool_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    return lua_pool_realloc(ud, ptr, osize, nsize);
}

static void test_a_lua_state_runs_on_it(void **state)
{
    (void)state;
    struct lua_pool pool = {0};
    lua_State *L = lua_newstate(pool_alloc, &pool);
    assert_non_null(L);
    luaL_openlibs(L);
    const char *chunk =
        "local t = {}\n"
        "for i = 1, 20000 do t[i] = string.rep('x', i % 300) .. i end\n"
        "local n = 0\n"
        "for i = 1, #t, 7 do t[i] = nil end\n"
        "for i = 1, 20000 do if t[i] then n = n + #t[i] end end\n"
        "collectgarbage()\n"
        "return n";
    assert_int_equal(luaL_dostring(L, chunk), LUA_OK);
    lua_Integer expect = 0;
    for (int i = 1; i <= 20000; i++) {
        if ((i - 1) % 7 == 0) continue;
        char digits[16];
        expect += (i % 300) + snprintf(digits, sizeof digits, "%d", i);
    }
    assert_int_equal(lua_tointeger(L, -1), expect);
    lua_close(L);
    lua_pool_release(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_a_model),
        cmocka_unit_test(test_freed_blocks_are_reused),
        cmocka_unit_test(test_a_burst_is_given_back),
        cmocka_unit_test(test_a_lua_state_runs_on_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
