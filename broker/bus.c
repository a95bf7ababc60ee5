/* bus: a hiredis connection in subscriber mode, reconnecting by itself.
 *
 * The node's own channel is sharded (SSUBSCRIBE): other nodes SPUBLISH to it, and on a Redis
 * Cluster only the master of its slot carries that traffic. hiredis 0.14 knows only classic
 * pub/sub: it takes an "smessage" for a message of the classic channel of the same name, so the
 * connection SUBSCRIBEs that name too, first (which also puts hiredis in subscriber mode). */
#include "bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "log.h"
#include "redis_link.h"
#include "redis_slot.h"
#include "stats.h"
#include "store_cluster.h"

static struct {
    struct redis_link link;
    int subscribed; /* subscriptions confirmed on this connection */
    char *channels[BUS_CHANNELS];
    bus_message_fn on_message;
    bus_subscribed_fn on_subscribed;
    int cluster; /* on a Redis Cluster */
} bus;

enum { SUBSCRIPTIONS = BUS_CHANNELS + 1 }; /* every channel, and the node's own sharded */

int bus_ready(void)
{
    return bus.link.up && bus.subscribed == SUBSCRIPTIONS;
}

static int is_word(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(word) && memcmp(r->str, word, r->len) == 0;
}

/* Subscribes again, to the master that serves the node's channel now. */
static void resubscribe(const char *why)
{
    log_warn("redis: channels: %s; subscribing again", why);
    if (bus.cluster) store_cluster_refresh_soon();
    redis_link_reset(&bus.link);
}

/* Every reply of the subscriber connection: confirmations, then messages. */
static void on_push(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)privdata;
    const redisReply *r = reply;
    if (r == NULL) return; /* the connection is going away */
    if (r->type == REDIS_REPLY_ERROR) {
        /* on a Redis Cluster: MOVED when the map was stale, CLUSTERDOWN: transient */
        char why[160];
        snprintf(why, sizeof why, "subscription refused (%.120s)", r->str);
        resubscribe(why);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    const redisReply *kind = r->element[0], *channel = r->element[1], *body = r->element[2];
    if ((is_word(kind, "smessage") || is_word(kind, "message")) &&
        channel->type == REDIS_REPLY_STRING && body->type == REDIS_REPLY_STRING) {
        stats.bus_messages_total++;
        bus.on_message(channel->str, channel->len, (const uint8_t *)body->str, body->len);
    } else if ((is_word(kind, "subscribe") || is_word(kind, "ssubscribe")) &&
               ++bus.subscribed == SUBSCRIPTIONS) {
        log_info("redis: subscribed to the node channels");
        bus.on_subscribed();
    } else if (is_word(kind, "sunsubscribe")) {
        bus.subscribed = 0;
        resubscribe("the node channel's slot moved to another master");
    }
}

static void on_up(struct redis_link *link)
{
    bus.subscribed = 0;
    const char *argv[1 + BUS_CHANNELS] = {"SUBSCRIBE"};
    size_t lens[1 + BUS_CHANNELS] = {9};
    for (int i = 0; i < BUS_CHANNELS; i++) {
        argv[1 + i] = bus.channels[i];
        lens[1 + i] = strlen(bus.channels[i]);
    }
    redisAsyncCommandArgv(link->ctx, on_push, NULL, 1 + BUS_CHANNELS, argv, lens);
    const char *own[] = {"SSUBSCRIBE", bus.channels[0]};
    size_t own_lens[] = {10, strlen(bus.channels[0])};
    redisAsyncCommandArgv(link->ctx, on_push, NULL, 2, own, own_lens);
}

static void on_down(struct redis_link *link)
{
    (void)link;
    bus.subscribed = 0;
}

/* On a Redis Cluster: the master of the node channel's slot (a classic PUBLISH on any master
 * reaches every node too), once the slot map says which it is. */
static const char *own_channel_master(const struct redis_link *link)
{
    (void)link;
    return store_cluster_master_of((int)redis_key_slot(bus.channels[0], strlen(bus.channels[0])));
}

/* A master is set up: the slot map is read, the node channel's master may be known now. */
static void on_store_connected(void *state)
{
    (void)state;
    redis_link_connect_soon(&bus.link);
}

int bus_start(struct event_base *base, const struct store_options *options,
              const char *const channels[BUS_CHANNELS], bus_message_fn on_message,
              bus_subscribed_fn on_subscribed)
{
    bus.on_message = on_message;
    bus.on_subscribed = on_subscribed;
    for (int i = 0; i < BUS_CHANNELS; i++) {
        bus.channels[i] = strdup(channels[i]);
        if (bus.channels[i] == NULL) return -1;
    }
    bus.link.name = "channels";
    bus.link.on_up = on_up;
    bus.link.on_down = on_down;
    bus.cluster = options->cluster;
    if (options->cluster) {
        bus.link.address = own_channel_master;
        if (store_on_connected(on_store_connected, NULL) != 0) return -1;
    }
    return redis_link_start(&bus.link, base, options);
}

void bus_stop(void)
{
    redis_link_stop(&bus.link);
    for (int i = 0; i < BUS_CHANNELS; i++) {
        free(bus.channels[i]);
        bus.channels[i] = NULL;
    }
}
