/* store: hiredis async clients with reconnect, a command watchdog, pooled call contexts, the
 * check of Redis's persistence settings (does an acked message survive a Redis restart?), and
 * on a Redis Cluster the routing of each command to its slot's master (store_cluster.c keeps
 * the map) with MOVED and ASK followed. */
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "log.h"
#include "redis_connect.h"
#include "redis_format.h"
#include "redis_slot.h"
#include "stats.h"
#include "store_cluster.h"
#include "store_conn.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WATCHDOG_MS 250
#define DURABILITY_RECHECK_MS 30000 /* CONFIG SET may change the settings without a reconnect */
#define MAX_CONNS 64                /* masters (and seeds) of a cluster */
#define MAX_REDIRECTS 5             /* MOVED/ASK/TRYAGAIN followed per command, then it fails */
#define TRYAGAIN_DELAY_US 50000     /* times the tries so far: up to 0.75 s in all */

struct call {
    store_reply_fn fn;
    void *arg;
    int64_t sent_us;
    struct store_conn *conn;
    /* on a cluster: the command as sent, kept to send it again on a MOVED or ASK */
    char *cmd;
    int cmd_len;
    int redirects;
    int slot;            /* on a cluster: the command's slot, -1 for none */
    struct event *retry; /* on a cluster: a TRYAGAIN waiting to be sent again */
    struct call *next_retrying;
    /* replicated (store_command_replicated): answered once its reply and a WAIT after it have
     * both come; the reply is held (a copy) meanwhile */
    int replicated;
    int waiting;         /* of the two, how many have not come */
    int confirmed;       /* the WAIT counted redis_wait_replicas replicas */
    redisReply *held;
    const char *held_error;
    struct call *next_waiting;
    struct call *next_free;
};

static struct {
    int cluster;
    struct store_conn *conns[MAX_CONNS];
    size_t conn_count;
    struct store_conn *setting_up; /* the connection store_setup_command writes to, or NULL */
    struct event *watchdog;
    struct event *wait_flush; /* sends the loop pass's WAITs */
    int wait_replicas;
    struct call *free_calls;
    struct call *retrying; /* TRYAGAIN: waiting to be sent again */
    int stopping;
    struct event_base *base;
    struct store_options options;
    struct redis_format_buf format; /* the command being sent, on a single Redis */
} store;

/* Who store_on_connected told to be called at every connect. */
#define STORE_MAX_CONNECTED 4
struct connected_subscriber {
    store_connected_fn fn;
    void *state;
};
static struct connected_subscriber connected[STORE_MAX_CONNECTED];
static size_t connected_count;

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
    if (c->cmd != NULL) redisFreeCommand(c->cmd);
    c->cmd = NULL;
    c->next_free = store.free_calls;
    store.free_calls = c;
}

size_t store_conn_count(void)
{
    return store.conn_count;
}

struct store_conn *store_conn_at(size_t i)
{
    return store.conns[i];
}

/* The connection single-Redis mode uses. */
static struct store_conn *single(void)
{
    return store.conns[0];
}

/* redis_require_durable on: storage is refused until every master's check says durable. */
static int refusing(void)
{
    if (!store.options.require_durable) return 0;
    for (size_t i = 0; i < store.conn_count; i++) {
        const struct store_conn *conn = store.conns[i];
        if (conn->in_map && (!conn->verified || conn->durable != STORE_DURABLE)) return 1;
    }
    return 0;
}

int store_ready(void)
{
    int serving = store.cluster ? store_cluster_serving()
                                : store.conn_count > 0 && single()->state == CONN_READY;
    return serving && !refusing();
}

int store_durability(void)
{
    int worst = STORE_DURABLE, any = 0;
    for (size_t i = 0; i < store.conn_count; i++) {
        const struct store_conn *conn = store.conns[i];
        if (!conn->in_map) continue;
        any = 1;
        if (conn->durable < worst) worst = conn->durable;
    }
    return any ? worst : STORE_DURABILITY_UNKNOWN;
}

