/* store: hiredis async client with reconnect, a command watchdog, pooled call contexts, and
 * the check of Redis's persistence settings (does an acked message survive a Redis restart?). */
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "log.h"
#include "redis_connect.h"
#include "stats.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WATCHDOG_MS 250
#define DURABILITY_RECHECK_MS 30000 /* CONFIG SET may change the settings without a reconnect */

enum store_state { STORE_DOWN, STORE_CONNECTING, STORE_READY };

struct call {
    store_reply_fn fn;
    void *arg;
    int64_t sent_us;
    struct call *next_free;
};

static struct {
    redisAsyncContext *ctx;
    enum store_state state;
    int backoff_ms;
    struct event *retry;
    struct event *watchdog;
    size_t in_flight;
    int64_t last_progress_ms; /* last reply, or when the oldest in-flight command was sent */
    int64_t connect_started_ms;
    struct call *free_calls;
    int stopping;
    int durable;  /* enum store_durability, from the latest check */
    int verified; /* a check answered on this connection */
    int64_t last_check_ms;
    char settings[64]; /* "appendonly yes, appendfsync everysec": what was logged last */
    struct event_base *base;
    struct store_options options;
} store = {.durable = STORE_DURABILITY_UNKNOWN};

/* Who store_on_connected told to be called at every connect. */
#define STORE_MAX_CONNECTED 4
struct connected_subscriber {
    store_connected_fn fn;
    void *state;
};
static struct connected_subscriber connected[STORE_MAX_CONNECTED];
static size_t connected_count;

static void connect_now(void);

/* Milliseconds since the epoch, from the loop's cached clock. */
static int64_t now_ms(void)
{
    struct timeval tv;
    event_base_gettimeofday_cached(store.base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static struct call *call_get(void)
{
    struct call *c = store.free_calls;
    if (c != NULL) {
        store.free_calls = c->next_free;
        return c;
    }
    return malloc(sizeof *c);
}

static void call_put(struct call *c)
{
    c->next_free = store.free_calls;
    store.free_calls = c;
}

/* redis_require_durable on: storage is refused until this connection's check says durable. */
static int refusing(void)
{
    return store.options.require_durable && (!store.verified || store.durable != STORE_DURABLE);
}

int store_ready(void)
{
    return store.state == STORE_READY && !refusing();
}

int store_durability(void)
{
    return store.durable;
}

const char *store_state_text(void)
{
    switch (store.state) {
    case STORE_READY: return refusing() ? "connected, refused: not durable" : "connected";
    case STORE_CONNECTING: return "connecting";
    default: return "down";
    }
}

static void schedule_retry(void)
{
    if (store.stopping) return;
    struct timeval tv = {store.backoff_ms / 1000, (suseconds_t)(store.backoff_ms % 1000) * 1000};
    evtimer_add(store.retry, &tv);
    store.backoff_ms *= 2;
    if (store.backoff_ms > BACKOFF_MAX_MS) store.backoff_ms = BACKOFF_MAX_MS;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *c = privdata;
    redisReply *r = reply;
    store.in_flight--;
    store.last_progress_ms = now_ms();
    uint64_t us = (uint64_t)(now_us() - c->sent_us);
    stats_observe(stats.redis_latency_buckets, &stats.redis_latency_us_sum,
                  &stats.redis_latency_count, us);
    if (r == NULL) stats.redis_errors_total++;
    store_reply_fn fn = c->fn;
    void *arg = c->arg;
    call_put(c);
    fn(r, r == NULL ? "redis connection lost" : NULL, arg);
}

int store_command(int argc, const char **argv, const size_t *argv_len, store_reply_fn fn,
                  void *arg)
{
    if (!store_ready()) return -1;
    struct call *c = call_get();
    if (c == NULL) return -1;
    c->fn = fn;
    c->arg = arg;
    c->sent_us = now_us();
    if (store.in_flight == 0) store.last_progress_ms = now_ms();
    if (redisAsyncCommandArgv(store.ctx, on_reply, c, argc, argv, argv_len) != REDIS_OK) {
        call_put(c);
        return -1;
    }
    store.in_flight++;
    stats.redis_commands_total++;
    return 0;
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redisReply *r = reply;
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_error("redis: %s failed: %s", (const char *)privdata, r->str);
}

static void send_setup(const char *what, int argc, const char **argv, const size_t *len)
{
    redisAsyncCommandArgv(store.ctx, on_setup_reply, (void *)what, argc, argv, len);
}

void store_setup_command(const char *what, int argc, const char **argv, const size_t *argv_len)
{
    if (store.state == STORE_READY) send_setup(what, argc, argv, argv_len);
}

int store_on_connected(store_connected_fn fn, void *state)
{
    if (connected_count == STORE_MAX_CONNECTED) return -1;
    connected[connected_count++] = (struct connected_subscriber){fn, state};
    return 0;
}

/* ---- persistence check ---- */

/* The value of KEY in a CONFIG GET reply (a flat array of key, value), or NULL. */
static const char *config_value(const redisReply *r, const char *key)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, key) == 0)
            return v->str;
    }
    return NULL;
}

