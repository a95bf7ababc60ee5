/* redis_connect: opening an asynchronous hiredis connection from a redis address setting. */
#ifndef MOONPOST_REDIS_CONNECT_H
#define MOONPOST_REDIS_CONNECT_H

#include <hiredis/async.h>

struct event_base;

/* Starts connecting to ADDR ("host:port", "host" for port 6379, or "unix:/path.sock") on BASE,
 * with the connect and disconnect callbacks. Returns the context, or NULL with the reason in
 * ERR (the context is freed). */
redisAsyncContext *redis_connect(const char *addr, struct event_base *base,
                                 redisConnectCallback *on_connect,
                                 redisDisconnectCallback *on_disconnect, char *err,
                                 size_t err_len);

#endif
