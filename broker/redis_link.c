/* redis_link: see redis_link.h. */
#include "redis_link.h"

#include <event2/event.h>

#include "log.h"
#include "redis_connect.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void connect_now(struct redis_link *link);

static void schedule_retry(struct redis_link *link)
{
    link->ctx = NULL;
    link->up = 0;
    if (link->stopping) return;
    int ms = link->backoff_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(link->retry, &tv);
    link->backoff_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *r = reply;
    const struct redis_link *link = privdata;
    (void)ac;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_error("redis: AUTH (%s): %s", link->name, r->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *link = ac->data;
    if (status != REDIS_OK) {
        log_warn("redis: %s: cannot connect to %s: %s", link->name, link->addr, ac->errstr);
        schedule_retry(link); /* hiredis frees a context whose connect failed */
        return;
    }
    link->backoff_ms = BACKOFF_MIN_MS;
    if (link->options.password != NULL)
        redisAsyncCommand(link->ctx, on_auth_reply, link, "AUTH %s", link->options.password);
    link->up = 1;
    link->on_up(link);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *link = ac->data;
    if (status != REDIS_OK && !link->stopping)
        log_warn("redis: %s: connection lost: %s", link->name, ac->errstr);
    int was_up = link->up;
    schedule_retry(link);
    if (was_up && link->on_down != NULL) link->on_down(link);
}

static void connect_now(struct redis_link *link)
{
    char err[128];
    link->up = 0;
    const char *addr = link->address != NULL ? link->address(link) : link->options.addr;
    if (addr == NULL) { /* not known yet: soon, without growing the backoff */
        link->ctx = NULL;
        struct timeval tv = {0, (suseconds_t)BACKOFF_MIN_MS * 1000};
        if (!link->stopping) evtimer_add(link->retry, &tv);
        return;
    }
    snprintf(link->addr, sizeof link->addr, "%s", addr);
    link->ctx = redis_connect(link->addr, link->base, on_connect, on_disconnect, err, sizeof err);
    if (link->ctx == NULL) {
        log_warn("redis: %s: cannot connect to %s: %s", link->name, link->addr, err);
        schedule_retry(link);
        return;
    }
    link->ctx->data = link;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    connect_now(arg);
}

int redis_link_start(struct redis_link *link, struct event_base *base,
                     const struct store_options *options)
{
    link->base = base;
    link->options = *options;
    link->backoff_ms = BACKOFF_MIN_MS;
    link->stopping = 0;
    link->retry = evtimer_new(base, on_retry, link);
    if (link->retry == NULL) return -1;
    connect_now(link);
    return 0;
}

void redis_link_stop(struct redis_link *link)
{
    link->stopping = 1;
    if (link->ctx != NULL) redisAsyncFree(link->ctx); /* runs on_disconnect: no retry */
    link->ctx = NULL;
    link->up = 0;
    if (link->retry != NULL) event_free(link->retry);
    link->retry = NULL;
}

void redis_link_reset(struct redis_link *link)
{
    if (link->ctx != NULL && link->up) redisAsyncDisconnect(link->ctx); /* then on_disconnect */
}

void redis_link_connect_soon(struct redis_link *link)
{
    if (link->ctx != NULL || link->stopping || link->retry == NULL) return;
    event_del(link->retry);
    connect_now(link);
}