const char *store_state_text(void)
{
    static char text[96];
    if (store.cluster) {
        int ready, masters = store_cluster_masters(&ready);
        if (masters == 0) return "connecting (no slot map yet)";
        snprintf(text, sizeof text, "%d of %d masters connected%s%s", ready, masters,
                 store_cluster_serving() ? "" : ", some slots unserved",
                 refusing() ? ", refused: not durable" : "");
        return text;
    }
    switch (store.conn_count > 0 ? single()->state : CONN_DOWN) {
    case CONN_READY: return refusing() ? "connected, refused: not durable" : "connected";
    case CONN_CONNECTING:
    case CONN_CONNECTED: return "connecting";
    default: return "down";
    }
}

static void schedule_retry(struct store_conn *conn)
{
    if (store.stopping || !conn->in_map) return;
    struct timeval tv = {conn->backoff_ms / 1000, (suseconds_t)(conn->backoff_ms % 1000) * 1000};
    evtimer_add(conn->retry, &tv);
    conn->backoff_ms *= 2;
    if (conn->backoff_ms > BACKOFF_MAX_MS) conn->backoff_ms = BACKOFF_MAX_MS;
}

/* ---- commands ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void hold_reply(struct call *c, const redisReply *r, const char *error);
static int send_command(int argc, const char **argv, const size_t *argv_len, store_reply_fn fn,
                        void *arg, struct call **sent);

static int send_call(struct store_conn *conn, struct call *c, int asking)
{
    if (conn->in_flight == 0) conn->last_progress_ms = now_ms();
    if (asking && redisAsyncCommand(conn->ctx, NULL, NULL, "ASKING") != REDIS_OK) return -1;
    if (redisAsyncFormattedCommand(conn->ctx, on_reply, c, c->cmd, (size_t)c->cmd_len) !=
        REDIS_OK)
        return -1;
    c->conn = conn;
    conn->in_flight++;
    return 0;
}

/* A MOVED or ASK answered C: sends it on to the master named, when that one is ready (a
 * redirected command did not run, so sending it again is safe). 1 when sent. */
static int follow_redirect(struct call *c, const redisReply *r)
{
    char addr[sizeof c->conn->addr], host[sizeof c->conn->addr];
    snprintf(host, sizeof host, "%s", c->conn->addr);
    char *colon = strrchr(host, ':');
    if (colon != NULL) *colon = '\0';
    int ask;
    unsigned slot;
    if (c->cmd == NULL || c->redirects >= MAX_REDIRECTS ||
        !redis_parse_redirect(r->str, r->len, host, &ask, &slot, addr, sizeof addr))
        return 0;
    struct store_conn *to = store_conn_for(addr, 1);
    if (to == NULL) return 0;
    if (ask) {
        stats.redis_redirects_ask_total++;
    } else {
        stats.redis_redirects_moved_total++;
        store_cluster_moved(slot, to);
    }
    if (to->state != CONN_READY) return 0; /* a new master, being set up: 503 this time */
    c->redirects++;
    return send_call(to, c, ask) == 0;
}

/* Errors of a cluster in motion: the command did not run, and the map is read again. */
static int cluster_unavailable(const redisReply *r)
{
    return strncmp(r->str, "CLUSTERDOWN", 11) == 0 || strncmp(r->str, "TRYAGAIN", 8) == 0 ||
           strncmp(r->str, "MOVED", 5) == 0 || strncmp(r->str, "ASK", 3) == 0;
}

/* Logs a cluster's "unavailable" answer at most once a second (a failover answers every
 * command so), with how many went unlogged. */
static void warn_unavailable(const struct store_conn *conn, const redisReply *r)
{
    static int64_t last_ms;
    static unsigned unlogged;
    int64_t now = now_ms();
    if (now - last_ms < 1000) {
        unlogged++;
        return;
    }
    log_warn("redis: %s answered %s (and %u more such answers since the last report)", conn->addr,
             r->str, unlogged);
    last_ms = now;
    unlogged = 0;
}