/* Logs what the settings mean for acked messages, once per connection and on every change. */
static void report_durability(const char *settings, const char *why_unknown)
{
    if (store.verified && strcmp(settings, store.settings) == 0) return;
    snprintf(store.settings, sizeof store.settings, "%s", settings);
    const char *refused = store.options.require_durable
                              ? "; storage requests are refused (redis_require_durable on)"
                              : "";
    if (store.durable == STORE_DURABILITY_UNKNOWN)
        log_warn("redis: cannot read its persistence settings (CONFIG GET: %s): whether acked "
                 "messages survive a Redis restart is unknown%s",
                 why_unknown, refused);
    else if (store.durable == STORE_NOT_DURABLE)
        log_warn("redis: %s: acked messages are lost when Redis restarts or fails (no "
                 "append-only file); set appendonly yes (docs/operations.md)%s",
                 settings, refused);
    else if (strstr(settings, "appendfsync no") != NULL)
        log_warn("redis: %s: acked messages survive a Redis restart, but an OS crash or power "
                 "loss may lose the last ~30 s of them; appendfsync everysec or always is safer",
                 settings);
    else
        log_info("redis: %s: acked messages survive a Redis restart%s", settings,
                 strstr(settings, "everysec") ? " (a power loss may lose the last second)" : "");
}

static void on_durability_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)privdata;
    const redisReply *r = reply;
    if (r == NULL) return; /* the connection is gone: the next one checks again */
    const char *aof = r->type == REDIS_REPLY_ARRAY ? config_value(r, "appendonly") : NULL;
    const char *fsync = r->type == REDIS_REPLY_ARRAY ? config_value(r, "appendfsync") : NULL;
    char settings[64] = "unknown";
    if (aof == NULL) {
        store.durable = STORE_DURABILITY_UNKNOWN;
    } else {
        store.durable = strcmp(aof, "yes") == 0 ? STORE_DURABLE : STORE_NOT_DURABLE;
        snprintf(settings, sizeof settings, "appendonly %s, appendfsync %s", aof,
                 fsync ? fsync : "?");
    }
    report_durability(settings, r->type == REDIS_REPLY_ERROR ? r->str : "no such settings");
    store.verified = 1;
}

static void check_durability(void)
{
    static const char *argv[] = {"CONFIG", "GET", "appendonly", "appendfsync"};
    static const size_t lens[] = {6, 3, 10, 11};
    store.last_check_ms = now_ms();
    redisAsyncCommandArgv(store.ctx, on_durability_reply, NULL, 4, argv, lens);
}

/* AUTH, SELECT and the function libraries go first on every new connection; commands sent
 * afterwards are pipelined behind them, so no command ever runs before them. */
