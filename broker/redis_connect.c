/* redis_connect: one way to turn the `redis` setting into a hiredis connection. */
#include "redis_connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>

static redisAsyncContext *open_context(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0) return redisAsyncConnectUnix(addr + 5);
    char host[256];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    int port = 6379;
    if (colon != NULL) {
        *colon = '\0';
        port = (int)strtol(colon + 1, NULL, 10);
    }
    return redisAsyncConnect(host, port);
}

redisAsyncContext *redis_connect(const char *addr, struct event_base *base,
                                 redisConnectCallback *on_connect,
                                 redisDisconnectCallback *on_disconnect, char *err,
                                 size_t err_len)
{
    redisAsyncContext *ctx = open_context(addr);
    if (ctx == NULL || ctx->err) {
        snprintf(err, err_len, "%s", ctx != NULL ? ctx->errstr : "out of memory");
        if (ctx != NULL) redisAsyncFree(ctx);
        return NULL;
    }
    redisLibeventAttach(ctx, base);
    redisAsyncSetConnectCallback(ctx, on_connect);
    redisAsyncSetDisconnectCallback(ctx, on_disconnect);
    return ctx;
}