/* Answers C's caller with R (or, R NULL, ERROR). */
static void finish(struct call *c, redisReply *r, const char *error)
{
    uint64_t us = (uint64_t)(now_us() - c->sent_us);
    stats_observe(stats.redis_latency_buckets, &stats.redis_latency_us_sum,
                  &stats.redis_latency_count, us);
    if (r == NULL) stats.redis_errors_total++;
    if (c->replicated) return hold_reply(c, r, error);
    store_reply_fn fn = c->fn;
    void *arg = c->arg;
    call_put(c);
    fn(r, error, arg);
}

/* ---- a slot being migrated: TRYAGAIN ---- */

static void unlink_retrying(struct call *c)
{
    for (struct call **at = &store.retrying; *at != NULL; at = &(*at)->next_retrying)
        if (*at == c) {
            *at = c->next_retrying;
            break;
        }
    event_free(c->retry);
    c->retry = NULL;
}

static void on_retry_call(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct call *c = arg;
    unlink_retrying(c);
    struct store_conn *conn = store_cluster_owner(c->slot);
    if (conn == NULL || conn->state != CONN_READY || send_call(conn, c, 0) != 0)
        finish(c, NULL, "redis cluster unavailable");
}

/* A multi-key command or function whose keys are split between two masters while their slot
 * migrates did not run: it is sent again a little later (at most MAX_REDIRECTS times). */
static int retry_later(struct call *c, const redisReply *r)
{
    if (strncmp(r->str, "TRYAGAIN", 8) != 0 || c->replicated || c->cmd == NULL ||
        c->redirects >= MAX_REDIRECTS)
        return 0;
    c->retry = evtimer_new(store.base, on_retry_call, c);
    struct timeval tv = {0, (suseconds_t)TRYAGAIN_DELAY_US * (c->redirects + 1)};
    if (c->retry == NULL || evtimer_add(c->retry, &tv) != 0) {
        if (c->retry != NULL) event_free(c->retry);
        c->retry = NULL;
        return 0;
    }
    c->redirects++;
    stats.redis_redirects_tryagain_total++;
    c->next_retrying = store.retrying;
    store.retrying = c;
    return 1;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct call *c = privdata;
    redisReply *r = reply;
    c->conn->in_flight--;
    c->conn->last_progress_ms = now_ms();
    const char *error = r == NULL ? "redis connection lost" : NULL;
    if (store.cluster && r != NULL && r->type == REDIS_REPLY_ERROR) {
        if (!c->replicated && (follow_redirect(c, r) || retry_later(c, r))) return;
        if (cluster_unavailable(r)) {
            warn_unavailable(c->conn, r);
            store_cluster_refresh_soon();
            error = "redis cluster unavailable";
            r = NULL;
        }
    }
    finish(c, r, error);
}

/* ---- replicated commands (redis_wait_replicas) ---- */

/* A copy of R that outlives hiredis's (freed when the callback returns); NULL out of memory. */
static redisReply *copy_reply(const redisReply *r)
{
    redisReply *copy = calloc(1, sizeof *copy);
    if (copy == NULL) return NULL;
    copy->type = r->type;
    copy->integer = r->integer;
    if (r->str != NULL) {
        copy->str = malloc(r->len + 1);
        if (copy->str == NULL) {
            free(copy);
            return NULL;
        }
        memcpy(copy->str, r->str, r->len);
        copy->str[r->len] = '\0';
        copy->len = r->len;
    }
    if (r->elements > 0) {
        copy->element = calloc(r->elements, sizeof *copy->element);
        if (copy->element == NULL) {
            freeReplyObject(copy);
            return NULL;
        }
        copy->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++) {
            copy->element[i] = copy_reply(r->element[i]);
            if (copy->element[i] == NULL) {
                freeReplyObject(copy);
                return NULL;
            }
        }
    }
    return copy;
}

