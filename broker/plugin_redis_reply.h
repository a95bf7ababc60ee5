/* plugin_redis_reply: converting a hiredis reply to the plugin API's mp_redis_reply. */
#ifndef MOONPOST_PLUGIN_REDIS_REPLY_H
#define MOONPOST_PLUGIN_REDIS_REPLY_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "moonpost_plugin.h"

/* How many mp_redis_reply nodes R converts to: R itself and every element below it. */
size_t plugin_redis_nodes(const redisReply *r);

/* Converts R into NODES[0], its elements into the following nodes (plugin_redis_nodes(R) of
 * them). The strings are R's own, not copied. */
void plugin_redis_convert(const redisReply *r, mp_redis_reply *nodes);

#endif
