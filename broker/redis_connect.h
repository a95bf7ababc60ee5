/* redis_connect: opening an asynchronous hiredis connection from a redis address setting. */
#ifndef MOONPOST_REDIS_CONNECT_H
#define MOONPOST_REDIS_CONNECT_H

#include <hiredis/async.h>

/* Starts connecting to ADDR ("host:port", "host" for port 6379, or "unix:/path.sock"). Returns
 * the context (check ->err), or NULL when out of memory. */
redisAsyncContext *redis_connect(const char *addr);

#endif
