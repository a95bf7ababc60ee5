/* admin: stats, users, kick, broadcast, reload, shutdown, plugins, loglevel for moonpostctl. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "log.h"
#include "luahost.h"
#include "msgread.h"
#include "plugin.h"
#include "presence.h"
#include "reply.h"
#include "router.h"
#include "store.h"

static time_t started_at;

static void pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    reply_pack_str(pk, key);
    msgpack_pack_uint64(pk, v);
}

static void admin_stats(void *state, struct session *s, const struct frame_info *info,
                        const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    const struct stats *st = &broker.stats;
    msgpack_packer *pk = reply_begin(info->has_id, info->id, 14);
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
    reply_end(s);
}

static void admin_users(void *state, struct session *s, const struct frame_info *info,
                        const uint8_t *body, size_t len)
{
    (void)state;
    size_t limit = 10000;
    struct msgread_item item;
    if (frame_get(body, len, "limit", &item) && item.type == MSGREAD_UINT && item.v.u < limit)
        limit = (size_t)item.v.u;
    size_t total = presence_count();
    size_t n = total < limit ? total : limit;
    msgpack_packer *pk = reply_begin(info->has_id, info->id, 2);
    reply_pack_str(pk, "users");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        struct session *u = presence_at(i);
        msgpack_pack_str_with_body(pk, u->user, u->user_len);
    }
    pack_kv_u64(pk, "count", total);
    reply_end(s);
}

/* Reads a str field into BUF; returns its length or -1. */
static int str_field(const uint8_t *body, size_t len, const char *key, char *buf, size_t cap)
{
    struct msgread_item item;
    if (!frame_get(body, len, key, &item) || item.type != MSGREAD_STR || item.v.str.len >= cap)
        return -1;
    memcpy(buf, item.v.str.ptr, item.v.str.len);
    buf[item.v.str.len] = '\0';
    return (int)item.v.str.len;
}

static void admin_kick(void *state, struct session *s, const struct frame_info *info,
                       const uint8_t *body, size_t len)
{
    (void)state;
    char user[SESSION_USER_MAX + 1];
    int n = str_field(body, len, "user", user, sizeof user);
    if (n <= 0) return session_reply(s, info->has_id, info->id, 400, "kick needs user");
    struct session *victim = presence_find(user, (size_t)n);
    if (victim == NULL) return session_reply(s, info->has_id, info->id, 404, "user not online");
    log_info("admin: kicked %s", user);
    session_close(victim, 403, "kicked by an administrator");
    session_reply(s, info->has_id, info->id, 200, NULL);
}

/* admin.broadcast takes its mid from the same broker-wide counter as user broadcasts, with the
 * scripts' Redis function moonpost_broadcast_mid (mids that do not go back with Redis). */
struct admin_broadcast {
    session_handle admin;
    int has_id;
    uint64_t id;
    size_t body_len;
    int body_is_bin;
    char body[];
};

static void on_broadcast_mid(redisReply *reply, const char *error, void *arg)
{
    struct admin_broadcast *ab = arg;
    struct session *s = session_get(ab->admin);
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (reply != NULL) /* e.g. the chat scripts' function library is not loaded */
            log_error("admin.broadcast: redis: %s",
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "not an integer");
        if (s)
            session_reply(s, ab->has_id, ab->id, reply == NULL ? 503 : 500,
                          reply == NULL ? error : "storage error");
        free(ab);
        return;
    }
    struct codec_buf *b = &broker.scratch;
    codec_frame_begin(b);
    msgpack_pack_map(&b->pk, 5);
    reply_pack_str(&b->pk, "type");
    reply_pack_str(&b->pk, "broadcast");
    reply_pack_str(&b->pk, "mid");
    msgpack_pack_uint64(&b->pk, (uint64_t)reply->integer);
    reply_pack_str(&b->pk, "from");
    reply_pack_str(&b->pk, "admin");
    reply_pack_str(&b->pk, "body");
    if (ab->body_is_bin)
        msgpack_pack_bin_with_body(&b->pk, ab->body, ab->body_len);
    else
        msgpack_pack_str_with_body(&b->pk, ab->body, ab->body_len);
    reply_pack_str(&b->pk, "ts");
    msgpack_pack_int64(&b->pk, broker_now_ms());
    size_t n = codec_frame_end(b);
    size_t sent = router_broadcast(b->sb.data, n, NULL);
    if (s != NULL) {
        msgpack_packer *pk = reply_begin(ab->has_id, ab->id, 2);
        pack_kv_u64(pk, "mid", (uint64_t)reply->integer);
        pack_kv_u64(pk, "sent", sent);
        reply_end(s);
    }
    free(ab);
}

