/* plugin_redis: api->redis. Each command borrows a call record from a pool (no allocation per
 * command once warm); the reply is converted (plugin_redis_reply.c) into nodes on the stack,
 * or into one allocation when it has more elements than fit there. */
#include "plugin_redis.h"

#include <stdlib.h>

#include "plugin_redis_reply.h"
#include "store.h"

#define STACK_NODES 16 /* replies up to this many nodes convert without an allocation */

struct redis_call {
    mp_redis_fn fn;
    void *arg;
    struct redis_call *next_free;
};

static struct redis_call *free_calls;

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

typedef int (*command_sender)(int argc, const char **argv, const size_t *argv_len,
                              store_reply_fn fn, void *arg);

static int send_command(command_sender send, int argc, const char **argv,
                        const size_t *argv_len, mp_redis_fn fn, void *arg)
{
    if (argc <= 0 || fn == NULL) return -1;
    struct redis_call *c = free_calls;
    if (c != NULL)
        free_calls = c->next_free;
    else if ((c = malloc(sizeof *c)) == NULL)
        return -1;
    c->fn = fn;
    c->arg = arg;
    if (send(argc, argv, argv_len, on_reply, c) != 0) {
        c->next_free = free_calls;
        free_calls = c;
        return -1;
    }
    return 0;
}

int plugin_redis_command(int argc, const char **argv, const size_t *argv_len, mp_redis_fn fn,
                         void *arg)
{
    return send_command(store_command, argc, argv, argv_len, fn, arg);
}

int plugin_redis_replicated(int argc, const char **argv, const size_t *argv_len,
                            mp_redis_fn fn, void *arg)
{
    return send_command(store_command_replicated, argc, argv, argv_len, fn, arg);
}

void plugin_redis_free(void)
{
    while (free_calls != NULL) {
        struct redis_call *c = free_calls;
        free_calls = c->next_free;
        free(c);
    }
}