/* Both the reply and the WAIT came: the reply goes to the caller if the replicas confirmed it
 * (an error reply wrote nothing and goes as it is), else the caller gets 503. */
static void finish_replicated(struct call *c)
{
    redisReply *r = c->held;
    const char *error = c->held_error;
    if (r != NULL && r->type != REDIS_REPLY_ERROR && !c->confirmed) {
        stats.redis_wait_failures_total++;
        freeReplyObject(r);
        r = NULL;
        error = "redis replicas did not confirm the write";
    }
    store_reply_fn fn = c->fn;
    void *arg = c->arg;
    c->held = NULL;
    call_put(c);
    fn(r, error, arg);
    if (r != NULL) freeReplyObject(r);
}

static void one_less(struct call *c)
{
    if (--c->waiting == 0) finish_replicated(c);
}

static void hold_reply(struct call *c, const redisReply *r, const char *error)
{
    c->held = r != NULL ? copy_reply(r) : NULL;
    c->held_error = r != NULL && c->held == NULL ? "out of memory" : error;
    one_less(c);
}

static void on_wait_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    const redisReply *r = reply;
    int confirmed = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= store.wait_replicas;
    if (r != NULL && !confirmed)
        log_warn("redis: WAIT: %s", r->type == REDIS_REPLY_ERROR ? r->str
                                                                : "too few replicas confirmed");
    for (struct call *c = privdata, *next; c != NULL; c = next) {
        next = c->next_waiting;
        c->confirmed = confirmed;
        one_less(c);
    }
}

/* One WAIT per connection for the replicated commands of a loop pass (WAIT holds the
 * connection until the replicas answer, so once per pass, not once per command). */
static void on_wait_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    char replicas[16], timeout_ms[24];
    snprintf(replicas, sizeof replicas, "%d", store.wait_replicas);
    snprintf(timeout_ms, sizeof timeout_ms, "%d", (int)(store.options.timeout * 500) + 1);
    for (size_t i = 0; i < store.conn_count; i++) {
        struct store_conn *conn = store.conns[i];
        struct call *batch = conn->wait_first;
        if (batch == NULL) continue;
        conn->wait_first = conn->wait_last = NULL;
        if (conn->ctx != NULL && redisAsyncCommand(conn->ctx, on_wait_reply, batch, "WAIT %s %s",
                                                   replicas, timeout_ms) == REDIS_OK)
            continue;
        on_wait_reply(NULL, NULL, batch);
    }
}

int store_command_replicated(int argc, const char **argv, const size_t *argv_len,
                             store_reply_fn fn, void *arg)
{
    if (store.wait_replicas == 0) return store_command(argc, argv, argv_len, fn, arg);
    struct call *c = NULL;
    if (send_command(argc, argv, argv_len, fn, arg, &c) != 0) return -1;
    c->replicated = 1;
    c->waiting = 2;
    struct store_conn *conn = c->conn;
    if (conn->wait_last != NULL)
        conn->wait_last->next_waiting = c;
    else
        conn->wait_first = c;
    conn->wait_last = c;
    event_active(store.wait_flush, EV_TIMEOUT, 1);
    return 0;
}

int store_command(int argc, const char **argv, const size_t *argv_len, store_reply_fn fn,
                  void *arg)
{
    return send_command(argc, argv, argv_len, fn, arg, NULL);
}

