/* redis_link: a hiredis connection of its own beside the store's, that reconnects by itself
 * with capped backoff: the node's channels (bus.c) and its heartbeat (cluster.c), which must
 * not wait behind the store's commands. */
#ifndef MOONPOST_REDIS_LINK_H
#define MOONPOST_REDIS_LINK_H

#include <hiredis/async.h>

#include "store.h"

struct event;
struct event_base;
struct redis_link;

/* Connected (AUTH, when there is a password, already sent): the place for the link's first
 * commands. */
typedef void (*redis_link_up_fn)(struct redis_link *link);
/* The connection is gone (lost, or refused); a reconnect is scheduled. */
typedef void (*redis_link_down_fn)(struct redis_link *link);

/* Where the link connects now (on a Redis Cluster: the master it needs, from the slot map), or
 * NULL when that is not known yet: the link asks again a moment later. */
typedef const char *(*redis_link_address_fn)(const struct redis_link *link);

struct redis_link {
    const char *name; /* in log lines: "channels", "heartbeat" */
    redis_link_address_fn address; /* none: options.addr */
    redis_link_up_fn on_up;
    redis_link_down_fn on_down; /* may be NULL */
    redisAsyncContext *ctx;     /* NULL while not connected */
    int up;                     /* connected (on_up ran) */
    struct store_options options; /* as started */
    char addr[96];              /* connected or connecting to */
    /* private */
    struct event_base *base;
    struct event *retry;
    int backoff_ms;
    int stopping;
};

/* Starts connecting LINK (its name and callbacks set) to the Redis of OPTIONS (whose strings
 * must outlive it) on BASE. 0 or -1. */
int redis_link_start(struct redis_link *link, struct event_base *base,
                     const struct store_options *options);
void redis_link_stop(struct redis_link *link);
/* Drops the connection and connects again (to where address says now). */
void redis_link_reset(struct redis_link *link);
/* When LINK is waiting to connect: connects now (its address may be known now). */
void redis_link_connect_soon(struct redis_link *link);

#endif