static void setup_connection(void)
{
    const struct store_options *o = &store.options;
    if (o->password != NULL) {
        const char *argv[] = {"AUTH", o->password};
        size_t lens[] = {4, strlen(o->password)};
        send_setup("AUTH", 2, argv, lens);
    }
    if (o->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", o->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        send_setup("SELECT", 2, argv, lens);
    }
    store.state = STORE_READY;
    store.verified = 0;
    for (size_t i = 0; i < connected_count; i++) connected[i].fn(connected[i].state);
    check_durability();
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        log_warn("redis: cannot connect to %s: %s (retrying in %d ms)", store.options.addr,
                 ac->errstr, store.backoff_ms);
        store.ctx = NULL; /* hiredis frees a context whose connect failed */
        store.state = STORE_DOWN;
        schedule_retry();
        return;
    }
    log_info("redis: connected to %s", store.options.addr);
    store.backoff_ms = BACKOFF_MIN_MS;
    setup_connection();
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) log_warn("redis: connection lost: %s", ac->errstr);
    store.ctx = NULL;
    store.state = STORE_DOWN;
    store.in_flight = 0;
    stats.redis_reconnects_total++;
    schedule_retry();
}

static void connect_now(void)
{
    char err[128];
    store.ctx = redis_connect(store.options.addr, store.base, on_connect, on_disconnect, err,
                              sizeof err);
    if (store.ctx == NULL) {
        log_warn("redis: cannot connect to %s: %s", store.options.addr, err);
        store.state = STORE_DOWN;
        schedule_retry();
        return;
    }
    store.state = STORE_CONNECTING;
    store.connect_started_ms = now_ms();
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    connect_now();
}

/* hiredis has no command timeout: a connection that answers nothing for redis_timeout while
 * commands wait is dropped, which fails those commands (503) and reconnects. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int64_t timeout_ms = (int64_t)(store.options.timeout * 1000);
    if (store.state == STORE_CONNECTING &&
        now_ms() - store.connect_started_ms > timeout_ms) {
        log_warn("redis: connecting to %s timed out", store.options.addr);
        redisAsyncFree(store.ctx); /* not connected yet: no disconnect callback */
        store.ctx = NULL;
        store.state = STORE_DOWN;
        schedule_retry();
        return;
    }
    if (store.state == STORE_READY && now_ms() - store.last_check_ms > DURABILITY_RECHECK_MS)
        check_durability();
    if (store.state == STORE_READY && store.in_flight > 0 &&
        now_ms() - store.last_progress_ms > timeout_ms) {
        log_warn("redis: no reply for %.1f s with %zu command(s) waiting, reconnecting",
                 store.options.timeout, store.in_flight);
        redisAsyncFree(store.ctx); /* calls every waiting callback with NULL, then disconnect */
    }
}

void store_set_limits(double timeout, int require_durable)
{
    store.options.timeout = timeout;
    store.options.require_durable = require_durable;
}

int store_start(struct event_base *base, const struct store_options *options)
{
    store.base = base;
    store.options = *options;
    store.backoff_ms = BACKOFF_MIN_MS;
    store.retry = evtimer_new(base, on_retry, NULL);
    store.watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
    if (store.retry == NULL || store.watchdog == NULL) return -1;
    struct timeval tv = {0, (suseconds_t)WATCHDOG_MS * 1000};
    event_add(store.watchdog, &tv);
    connect_now();
    return 0;
}

void store_stop(void)
{
    store.stopping = 1;
    if (store.ctx != NULL) redisAsyncFree(store.ctx);
    store.ctx = NULL;
    if (store.retry) event_free(store.retry);
    if (store.watchdog) event_free(store.watchdog);
    store.retry = store.watchdog = NULL;
    while (store.free_calls != NULL) {
        struct call *c = store.free_calls;
        store.free_calls = c->next_free;
        free(c);
    }
}
