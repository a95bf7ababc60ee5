/* redis_reply_arena: hiredis's redisReplyObjectFunctions over a bump allocator. Only a reply's
 * root is ever handed to freeObject (by the reader, or after the callback): it carries its
 * arena in a header just before it, and freeing it empties the arena. */
#include "redis_reply_arena.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define BLOCK_SIZE 16384

struct reply_arena_block {
    struct reply_arena_block *next;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

/* The header of a root: the arena to empty when it is freed. */
struct root {
    struct reply_arena *arena;
    alignas(max_align_t) redisReply reply;
};

static size_t round_up(size_t n)
{
    return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
}

static void *arena_alloc(struct reply_arena *a, size_t n)
{
    n = round_up(n);
    struct reply_arena_block *b = a->blocks;
    if (b == NULL || b->size - a->used < n) {
        size_t size = n > BLOCK_SIZE ? n : BLOCK_SIZE;
        b = malloc(sizeof *b + size);
        if (b == NULL) return NULL;
        b->size = size;
        b->next = a->blocks;
        a->blocks = b;
        a->used = 0;
    }
    void *p = b->data + a->used;
    a->used += n;
    return p;
}

/* Empties A: every block but the oldest is freed. */
static void arena_reset(struct reply_arena *a)
{
    while (a->blocks != NULL && a->blocks->next != NULL) {
        struct reply_arena_block *b = a->blocks;
        a->blocks = b->next;
        free(b);
    }
    a->used = 0;
}

/* A zeroed reply of TYPE for TASK, linked into its parent array. */
static redisReply *new_reply(const redisReadTask *task, int type)
{
    struct reply_arena *a = task->privdata;
    redisReply *r;
    if (task->parent == NULL) {
        struct root *root = arena_alloc(a, sizeof *root);
        if (root == NULL) return NULL;
        root->arena = a;
        r = &root->reply;
    } else {
        r = arena_alloc(a, sizeof *r);
        if (r == NULL) return NULL;
    }
    memset(r, 0, sizeof *r);
    r->type = type;
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    char *copy = arena_alloc(task->privdata, len + 1);
    if (copy == NULL) return NULL;
    memcpy(copy, str, len);
    copy[len] = '\0';
    redisReply *r = new_reply(task, task->type);
    if (r == NULL) return NULL;
    r->str = copy;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    redisReply **element = NULL;
    if (elements > 0) {
        element = arena_alloc(task->privdata, (size_t)elements * sizeof *element);
        if (element == NULL) return NULL;
        memset(element, 0, (size_t)elements * sizeof *element);
    }
    redisReply *r = new_reply(task, REDIS_REPLY_ARRAY);
    if (r == NULL) return NULL;
    r->elements = elements > 0 ? (size_t)elements : 0;
    r->element = element;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_reply(task, REDIS_REPLY_INTEGER);
    if (r != NULL) r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return new_reply(task, REDIS_REPLY_NIL);
}

static void free_root(void *obj)
{
    if (obj == NULL) return;
    struct root *root = (struct root *)((char *)obj - offsetof(struct root, reply));
    arena_reset(root->arena);
}

static redisReplyObjectFunctions arena_functions = {
    create_string, create_array, create_integer, create_nil, free_root,
};

void reply_arena_attach(struct reply_arena *arena, redisReader *reader)
{
    arena_reset(arena);
    reader->fn = &arena_functions;
    reader->privdata = arena;
}

void reply_arena_free(struct reply_arena *arena)
{
    arena_reset(arena);
    free(arena->blocks);
    arena->blocks = NULL;
}
