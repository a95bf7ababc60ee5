/* plugin_redis: the plugins' Redis commands, sent through the store; the plugin's callback
 * sees the reply as an mp_redis_reply. */
#ifndef MOONPOST_PLUGIN_REDIS_H
#define MOONPOST_PLUGIN_REDIS_H

#include <stddef.h>

#include "moonpost_plugin.h"

/* api->redis: sends one command through the store; FN gets the converted reply. */
int plugin_redis_command(int argc, const char **argv, const size_t *argv_len, mp_redis_fn fn,
                         void *arg);

/* api->redis_replicated: the same, answered once the replicas confirmed the write. */
int plugin_redis_replicated(int argc, const char **argv, const size_t *argv_len,
                            mp_redis_fn fn, void *arg);

/* Frees the pool of call records (after the store has answered every command). */
void plugin_redis_free(void);

#endif