/* Sends a command to its master; *SENT (when not NULL) is its call. 0 or -1. */
static int send_command(int argc, const char **argv, const size_t *argv_len, store_reply_fn fn,
                        void *arg, struct call **sent)
{
    if (refusing()) return -1;
    int slot = store.cluster ? redis_command_slot(argc, argv, argv_len) : -1;
    struct store_conn *conn = store.cluster          ? store_cluster_owner(slot)
                              : store.conn_count > 0 ? single()
                                                     : NULL;
    if (conn == NULL || conn->state != CONN_READY) return -1;
    struct call *c = call_get();
    if (c == NULL) return -1;
    *c = (struct call){.fn = fn, .arg = arg, .sent_us = now_us(), .conn = conn, .slot = slot};
    if (store.cluster) {
        c->cmd_len = redisFormatCommandArgv(&c->cmd, argc, argv, argv_len);
        if (c->cmd_len < 0 || send_call(conn, c, 0) != 0) {
            call_put(c);
            return -1;
        }
    } else {
        if (conn->in_flight == 0) conn->last_progress_ms = now_ms();
        long len = redis_format_argv(&store.format, argc, argv, argv_len);
        if (len < 0 || redisAsyncFormattedCommand(conn->ctx, on_reply, c, store.format.data,
                                                  (size_t)len) != REDIS_OK) {
            call_put(c);
            return -1;
        }
        conn->in_flight++;
    }
    stats.redis_commands_total++;
    if (sent != NULL) *sent = c;
    return 0;
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ERROR) return;
    const struct store_conn *conn = ac->data;
    if (store.cluster && strncmp(r->str, "READONLY", 8) == 0) {
        /* a map read from a node that had not seen a failover yet named a replica */
        log_warn("redis: %s is a replica now (%s refused): reading the slot map again",
                 conn->addr, (const char *)privdata);
        store_cluster_refresh_soon();
        return;
    }
    log_error("redis: %s failed: %s", (const char *)privdata, r->str);
}

static void send_setup(struct store_conn *conn, const char *what, int argc, const char **argv,
                       const size_t *len)
{
    redisAsyncCommandArgv(conn->ctx, on_setup_reply, (void *)what, argc, argv, len);
}

/* During a connection's set-up, to that connection; else (a reload's new functions) to every
 * ready one. */
void store_setup_command(const char *what, int argc, const char **argv, const size_t *argv_len)
{
    if (store.setting_up != NULL) {
        send_setup(store.setting_up, what, argc, argv, argv_len);
        return;
    }
    for (size_t i = 0; i < store.conn_count; i++)
        if (store.conns[i]->state == CONN_READY)
            send_setup(store.conns[i], what, argc, argv, argv_len);
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
static void report_durability(struct store_conn *conn, const char *settings,
                              const char *why_unknown)
{
    if (conn->verified && strcmp(settings, conn->settings) == 0) return;
    snprintf(conn->settings, sizeof conn->settings, "%s", settings);
    const char *refused = store.options.require_durable
                              ? "; storage requests are refused (redis_require_durable on)"
                              : "";
    if (conn->durable == STORE_DURABILITY_UNKNOWN)
        log_warn("redis: %s: cannot read its persistence settings (CONFIG GET: %s): whether "
                 "acked messages survive a Redis restart is unknown%s",
                 conn->addr, why_unknown, refused);
    else if (conn->durable == STORE_NOT_DURABLE)
        log_warn("redis: %s: %s: acked messages are lost when Redis restarts or fails (no "
                 "append-only file); set appendonly yes (docs/operations.md)%s",
                 conn->addr, settings, refused);
    else if (strstr(settings, "appendfsync no") != NULL)
        log_warn("redis: %s: %s: acked messages survive a Redis restart, but an OS crash or "
                 "power loss may lose the last ~30 s of them; appendfsync everysec or always "
                 "is safer",
                 conn->addr, settings);
    else
        log_info("redis: %s: %s: acked messages survive a Redis restart%s", conn->addr, settings,
                 strstr(settings, "everysec") ? " (a power loss may lose the last second)" : "");
}

static void on_durability_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct store_conn *conn = privdata;
    const redisReply *r = reply;
    if (r == NULL) return; /* the connection is gone: the next one checks again */
    const char *aof = r->type == REDIS_REPLY_ARRAY ? config_value(r, "appendonly") : NULL;
    const char *fsync = r->type == REDIS_REPLY_ARRAY ? config_value(r, "appendfsync") : NULL;
    char settings[64] = "unknown";
    if (aof == NULL) {
        conn->durable = STORE_DURABILITY_UNKNOWN;
    } else {
        conn->durable = strcmp(aof, "yes") == 0 ? STORE_DURABLE : STORE_NOT_DURABLE;
        snprintf(settings, sizeof settings, "appendonly %s, appendfsync %s", aof,
                 fsync ? fsync : "?");
    }
    report_durability(conn, settings, r->type == REDIS_REPLY_ERROR ? r->str : "no such settings");
    conn->verified = 1;
}

