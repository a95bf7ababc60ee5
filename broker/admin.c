/* admin: stats, users, kick, reload, shutdown, plugins, loglevel for moonpostctl (the
 * scripts serve admin.broadcast), and metrics and health for a supervisor (processes N). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "log.h"
#include "luahost.h"
#include "metrics.h"
#include "msgread.h"
#include "plugin.h"
#include "presence.h"
#include "reload.h"
#include "reply.h"
#include "router.h"
#include "shutdown.h"
#include "store.h"

static time_t started_at;

msgpack_packer *admin_reply_begin(int has_id, uint64_t id, size_t fields)
{
    return reply_begin_in(&broker.scratch, has_id, id, 200, fields);
}

void admin_reply_end(struct session *s)
{
    size_t n = codec_frame_end(&broker.scratch);
    stats_count_reply(&stats, 200);
    session_send_bytes(s, broker.scratch.sb.data, n);
}

static void pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    reply_pack_str(pk, key);
    msgpack_pack_uint64(pk, v);
}

static void admin_stats(void *state, struct session *s, const struct frame_info *info,
                        const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    const struct stats *st = &stats;
    msgpack_packer *pk = admin_reply_begin(info->has_id, info->id, 14);
    pack_kv_u64(pk, "uptime", (uint64_t)(time(NULL) - started_at));
    pack_kv_u64(pk, "connections", session_count());
    pack_kv_u64(pk, "online", presence_count());
    pack_kv_u64(pk, "connections_total", st->connections_total);
    pack_kv_u64(pk, "frames_in", st->frames_in_total);
    pack_kv_u64(pk, "frames_out", st->frames_out_total);
    pack_kv_u64(pk, "malformed_frames", st->malformed_frames_total);
    pack_kv_u64(pk, "deliveries", st->deliveries_total);
    pack_kv_u64(pk, "broadcast_deliveries", st->broadcast_deliveries_total);
    pack_kv_u64(pk, "slow_consumers", st->slow_consumers_total);
    pack_kv_u64(pk, "handler_errors", st->handler_errors_total);
    pack_kv_u64(pk, "reloads", st->reloads_total);
    reply_pack_str(pk, "redis");
    reply_pack_str(pk, store_state_text());
    reply_pack_str(pk, "node");
    reply_pack_str(pk, broker.conf.node_id);
    admin_reply_end(s);
}

int admin_str_field(const uint8_t *body, size_t len, const char *key, char *buf, size_t cap)
{
    struct msgread_item item;
    if (!frame_get(body, len, key, &item) || item.type != MSGREAD_STR || item.v.str.len >= cap)
        return -1;
    memcpy(buf, item.v.str.ptr, item.v.str.len);
    buf[item.v.str.len] = '\0';
    return (int)item.v.str.len;
}

static void admin_reload(void *state, struct session *s, const struct frame_info *info,
                         const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    char err[1024];
    if (broker_reload(err, sizeof err) != 0)
        return session_reply(s, info->has_id, info->id, 500, err);
    session_reply(s, info->has_id, info->id, 200, NULL);
}

static void admin_shutdown(void *state, struct session *s, const struct frame_info *info,
                           const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    session_reply(s, info->has_id, info->id, 200, NULL);
    broker_shutdown("admin.shutdown");
}

static void admin_plugins(void *state, struct session *s, const struct frame_info *info,
                          const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    size_t routes = router_count();
    msgpack_packer *pk = admin_reply_begin(info->has_id, info->id, 2);
    reply_pack_str(pk, "plugins");
    plugin_pack_list(pk);
    reply_pack_str(pk, "handlers");
    msgpack_pack_array(pk, routes);
    for (size_t i = 0; i < routes; i++) {
        unsigned flags;
        router_handler fn;
        const char *type = router_route_at(i, &flags, &fn);
        msgpack_pack_map(pk, 3);
        reply_pack_str(pk, "type");
        reply_pack_str(pk, type);
        reply_pack_str(pk, "impl");
        reply_pack_str(pk, fn == luahost_route ? "lua" : "c");
        reply_pack_str(pk, "anonymous");
        if (flags & ROUTE_ANONYMOUS)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    admin_reply_end(s);
}

static void admin_loglevel(void *state, struct session *s, const struct frame_info *info,
                           const uint8_t *body, size_t len)
{
    (void)state;
    char name[16];
    int level = admin_str_field(body, len, "level", name, sizeof name) > 0 ? conf_log_level_parse(name)
                                                                     : -1;
    if (level < 0)
        return session_reply(s, info->has_id, info->id, 400,
                             "level must be debug, info, warn or error");
    log_set_level((enum conf_log_level)level);
    log_info("admin: log level set to %s", name);
    session_reply(s, info->has_id, info->id, 200, NULL);
}

/* The /metrics text of this broker, for a supervisor that serves http_listen for its workers. */
static void admin_metrics(void *state, struct session *s, const struct frame_info *info,
                          const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    struct evbuffer *text = evbuffer_new();
    if (text == NULL) return session_reply(s, info->has_id, info->id, 500, "no memory");
    metrics_write(text);
    size_t n = evbuffer_get_length(text);
    msgpack_packer *pk = admin_reply_begin(info->has_id, info->id, 1);
    reply_pack_str(pk, "metrics");
    msgpack_pack_str_with_body(pk, evbuffer_pullup(text, -1), n);
    admin_reply_end(s);
    evbuffer_free(text);
}

/* What /healthz would answer: `healthy` (bool) and `health` ("ok" or the reason). */
static void admin_health(void *state, struct session *s, const struct frame_info *info,
                         const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    char text[128];
    int healthy = metrics_healthy(text, sizeof text);
    msgpack_packer *pk = admin_reply_begin(info->has_id, info->id, 2);
    reply_pack_str(pk, "healthy");
    if (healthy)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    reply_pack_str(pk, "health");
    reply_pack_str(pk, text);
    admin_reply_end(s);
}

/* An admin command answers at once: the route ends its request after it returns. */
typedef void (*admin_fn)(void *state, struct session *s, const struct frame_info *info,
                         const uint8_t *body, size_t len);

static const struct admin_command {
    const char *type;
    admin_fn fn;
} admin_commands[] = {
    {"admin.stats", admin_stats},     {"admin.reload", admin_reload},
    {"admin.shutdown", admin_shutdown}, {"admin.plugins", admin_plugins},
    {"admin.loglevel", admin_loglevel}, {"admin.metrics", admin_metrics},
    {"admin.health", admin_health},
};

static void admin_route(void *state, struct session *s, const struct frame_info *info,
                        const uint8_t *body, size_t len)
{
    const struct admin_command *c = state;
    c->fn(NULL, s, info, body, len);
    session_handler_done(s);
}

int admin_start(void)
{
    started_at = time(NULL);
    for (size_t i = 0; i < sizeof admin_commands / sizeof admin_commands[0]; i++) {
        if (router_add(admin_commands[i].type, ROUTE_ADMIN, admin_route,
                       (void *)&admin_commands[i]) != ROUTER_ADDED)
            return -1;
    }
    return 0;
}
