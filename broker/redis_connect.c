/* redis_connect: one way to turn the `redis` setting into a hiredis connection, and the
 * connection's events on libevent. */
#include "redis_connect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/sds.h>

/* hiredis reads at most 16 KiB per call, and its own libevent adapter reads once per loop pass:
 * a broker whose pass reads more requests from its clients than 16 KiB of replies answer
 * falls behind Redis for good (requests pile up in Redis's socket, replies in the broker's).
 * This adapter reads until the socket is empty, up to REPLY_READS_PER_PASS reads. */
#define REPLY_READS_PER_PASS 64

/* hiredis frees its output buffer after each whole write and grows a new one by realloc for
 * the next commands: a free and several reallocs per loop pass. This adapter writes first and
 * empties the buffer in place, as long as it is no larger than this (a burst's larger buffer
 * is left to hiredis to free). */
#define OUTPUT_KEPT_MAX ((size_t)64 * 1024)

struct redis_events {
    redisAsyncContext *ctx;
    struct event *rev, *wev;
    int reading; /* inside on_readable: cleanup leaves the freeing to it */
    int freed;   /* the context was freed while reading */
};

static void free_events(struct redis_events *e)
{
    event_free(e->rev);
    event_free(e->wev);
    free(e);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct redis_events *e = arg;
    e->reading = 1;
    for (int i = 0; i < REPLY_READS_PER_PASS; i++) {
        redisAsyncHandleRead(e->ctx); /* its callbacks may free the context */
        int left = 0;
        if (e->freed || ioctl(fd, FIONREAD, &left) != 0 || left <= 0) break;
    }
    e->reading = 0;
    if (e->freed) free_events(e);
}

/* Writes what C has queued and keeps its buffer; hiredis's own write, right after, sees the
 * rest (or nothing) and does its bookkeeping: events, and any error, which it reports. */
static void write_keeping_buffer(redisContext *c)
{
    size_t len = sdslen(c->obuf);
    if (!(c->flags & REDIS_CONNECTED) || len == 0 || sdsalloc(c->obuf) > OUTPUT_KEPT_MAX) return;
    ssize_t n = write(c->fd, c->obuf, len);
    if (n == (ssize_t)len)
        sdsclear(c->obuf);
    else if (n > 0)
        sdsrange(c->obuf, (int)n, -1);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    redisAsyncContext *ctx = ((struct redis_events *)arg)->ctx;
    write_keeping_buffer(&ctx->c);
    redisAsyncHandleWrite(ctx);
}

static void add_read(void *data)
{
    event_add(((struct redis_events *)data)->rev, NULL);
}

static void del_read(void *data)
{
    event_del(((struct redis_events *)data)->rev);
}

static void add_write(void *data)
{
    event_add(((struct redis_events *)data)->wev, NULL);
}

static void del_write(void *data)
{
    event_del(((struct redis_events *)data)->wev);
}

static void cleanup(void *data)
{
    struct redis_events *e = data;
    if (!e->reading) {
        free_events(e);
        return;
    }
    event_del(e->rev); /* on_readable frees them once it is back */
    event_del(e->wev);
    e->freed = 1;
}

static int attach(redisAsyncContext *ctx, struct event_base *base)
{
    struct redis_events *e = calloc(1, sizeof *e);
    if (e == NULL) return -1;
    e->ctx = ctx;
    e->rev = event_new(base, ctx->c.fd, EV_READ, on_readable, e);
    e->wev = event_new(base, ctx->c.fd, EV_WRITE, on_writable, e);
    if (e->rev == NULL || e->wev == NULL) {
        if (e->rev != NULL) event_free(e->rev);
        if (e->wev != NULL) event_free(e->wev);
        free(e);
        return -1;
    }
    ctx->ev.addRead = add_read;
    ctx->ev.delRead = del_read;
    ctx->ev.addWrite = add_write;
    ctx->ev.delWrite = del_write;
    ctx->ev.cleanup = cleanup;
    ctx->ev.data = e;
    event_add(e->rev, NULL);
    event_add(e->wev, NULL);
    return 0;
}

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
    if (attach(ctx, base) != 0) {
        snprintf(err, err_len, "out of memory");
        redisAsyncFree(ctx);
        return NULL;
    }
    redisAsyncSetConnectCallback(ctx, on_connect);
    redisAsyncSetDisconnectCallback(ctx, on_disconnect);
    return ctx;
}
