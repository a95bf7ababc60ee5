/* http: a small HTTP/1.1 server for GET /metrics (the loop's counters, Prometheus text) and
 * GET /healthz (Redis up). It faces the network like the client port, so it has the same
 * guards: a connection cap, a deadline for each request head, a keep-alive idle timeout and a
 * head size limit (431). Request bodies are not read: a request with one is answered and the
 * connection closed. */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "broker.h"
#include "bus.h"
#include "clock.h"
#include "listener.h"
#include "log.h"
#include "luahost.h"
#include "netaddr.h"
#include "presence.h"
#include "session.h"
#include "store.h"
#include "worker.h"

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                        (unsigned long long)v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
                        (unsigned long long)v);
}

static void histogram(struct evbuffer *out, const char *name, const char *help,
                      const uint64_t *buckets, uint64_t sum_us, uint64_t count)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cumulative = 0;
    for (int i = 0; i < STATS_LATENCY_BUCKETS; i++) {
        cumulative += buckets[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
                            (double)stats_bucket_bound_us(i) / 1e6, (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)count, name, (double)sum_us / 1e6, name,
                        (unsigned long long)count);
}

static void write_metrics(struct evbuffer *out)
{
    const struct stats *s = &stats;
    gauge(out, "moonpost_connections", "Open client and admin connections.", session_count());
    gauge(out, "moonpost_sessions", "Logged-in sessions on this node.", presence_count());
    counter(out, "moonpost_connections_total", "Connections accepted.", s->connections_total);
    counter(out, "moonpost_connections_rejected_total", "Connections refused (limits, shutdown).",
            s->connections_rejected_total);
    counter(out, "moonpost_frames_in_total", "Frames received.", s->frames_in_total);
    counter(out, "moonpost_frames_out_total", "Frames queued to clients.", s->frames_out_total);
    counter(out, "moonpost_bytes_in_total", "Bytes of frames received.", s->bytes_in_total);
    counter(out, "moonpost_malformed_frames_total", "Frames answered 400 as malformed.",
            s->malformed_frames_total);
    evbuffer_add_printf(out, "# HELP moonpost_replies_total Replies sent, by code.\n"
                             "# TYPE moonpost_replies_total counter\n");
    for (int i = 0; i < STATS_CODES; i++)
        evbuffer_add_printf(out, "moonpost_replies_total{code=\"%d\"} %llu\n", stats_codes[i],
                            (unsigned long long)s->replies_total[i]);
    counter(out, "moonpost_deliveries_total", "Private messages pushed to online sessions.",
            s->deliveries_total);
    counter(out, "moonpost_mid_regressions_total",
            "Live private messages not pushed: their mid was not above the session's last.",
            s->mid_regressions_total);
    counter(out, "moonpost_resyncs_total",
            "Sessions that read their mailbox again because live messages may have been missed.",
            s->resyncs_total);
    counter(out, "moonpost_cluster_messages_total", "Messages received on the node channels.",
            s->bus_messages_total);
    counter(out, "moonpost_cluster_kicks_total",
            "Sessions closed because their user logged in on another node.",
            s->cluster_kicks_total);
    gauge(out, "moonpost_cluster_channels_up", "1 while the node channels are subscribed.",
          bus_ready());
    counter(out, "moonpost_broadcast_deliveries_total", "Broadcast frames queued to sessions.",
            s->broadcast_deliveries_total);
    counter(out, "moonpost_slow_consumers_dropped_total", "Sessions dropped for a full output.",
            s->slow_consumers_total);
    counter(out, "moonpost_output_budget_drops_total",
            "Slow readers dropped because all output passed output_budget.",
            s->output_budget_drops_total);
    gauge(out, "moonpost_output_queued_bytes", "Bytes queued to all sessions, not yet written.",
          session_output_total());
    counter(out, "moonpost_rate_limited_total", "Requests answered 429 for request_rate.",
            s->rate_limited_total);
    counter(out, "moonpost_http_rejected_total", "HTTP connections refused (http_max_connections).",
            s->http_rejected_total);
    counter(out, "moonpost_timeouts_total", "Sessions closed by the idle or login timeout.",
            s->idle_timeouts_total);
    counter(out, "moonpost_handler_errors_total", "Handler runs that raised an error.",
            s->handler_errors_total);
    counter(out, "moonpost_requests_busy_total",
            "Requests answered 503 busy: those in flight held their Lua memory budget.",
            s->requests_busy_total);
    gauge(out, "moonpost_lua_memory_bytes", "Bytes the Lua state uses.", luahost_memory_used());
    gauge(out, "moonpost_lua_request_memory_bytes",
          "Bytes the Lua requests in flight are counted to hold (lua_request_memory_share).",
          luahost_request_memory());
    gauge(out, "moonpost_worker_queued", "Jobs (password hashing) waiting for a worker thread.",
          (uint64_t)worker_queued());
    counter(out, "moonpost_worker_jobs_total", "Jobs run by the worker threads.",
            s->worker_jobs_total);
    counter(out, "moonpost_worker_jobs_dropped_total",
            "Queued jobs skipped because their client had left.", s->worker_jobs_dropped_total);
    counter(out, "moonpost_worker_jobs_refused_total",
            "Jobs refused (503) because the queue or the address's share was full.",
            s->worker_jobs_refused_total);
    counter(out, "moonpost_redis_commands_total", "Redis commands sent.", s->redis_commands_total);
    counter(out, "moonpost_redis_errors_total", "Redis commands lost to a connection failure.",
            s->redis_errors_total);
    counter(out, "moonpost_redis_reconnects_total", "Redis connections lost.",
            s->redis_reconnects_total);
    gauge(out, "moonpost_redis_up", "1 when the Redis connection is up.", store_ready());
    evbuffer_add_printf(out,
                        "# HELP moonpost_redis_durable 1 when Redis keeps an append-only "
                        "file (acked messages survive its restart), 0 when not, -1 unknown.\n"
                        "# TYPE moonpost_redis_durable gauge\nmoonpost_redis_durable %d\n",
                        store_durability());
    counter(out, "moonpost_reloads_total", "Successful script reloads.", s->reloads_total);
    counter(out, "moonpost_reload_failures_total", "Failed script reloads.",
            s->reload_failures_total);
    histogram(out, "moonpost_handler_duration_seconds", "Time from frame to handler end.",
              s->handler_latency_buckets, s->handler_latency_us_sum, s->handler_latency_count);
    histogram(out, "moonpost_redis_duration_seconds", "Redis command round trip.",
              s->redis_latency_buckets, s->redis_latency_us_sum, s->redis_latency_count);
}