static void admin_broadcast(void *state, struct session *s, const struct frame_info *info,
                            const uint8_t *body, size_t len)
{
    (void)state;
    struct msgread_item item;
    if (!frame_get(body, len, "body", &item) || (item.type != MSGREAD_STR && item.type != MSGREAD_BIN))
        return session_reply(s, info->has_id, info->id, 400, "broadcast needs body");
    if (item.v.str.len > (uint32_t)broker.conf.max_body)
        return session_reply(s, info->has_id, info->id, 413, "body too large");
    struct admin_broadcast *ab = malloc(sizeof *ab + item.v.str.len);
    if (ab == NULL) return session_reply(s, info->has_id, info->id, 500, "out of memory");
    ab->admin = s->handle;
    ab->has_id = info->has_id;
    ab->id = info->id;
    ab->body_len = item.v.str.len;
    ab->body_is_bin = item.type == MSGREAD_BIN;
    memcpy(ab->body, item.v.str.ptr, item.v.str.len);
    char key[256];
    snprintf(key, sizeof key, "%sbmid", broker.conf.redis_prefix ? broker.conf.redis_prefix : "");
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)broker_now_ms());
    const char *argv[] = {"FCALL", "moonpost_broadcast_mid", "1", key, now};
    size_t lens[] = {5, 22, 1, strlen(key), strlen(now)};
    if (store_command(5, argv, lens, on_broadcast_mid, ab) != 0) {
        free(ab);
        session_reply(s, info->has_id, info->id, 503, "storage unavailable");
    }
}

static void admin_reload(void *state, struct session *s, const struct frame_info *info,
                         const uint8_t *body, size_t len)
{
    (void)state, (void)body, (void)len;
    char err[1024];
    if (luahost_reload(err, sizeof err) != 0)
        return session_reply(s, info->has_id, info->id, 500, err);
    store_load_libraries();
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
    msgpack_packer *pk = reply_begin(info->has_id, info->id, 2);
    reply_pack_str(pk, "plugins");
    plugin_pack_list(pk);
    reply_pack_str(pk, "handlers");
    msgpack_pack_array(pk, routes);
    for (size_t i = 0; i < routes; i++) {
        enum route_kind kind;
        int anonymous;
        const char *type = router_type_at(i, &kind, &anonymous);
        msgpack_pack_map(pk, 3);
        reply_pack_str(pk, "type");
        reply_pack_str(pk, type);
        reply_pack_str(pk, "impl");
        reply_pack_str(pk, kind == ROUTE_LUA ? "lua" : "c");
        reply_pack_str(pk, "anonymous");
        if (anonymous)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
    reply_end(s);
}

static void admin_loglevel(void *state, struct session *s, const struct frame_info *info,
                           const uint8_t *body, size_t len)
{
    (void)state;
    char name[16];
    int level = str_field(body, len, "level", name, sizeof name) > 0 ? conf_log_level_parse(name)
                                                                     : -1;
    if (level < 0)
        return session_reply(s, info->has_id, info->id, 400,
                             "level must be debug, info, warn or error");
    log_set_level((enum conf_log_level)level);
    log_info("admin: log level set to %s", name);
    session_reply(s, info->has_id, info->id, 200, NULL);
}

static const struct {
    const char *type;
    router_c_handler fn;
} admin_commands[] = {
    {"admin.stats", admin_stats},         {"admin.users", admin_users},
    {"admin.kick", admin_kick},           {"admin.broadcast", admin_broadcast},
    {"admin.reload", admin_reload},       {"admin.shutdown", admin_shutdown},
    {"admin.plugins", admin_plugins},     {"admin.loglevel", admin_loglevel},
};

int admin_start(void)
{
    started_at = time(NULL);
    for (size_t i = 0; i < sizeof admin_commands / sizeof admin_commands[0]; i++) {
        if (router_add_c(admin_commands[i].type, 0, admin_commands[i].fn, NULL) != 0) return -1;
    }
    return 0;
}
