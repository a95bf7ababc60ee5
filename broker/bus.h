/* bus: the node's second Redis connection, SUBSCRIBEd to its channels (a subscribed connection
 * can do nothing else). Publishing goes through the store like any command. */
#ifndef MOONPOST_BUS_H
#define MOONPOST_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct event_base;

/* A message on one of the channels. */
typedef void (*bus_message_fn)(const char *channel, size_t channel_len, const uint8_t *msg,
                               size_t len);
/* Every channel is subscribed, after each (re)connect: what was published meanwhile is lost. */
typedef void (*bus_subscribed_fn)(void);

#define BUS_CHANNELS 2

/* Connects on BASE to the Redis of OPTIONS (its strings must outlive the bus), subscribes to
 * CHANNELS (copied), the first, the node's own, both classic and sharded (SSUBSCRIBE: what
 * other nodes SPUBLISH to it), and keeps reconnecting with capped backoff. */
int bus_start(struct event_base *base, const struct store_options *options,
              const char *const channels[BUS_CHANNELS], bus_message_fn on_message,
              bus_subscribed_fn on_subscribed);
void bus_stop(void);
/* Subscribed to every channel now. */
int bus_ready(void);

#endif