#define HTTP_OUTPUT_PAUSE 65536 /* reading stops while this much of a reply is unsent */

struct http_conn {
    struct bufferevent *bev;
    struct event *deadline; /* the head must arrive before it; also the keep-alive idle limit */
    int closing;            /* close once the reply is written */
    int waiting;            /* kept alive, no byte of the next request yet */
    struct http_conn *prev, *next;
};

static struct {
    struct listener *listener;
    struct http_conn *conns; /* every open connection, for http_stop */
    size_t count;
} http;

static void conn_free(struct http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        http.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    http.count--;
    bufferevent_free(c->bev);
    event_free(c->deadline);
    free(c);
}

static void arm_deadline(struct http_conn *c, double seconds)
{
    struct timeval tv = clock_timeval(seconds);
    evtimer_add(c->deadline, &tv);
}

static void reply(struct http_conn *c, int code, const char *reason, const char *type,
                  struct evbuffer *body, int keep_alive)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = body ? evbuffer_get_length(body) : 0;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                        code, reason, type, len, keep_alive ? "" : "Connection: close\r\n");
    if (body) evbuffer_add_buffer(out, body);
    if (!keep_alive) {
        c->closing = 1;
        bufferevent_disable(c->bev, EV_READ);
    } else {
        c->waiting = 1;
        arm_deadline(c, broker.conf.http_idle_timeout);
    }
}

static void reply_text(struct http_conn *c, int code, const char *reason, const char *text,
                       int keep_alive)
{
    struct evbuffer *body = evbuffer_new();
    if (body) evbuffer_add_printf(body, "%s\n", text);
    reply(c, code, reason, "text/plain", body, keep_alive);
    if (body) evbuffer_free(body);
}

static void serve(struct http_conn *c, const char *method, const char *path, int keep_alive)
{
    if (strcmp(method, "GET") != 0)
        return reply_text(c, 405, "Method Not Allowed", "only GET", keep_alive);
    if (strcmp(path, "/metrics") == 0) {
        struct evbuffer *body = evbuffer_new();
        if (body == NULL) return reply_text(c, 500, "Internal Server Error", "no memory", 0);
        write_metrics(body);
        reply(c, 200, "OK", "text/plain; version=0.0.4", body, keep_alive);
        evbuffer_free(body);
    } else if (strcmp(path, "/healthz") == 0) {
        int up = store_ready();
        char text[128];
        snprintf(text, sizeof text, "%s%s", up ? "" : "redis ", up ? "ok" : store_state_text());
        reply_text(c, up ? 200 : 503, up ? "OK" : "Service Unavailable", text, keep_alive);
    } else {
        reply_text(c, 404, "Not Found", "not found", keep_alive);
    }
}