static void check_durability(struct store_conn *conn)
{
    static const char *argv[] = {"CONFIG", "GET", "appendonly", "appendfsync"};
    static const size_t lens[] = {6, 3, 10, 11};
    conn->last_check_ms = now_ms();
    redisAsyncCommandArgv(conn->ctx, on_durability_reply, conn, 4, argv, lens);
}

/* ---- connections ---- */

/* The function libraries go first on every master's new connection; commands sent afterwards
 * are pipelined behind them, so no command ever runs before them. */
void store_conn_setup(struct store_conn *conn)
{
    if (conn->state != CONN_CONNECTED) return;
    if (store.options.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", store.options.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        send_setup(conn, "SELECT", 2, argv, lens);
    }
    conn->state = CONN_READY;
    conn->verified = 0;
    store.setting_up = conn;
    for (size_t i = 0; i < connected_count; i++) connected[i].fn(connected[i].state);
    store.setting_up = NULL;
    check_durability(conn);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct store_conn *conn = ac->data;
    if (status != REDIS_OK) {
        log_warn("redis: cannot connect to %s: %s (retrying in %d ms)", conn->addr, ac->errstr,
                 conn->backoff_ms);
        conn->ctx = NULL; /* hiredis frees a context whose connect failed */
        conn->state = CONN_DOWN;
        schedule_retry(conn);
        if (store.cluster) store_cluster_conn_changed(conn);
        return;
    }
    log_info("redis: connected to %s", conn->addr);
    conn->backoff_ms = BACKOFF_MIN_MS;
    conn->state = CONN_CONNECTED;
    if (store.options.password != NULL) {
        const char *argv[] = {"AUTH", store.options.password};
        size_t lens[] = {4, strlen(store.options.password)};
        send_setup(conn, "AUTH", 2, argv, lens);
    }
    if (store.cluster)
        store_cluster_conn_changed(conn); /* set up once the map names it a master */
    else
        store_conn_setup(conn);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct store_conn *conn = ac->data;
    if (status != REDIS_OK) log_warn("redis: connection to %s lost: %s", conn->addr, ac->errstr);
    conn->ctx = NULL;
    conn->state = CONN_DOWN;
    conn->in_flight = 0;
    stats.redis_reconnects_total++;
    schedule_retry(conn);
    if (store.cluster && !store.stopping) store_cluster_conn_changed(conn);
}

void store_conn_connect(struct store_conn *conn)
{
    if (conn->state != CONN_DOWN || store.stopping) return;
    char err[128];
    evtimer_del(conn->retry);
    conn->ctx = redis_connect(conn->addr, store.base, on_connect, on_disconnect, err, sizeof err);
    if (conn->ctx == NULL) {
        log_warn("redis: cannot connect to %s: %s", conn->addr, err);
        schedule_retry(conn);
        return;
    }
    conn->ctx->data = conn;
    reply_arena_attach(&conn->replies, conn->ctx->c.reader);
    conn->state = CONN_CONNECTING;
    conn->connect_started_ms = now_ms();
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    store_conn_connect(arg);
}

static struct store_conn *new_conn(const char *addr, int in_map)
{
    if (store.conn_count == MAX_CONNS || strlen(addr) >= sizeof store.conns[0]->addr) return NULL;
    struct store_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL) return NULL;
    snprintf(conn->addr, sizeof conn->addr, "%s", addr);
    conn->in_map = in_map;
    conn->backoff_ms = BACKOFF_MIN_MS;
    conn->durable = STORE_DURABILITY_UNKNOWN;
    conn->retry = evtimer_new(store.base, on_retry, conn);
    if (conn->retry == NULL) {
        free(conn);
        return NULL;
    }
    store.conns[store.conn_count++] = conn;
    store_conn_connect(conn);
    return conn;
}

