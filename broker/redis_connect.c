/* redis_connect: one way to turn the `redis` setting into a hiredis connection. */
#include "redis_connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

redisAsyncContext *redis_connect(const char *addr)
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