/* The value of header NAME in HEAD (lines after the request line), or NULL. */
static const char *header_value(char *head, const char *name, char **end)
{
    size_t n = strlen(name);
    for (char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        char *p = line + 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            *end = strstr(p, "\r\n");
            return p;
        }
    }
    return NULL;
}

static int header_is(char *head, const char *name, const char *value)
{
    char *end;
    const char *v = header_value(head, name, &end);
    return v != NULL && (size_t)(end - v) == strlen(value) && strncasecmp(v, value, end - v) == 0;
}

/* Answers the request whose head (NUL-terminated, ending in an empty line) is HEAD. */
static void handle_head(struct http_conn *c, char *head)
{
    char method[16], path[256], version[16];
    if (sscanf(head, "%15s %255s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return reply_text(c, 400, "Bad Request", "bad request line", 0);
    char *end;
    const char *length = header_value(head, "Content-Length", &end);
    if ((length != NULL && strtol(length, NULL, 10) != 0) ||
        header_value(head, "Transfer-Encoding", &end) != NULL)
        return reply_text(c, 413, "Content Too Large", "no request body is accepted", 0);
    int keep_alive = strcmp(version, "HTTP/1.1") == 0 ? !header_is(head, "Connection", "close")
                                                      : header_is(head, "Connection", "keep-alive");
    serve(c, method, path, keep_alive);
}

/* Answers every whole request head buffered, one at a time: the next waits for the reply. */
static void process(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t max = (size_t)broker.conf.http_max_header;
    while (!c->closing && evbuffer_get_length(in) > 0) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= HTTP_OUTPUT_PAUSE) {
            bufferevent_disable(c->bev, EV_READ); /* resumed once the reply is written */
            return;
        }
        if (c->waiting) {
            c->waiting = 0;
            arm_deadline(c, broker.conf.http_header_timeout);
        }
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (evbuffer_get_length(in) > max)
                reply_text(c, 431, "Request Header Fields Too Large", "request head too large", 0);
            return;
        }
        size_t len = (size_t)end.pos + 4;
        if (len > max)
            return reply_text(c, 431, "Request Header Fields Too Large", "request head too large",
                              0);
        char *head = malloc(len + 1);
        if (head == NULL) return reply_text(c, 500, "Internal Server Error", "no memory", 0);
        evbuffer_remove(in, head, len);
        head[len] = '\0';
        handle_head(c, head);
        free(head);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void on_written(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    if (c->closing) return conn_free(c);
    bufferevent_enable(bev, EV_READ);
    process(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;
    /* a client that sent its request and shut its side down still gets the reply */
    if (!(what & BEV_EVENT_ERROR) && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        c->closing = 1;
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_free(arg);
}

static void refuse(evutil_socket_t fd)
{
    static struct log_every refused_log = LOG_EVERY(10);
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    stats.http_rejected_total++;
    log_every(&refused_log, LOG_LEVEL_WARN,
              "HTTP: http_max_connections (%d) reached, refused a "
              "connection",
              broker.conf.http_max_connections);
    if (send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* the client is gone */
    }
    evutil_closesocket(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg)
{
    (void)l, (void)addr, (void)len, (void)arg;
    if (http.count >= (size_t)broker.conf.http_max_connections) return refuse(fd);
    struct http_conn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->bev = bufferevent_socket_new(broker.base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->deadline = evtimer_new(broker.base, on_deadline, c);
    }
    if (c == NULL || c->bev == NULL || c->deadline == NULL) {
        if (c && c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c && c->deadline) event_free(c->deadline);
        free(c);
        return;
    }
    c->next = http.conns;
    if (http.conns) http.conns->prev = c;
    http.conns = c;
    http.count++;
    bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    arm_deadline(c, broker.conf.http_header_timeout);
}

int http_start(void)
{
    const char *addr = broker.conf.http_listen;
    if (addr == NULL) return 0;
    struct sockaddr_storage ss;
    socklen_t len;
    char why[NETADDR_WHY_MAX];
    if (netaddr_resolve(addr, &ss, &len, why, sizeof why) != 0) {
        log_error("http_listen %s: %s", addr, why);
        return -1;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
    http.listener = listener_new(broker.base, (struct sockaddr *)&ss, (int)len, flags, on_accept,
                                 NULL, addr);
    if (http.listener == NULL) {
        log_error("cannot listen for HTTP on %s: %s", addr, strerror(errno));
        return -1;
    }
    log_info("metrics on http://%s/metrics", addr);
    return 0;
}

void http_stop(void)
{
    listener_free(http.listener);
    http.listener = NULL;
    for (struct http_conn *c = http.conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_free(c);
    }
}
