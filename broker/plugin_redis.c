/* plugin_redis: api->redis. Each command borrows a call record from a pool (no allocation per
 * command once warm); the reply is converted into nodes on the stack, or one allocation when
 * it has more elements than fit there. */
#include "plugin_redis.h"

#include <stdlib.h>
#include <string.h>

#include "store.h"

#define STACK_NODES 16 /* replies up to this many nodes convert without an allocation */

struct redis_call {
    mp_redis_fn fn;
    void *arg;
    struct redis_call *next_free;
};

static struct redis_call *free_calls;

/* A reply with elements (hiredis sets ELEMENTS only on these). */
static int is_aggregate(const redisReply *r)
{
#ifdef REDIS_REPLY_MAP
    if (r->type == REDIS_REPLY_MAP || r->type == REDIS_REPLY_SET || r->type == REDIS_REPLY_PUSH ||
        r->type == REDIS_REPLY_ATTR)
        return 1;
#endif
    return r->type == REDIS_REPLY_ARRAY;
}

size_t plugin_redis_nodes(const redisReply *r)
{
    size_t n = 1;
    if (is_aggregate(r))
        for (size_t i = 0; i < r->elements; i++)
            n += plugin_redis_nodes(r->element[i]);
    return n;
}

static mp_redis_type type_of(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING: return MP_REDIS_STRING;
    case REDIS_REPLY_STATUS: return MP_REDIS_STATUS;
    case REDIS_REPLY_ERROR: return MP_REDIS_ERROR;
    case REDIS_REPLY_INTEGER: return MP_REDIS_INTEGER;
    case REDIS_REPLY_NIL: return MP_REDIS_NIL;
    case REDIS_REPLY_ARRAY: return MP_REDIS_ARRAY;
#ifdef REDIS_REPLY_MAP /* RESP3, hiredis 1.0 and later */
    case REDIS_REPLY_MAP: return MP_REDIS_MAP;
    case REDIS_REPLY_SET: return MP_REDIS_SET;
    case REDIS_REPLY_DOUBLE: return MP_REDIS_DOUBLE;
    case REDIS_REPLY_BOOL: return MP_REDIS_BOOL;
#endif
    default: return MP_REDIS_OTHER;
    }
}

/* Converts R into *OUT, its elements into NEXT onwards; returns the first node not used. */
static mp_redis_reply *convert(const redisReply *r, mp_redis_reply *out, mp_redis_reply *next)
{
    memset(out, 0, sizeof *out);
    out->type = type_of(r);
    switch (out->type) {
    case MP_REDIS_INTEGER:
    case MP_REDIS_BOOL:
        out->integer = r->integer;
        break;
    case MP_REDIS_NIL:
        break;
    case MP_REDIS_ARRAY:
    case MP_REDIS_MAP:
    case MP_REDIS_SET:
        out->count = r->elements;
        break;
    default: /* the types with text */
        out->str = r->str;
        out->len = r->len;
        break;
    }
#ifdef REDIS_REPLY_DOUBLE
    if (out->type == MP_REDIS_DOUBLE) out->number = r->dval;
#endif
    if (!is_aggregate(r)) return next;
    /* an aggregate the plugin may not know (push, attribute) still gets its elements */
    out->count = r->elements;
    mp_redis_reply *elements = next;
    out->elements = elements;
    next += r->elements;
    for (size_t i = 0; i < r->elements; i++)
        next = convert(r->element[i], &elements[i], next);
    return next;
}

void plugin_redis_convert(const redisReply *r, mp_redis_reply *nodes)
{
    convert(r, &nodes[0], nodes + 1);
}

static void on_reply(redisReply *r, const char *error, void *arg)
{
    struct redis_call *c = arg;
    mp_redis_fn fn = c->fn;
    void *fn_arg = c->arg;
    c->next_free = free_calls;
    free_calls = c;
    if (r == NULL) return fn(NULL, error, fn_arg);
    size_t n = plugin_redis_nodes(r);
    mp_redis_reply stack[STACK_NODES];
    mp_redis_reply *nodes = n <= STACK_NODES ? stack : malloc(n * sizeof *nodes);
    if (nodes == NULL) return fn(NULL, "out of memory for the reply", fn_arg);
    plugin_redis_convert(r, nodes);
    fn(nodes, NULL, fn_arg);
    if (nodes != stack) free(nodes);
}

int plugin_redis_command(int argc, const char **argv, const size_t *argv_len, mp_redis_fn fn,
                         void *arg)
{
    if (argc <= 0 || fn == NULL) return -1;
    struct redis_call *c = free_calls;
    if (c != NULL)
        free_calls = c->next_free;
    else if ((c = malloc(sizeof *c)) == NULL)
        return -1;
    c->fn = fn;
    c->arg = arg;
    if (store_command(argc, argv, argv_len, on_reply, c) != 0) {
        c->next_free = free_calls;
        free_calls = c;
        return -1;
    }
    return 0;
}

void plugin_redis_free(void)
{
    while (free_calls != NULL) {
        struct redis_call *c = free_calls;
        free_calls = c->next_free;
        free(c);
    }
}
