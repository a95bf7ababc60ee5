/* plugin_redis_reply: hiredis replies converted to the plugin API's mp_redis_reply, a tree laid
 * out in one array of nodes (the root first, each aggregate's elements side by side), pointing
 * at hiredis's strings instead of copying them. */
#include "plugin_redis_reply.h"

#include <string.h>

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
    case REDIS_REPLY_STRING:
        return MP_REDIS_STRING;
    case REDIS_REPLY_STATUS:
        return MP_REDIS_STATUS;
    case REDIS_REPLY_ERROR:
        return MP_REDIS_ERROR;
    case REDIS_REPLY_INTEGER:
        return MP_REDIS_INTEGER;
    case REDIS_REPLY_NIL:
        return MP_REDIS_NIL;
    case REDIS_REPLY_ARRAY:
        return MP_REDIS_ARRAY;
#ifdef REDIS_REPLY_MAP /* RESP3, hiredis 1.0 and later */
    case REDIS_REPLY_MAP:
        return MP_REDIS_MAP;
    case REDIS_REPLY_SET:
        return MP_REDIS_SET;
    case REDIS_REPLY_DOUBLE:
        return MP_REDIS_DOUBLE;
    case REDIS_REPLY_BOOL:
        return MP_REDIS_BOOL;
#endif
    default:
        return MP_REDIS_OTHER;
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
