/* bus: a hiredis connection in subscriber mode, reconnecting by itself. */
#include "bus.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "log.h"
#include "redis_link.h"
#include "stats.h"
#include "store_cluster.h"

static struct {
    struct redis_link link;
    int subscribed; /* channels confirmed on this connection */
    char *channels[BUS_CHANNELS];
    bus_message_fn on_message;
    bus_subscribed_fn on_subscribed;
} bus;

int bus_ready(void)
{
    return bus.link.up && bus.subscribed == BUS_CHANNELS;
}

static int is_word(const redisReply *r, const char *word)
{
    return r->type == REDIS_REPLY_STRING && r->len == strlen(word) && memcmp(r->str, word, r->len) == 0;
}

/* Every reply of the subscriber connection: confirmations, then messages. */
static void on_push(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)privdata;
    const redisReply *r = reply;
    if (r == NULL) return; /* the connection is going away */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("redis: SUBSCRIBE failed: %s", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    const redisReply *kind = r->element[0], *channel = r->element[1], *body = r->element[2];
    if (is_word(kind, "message") && channel->type == REDIS_REPLY_STRING &&
        body->type == REDIS_REPLY_STRING) {
        stats.bus_messages_total++;
        bus.on_message(channel->str, channel->len, (const uint8_t *)body->str, body->len);
    } else if (is_word(kind, "subscribe") && ++bus.subscribed == BUS_CHANNELS) {
        log_info("redis: subscribed to the node channels");
        bus.on_subscribed();
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
}

static void on_down(struct redis_link *link)
{
    (void)link;
    bus.subscribed = 0;
}

/* On a Redis Cluster: any master (a message PUBLISHed on any node reaches every node). */
static const char *any_master(const struct redis_link *link)
{
    (void)link;
    return store_cluster_addr_for(-1);
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
    if (options->cluster) bus.link.address = any_master;
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
