/* bus: a hiredis connection in subscriber mode, reconnecting by itself. */
#include "bus.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "log.h"
#include "redis_connect.h"
#include "stats.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static struct {
    redisAsyncContext *ctx;
    struct event_base *base;
    struct event *retry;
    int backoff_ms;
    int subscribed; /* channels confirmed on this connection */
    int stopping;
    char *channels[BUS_CHANNELS];
    struct store_options options;
    bus_message_fn on_message;
    bus_subscribed_fn on_subscribed;
} bus;

static void connect_now(void);

int bus_ready(void)
{
    return bus.ctx != NULL && bus.subscribed == BUS_CHANNELS;
}

static void schedule_retry(void)
{
    if (bus.stopping) return;
    struct timeval tv = {bus.backoff_ms / 1000, (suseconds_t)(bus.backoff_ms % 1000) * 1000};
    evtimer_add(bus.retry, &tv);
    bus.backoff_ms = bus.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : bus.backoff_ms * 2;
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

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)privdata;
    const redisReply *r = reply;
    if (r != NULL && r->type == REDIS_REPLY_ERROR) log_error("redis: AUTH (channels): %s", r->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        log_warn("redis: channels: cannot connect to %s: %s", bus.options.addr, ac->errstr);
        bus.ctx = NULL; /* hiredis frees a context whose connect failed */
        schedule_retry();
        return;
    }
    bus.backoff_ms = BACKOFF_MIN_MS;
    if (bus.options.password != NULL)
        redisAsyncCommand(bus.ctx, on_auth_reply, NULL, "AUTH %s", bus.options.password);
    const char *argv[1 + BUS_CHANNELS] = {"SUBSCRIBE"};
    size_t lens[1 + BUS_CHANNELS] = {9};
    for (int i = 0; i < BUS_CHANNELS; i++) {
        argv[1 + i] = bus.channels[i];
        lens[1 + i] = strlen(bus.channels[i]);
    }
    redisAsyncCommandArgv(bus.ctx, on_push, NULL, 1 + BUS_CHANNELS, argv, lens);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK && !bus.stopping)
        log_warn("redis: channels: connection lost: %s", ac->errstr);
    bus.ctx = NULL;
    bus.subscribed = 0;
    schedule_retry();
}

static void connect_now(void)
{
    bus.subscribed = 0;
    char err[128];
    bus.ctx = redis_connect(bus.options.addr, bus.base, on_connect, on_disconnect, err,
                            sizeof err);
    if (bus.ctx == NULL) {
        log_warn("redis: channels: cannot connect to %s: %s", bus.options.addr, err);
        schedule_retry();
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    connect_now();
}

int bus_start(struct event_base *base, const struct store_options *options,
              const char *const channels[BUS_CHANNELS], bus_message_fn on_message,
              bus_subscribed_fn on_subscribed)
{
    bus.base = base;
    bus.options = *options;
    bus.on_message = on_message;
    bus.on_subscribed = on_subscribed;
    bus.backoff_ms = BACKOFF_MIN_MS;
    bus.stopping = 0;
    for (int i = 0; i < BUS_CHANNELS; i++) {
        bus.channels[i] = strdup(channels[i]);
        if (bus.channels[i] == NULL) return -1;
    }
    bus.retry = evtimer_new(base, on_retry, NULL);
    if (bus.retry == NULL) return -1;
    connect_now();
    return 0;
}

void bus_stop(void)
{
    bus.stopping = 1;
    if (bus.ctx != NULL) redisAsyncFree(bus.ctx);
    bus.ctx = NULL;
    if (bus.retry != NULL) event_free(bus.retry);
    bus.retry = NULL;
    for (int i = 0; i < BUS_CHANNELS; i++) {
        free(bus.channels[i]);
        bus.channels[i] = NULL;
    }
}
