/* plugin_redis: the plugins' Redis commands. hiredis replies are converted to the plugin API's
 * own mp_redis_reply before the plugin's callback sees them. */
#ifndef MOONPOST_PLUGIN_REDIS_H
#define MOONPOST_PLUGIN_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "moonpost_plugin.h"

/* How many mp_redis_reply nodes R converts to: R itself and every element below it. */
size_t plugin_redis_nodes(const redisReply *r);

/* Converts R into NODES[0], its elements into the following nodes (plugin_redis_nodes(R) of
 * them). The strings are R's own, not copied. */
void plugin_redis_convert(const redisReply *r, mp_redis_reply *nodes);

/* api->redis: sends one command through the store; FN gets the converted reply. */
int plugin_redis_command(int argc, const char **argv, const size_t *argv_len, mp_redis_fn fn,
                         void *arg);

/* Frees the pool of call records (after the store has answered every command). */
void plugin_redis_free(void);

#endif
