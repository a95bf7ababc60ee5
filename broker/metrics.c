/* metrics: the one renderer of the broker's Prometheus text (the loop's counters) and the
 * health check, served on http_listen and, for a supervisor, on the admin socket. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "bus.h"
#include "luahost.h"
#include "presence.h"
#include "session.h"
#include "store.h"
#include "web_static.h"
#include "websocket_upgrade.h"
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

void metrics_write(struct evbuffer *out)
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
    counter(out, "moonpost_live_held_total",
            "Live private messages that came before an earlier one and waited for it.",
            s->live_held_total);
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
    evbuffer_add_printf(out,
                        "# HELP moonpost_redis_redirects_total Commands a Redis Cluster "
                        "redirected (moved, ask) or asked to try again (tryagain), followed.\n"
                        "# TYPE moonpost_redis_redirects_total counter\n"
                        "moonpost_redis_redirects_total{kind=\"moved\"} %llu\n"
                        "moonpost_redis_redirects_total{kind=\"ask\"} %llu\n"
                        "moonpost_redis_redirects_total{kind=\"tryagain\"} %llu\n",
                        (unsigned long long)s->redis_redirects_moved_total,
                        (unsigned long long)s->redis_redirects_ask_total,
                        (unsigned long long)s->redis_redirects_tryagain_total);
    counter(out, "moonpost_redis_wait_failures_total",
            "Writes answered 503 because fewer than redis_wait_replicas replicas confirmed them.",
            s->redis_wait_failures_total);
    counter(out, "moonpost_redis_slot_map_reads_total",
            "Redis Cluster slot maps read (CLUSTER SLOTS).", s->redis_slot_map_reads_total);
    gauge(out, "moonpost_redis_up",
          "1 when Redis (on a cluster: the master of every slot) is connected.", store_ready());
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

int metrics_healthy(char *text, size_t size)
{
    int up = store_ready();
    snprintf(text, size, "%s%s", up ? "" : "redis ", up ? "ok" : store_state_text());
    return up;
}

void metrics_serve_http(struct http_conn *c, const char *path)
{
    if (strcmp(path, "/metrics") == 0) {
        struct evbuffer *body = evbuffer_new();
        if (body == NULL) return http_reply_text(c, 500, "no memory");
        metrics_write(body);
        http_reply(c, 200, HTTP_METRICS_TYPE, body);
        evbuffer_free(body);
    } else if (strcmp(path, "/healthz") == 0) {
        char text[128];
        int up = metrics_healthy(text, sizeof text);
        http_reply_text(c, up ? 200 : 503, text);
    } else if (strncmp(path, "/ws", 3) == 0 && (path[3] == '\0' || path[3] == '?')) {
        websocket_upgrade(c);
    } else {
        web_static_serve(c, path); /* the web chat, or 404 */
    }
}
