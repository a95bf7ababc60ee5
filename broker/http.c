/* http: evhttp serving the loop's counters as Prometheus metrics, and a Redis health check. */
#include "http.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "broker.h"
#include "log.h"
#include "luahost.h"
#include "presence.h"
#include "session.h"
#include "store.h"
#include "worker.h"

static struct evhttp *http;

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
                            (double)stats_bucket_bound_us(i) / 1e6,
                            (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)count, name, (double)sum_us / 1e6, name,
                        (unsigned long long)count);
}

static void write_metrics(struct evbuffer *out)
{
    const struct stats *s = &broker.stats;
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
    counter(out, "moonpost_broadcast_deliveries_total", "Broadcast frames queued to sessions.",
            s->broadcast_deliveries_total);
    counter(out, "moonpost_slow_consumers_dropped_total", "Sessions dropped for a full output.",
            s->slow_consumers_total);
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

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, "only GET");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    if (strcmp(uri, "/metrics") == 0) {
        write_metrics(out);
        evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4");
        evhttp_send_reply(req, 200, "OK", out);
    } else if (strcmp(uri, "/healthz") == 0) {
        int up = store_ready();
        evbuffer_add_printf(out, "%s%s\n", up ? "" : "redis ", up ? "ok" : store_state_text());
        evhttp_add_header(headers, "Content-Type", "text/plain");
        evhttp_send_reply(req, up ? 200 : 503, up ? "OK" : "Service Unavailable", out);
    } else {
        evhttp_send_error(req, 404, "not found");
    }
    evbuffer_free(out);
}

int http_start(void)
{
    const char *addr = broker.conf.http_listen;
    if (addr == NULL) return 0;
    char host[256];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        log_error("http_listen %s: not a host:port address", addr);
        return -1;
    }
    *colon = '\0';
    char *h = host;
    if (h[0] == '[') { /* [::1]:9889 */
        h++;
        char *end = strchr(h, ']');
        if (end) *end = '\0';
    }
    http = evhttp_new(broker.base);
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535 || http == NULL || evhttp_bind_socket(http, h, (ev_uint16_t)port) != 0) {
        log_error("cannot listen for HTTP on %s", addr);
        return -1;
    }
    evhttp_set_gencb(http, on_request, NULL);
    log_info("metrics on http://%s/metrics", addr);
    return 0;
}

void http_stop(void)
{
    if (http) evhttp_free(http);
    http = NULL;
}