struct store_conn *store_conn_for(const char *addr, int create)
{
    for (size_t i = 0; i < store.conn_count; i++)
        if (strcmp(store.conns[i]->addr, addr) == 0) return store.conns[i];
    return create ? new_conn(addr, 0) : NULL;
}

/* hiredis has no command timeout: a connection that answers nothing for redis_timeout while
 * commands wait is dropped, which fails those commands (503) and reconnects. */
static void watch(struct store_conn *conn, int64_t now, int64_t timeout_ms)
{
    if (conn->state == CONN_CONNECTING && now - conn->connect_started_ms > timeout_ms) {
        log_warn("redis: connecting to %s timed out", conn->addr);
        redisAsyncFree(conn->ctx); /* not connected yet: no disconnect callback */
        conn->ctx = NULL;
        conn->state = CONN_DOWN;
        schedule_retry(conn);
        if (store.cluster) store_cluster_conn_changed(conn);
        return;
    }
    if (conn->state == CONN_READY && now - conn->last_check_ms > DURABILITY_RECHECK_MS)
        check_durability(conn);
    if (conn->state >= CONN_CONNECTED && conn->in_flight > 0 &&
        now - conn->last_progress_ms > timeout_ms) {
        log_warn("redis: no reply for %.1f s with %zu command(s) waiting on %s, reconnecting",
                 store.options.timeout, conn->in_flight, conn->addr);
        redisAsyncFree(conn->ctx); /* calls every waiting callback with NULL, then disconnect */
    }
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    int64_t now = now_ms(), timeout_ms = (int64_t)(store.options.timeout * 1000);
    for (size_t i = 0; i < store.conn_count; i++) watch(store.conns[i], now, timeout_ms);
    if (store.cluster) store_cluster_tick(timeout_ms);
}

void store_set_limits(double timeout, int require_durable, int wait_replicas)
{
    store.options.timeout = timeout;
    store.options.require_durable = require_durable;
    store.wait_replicas = wait_replicas;
}

int store_start(struct event_base *base, const struct store_options *options)
{
    store.base = base;
    store.options = *options;
    store.cluster = options->cluster;
    store.wait_replicas = options->wait_replicas;
    store.watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
    store.wait_flush = event_new(base, -1, 0, on_wait_flush, NULL);
    if (store.watchdog == NULL || store.wait_flush == NULL) return -1;
    struct timeval tv = {0, (suseconds_t)WATCHDOG_MS * 1000};
    event_add(store.watchdog, &tv);
    if (store.cluster) return store_cluster_start(options->addr);
    return new_conn(options->addr, 1) != NULL ? 0 : -1;
}

void store_stop(void)
{
    store.stopping = 1;
    while (store.retrying != NULL) {
        struct call *c = store.retrying;
        unlink_retrying(c);
        finish(c, NULL, "redis connection lost");
    }
    if (store.cluster) store_cluster_stop();
    for (size_t i = 0; i < store.conn_count; i++) {
        struct store_conn *conn = store.conns[i];
        if (conn->ctx != NULL) redisAsyncFree(conn->ctx);
        conn->ctx = NULL;
        if (conn->retry) event_free(conn->retry);
        reply_arena_free(&conn->replies);
        free(conn);
    }
    store.conn_count = 0;
    redis_format_free(&store.format);
    if (store.watchdog) event_free(store.watchdog);
    if (store.wait_flush) event_free(store.wait_flush);
    store.watchdog = store.wait_flush = NULL;
    while (store.free_calls != NULL) {
        struct call *c = store.free_calls;
        store.free_calls = c->next_free;
        free(c);
    }
}
