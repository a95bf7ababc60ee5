/* admin_cluster: the admin types answered from the cluster registry, for every node alike:
 * admin.nodes, admin.users and admin.kick. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cluster.h"
#include "frame.h"
#include "log.h"
#include "msgread.h"
#include "presence.h"
#include "reply.h"
#include "router.h"

/* The request an answer from Redis is for. */
struct pending {
    session_handle session;
    uint64_t id;
    int has_id;
    char user[SESSION_USER_MAX + 1];
};

static struct pending *pending_new(struct session *s, const struct frame_info *info)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->session = s->handle;
    p->id = info->id;
    p->has_id = info->has_id;
    return p;
}

/* The admin session still waiting for P, or NULL; P is freed either way by the caller. */
static struct session *pending_session(const struct pending *p)
{
    return session_get(p->session);
}

static void answer_code(struct pending *p, int code, const char *why)
{
    struct session *s = pending_session(p);
    if (s != NULL) {
        session_reply(s, p->has_id, p->id, code, why);
        session_handler_done(s);
    }
    free(p);
}

/* Sends the reply built with admin_reply_begin, ends the request and frees P. */
static void answer(struct pending *p, struct session *s)
{
    admin_reply_end(s);
    session_handler_done(s);
    free(p);
}

static int redis_failed(struct pending *p, const redisReply *reply, const char *error)
{
    if (reply != NULL && reply->type != REDIS_REPLY_ERROR) return 0;
    log_warn("admin: registry call failed: %s", reply != NULL ? reply->str : error);
    answer_code(p, 503, "storage unavailable");
    return 1;
}

static int64_t int_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
}

/* ---- admin.nodes ---- */

static void on_nodes(redisReply *reply, const char *error, void *arg)
{
    struct pending *p = arg;
    if (redis_failed(p, reply, error)) return;
    struct session *s = pending_session(p);
    if (s == NULL) return free(p);
    size_t n = reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0;
    msgpack_packer *pk = admin_reply_begin(p->has_id, p->id, 1);
    reply_pack_str(pk, "nodes");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        int ok = e->type == REDIS_REPLY_ARRAY && e->elements == 3;
        msgpack_pack_map(pk, 3);
        reply_pack_str(pk, "node");
        msgpack_pack_str_with_body(pk, ok ? e->element[0]->str : "", ok ? e->element[0]->len : 0);
        reply_pack_str(pk, "sessions");
        msgpack_pack_int64(pk, ok ? int_of(e->element[1]) : 0);
        reply_pack_str(pk, "started");
        msgpack_pack_int64(pk, ok ? int_of(e->element[2]) : 0);
    }
    answer(p, s);
}

static void admin_nodes(struct session *s, const struct frame_info *info, const uint8_t *body,
                        size_t len, struct pending *p)
{
    (void)s, (void)info, (void)body, (void)len;
    if (cluster_call("moonpost_nodes", 0, NULL, NULL, on_nodes, p) != 0)
        answer_code(p, 503, "storage unavailable");
}

/* ---- admin.users {limit}: the online users of every node ---- */

static void on_users(redisReply *reply, const char *error, void *arg)
{
    struct pending *p = arg;
    if (redis_failed(p, reply, error)) return;
    struct session *s = pending_session(p);
    if (s == NULL) return free(p);
    const redisReply *users = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
                                  ? reply->element[1]
                                  : NULL;
    size_t n = users != NULL && users->type == REDIS_REPLY_ARRAY ? users->elements : 0;
    msgpack_packer *pk = admin_reply_begin(p->has_id, p->id, 2);
    reply_pack_str(pk, "users");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_str_with_body(pk, users->element[i]->str, users->element[i]->len);
    reply_pack_str(pk, "count");
    msgpack_pack_int64(pk, users != NULL ? int_of(reply->element[0]) : 0);
    answer(p, s);
}

static void admin_users(struct session *s, const struct frame_info *info, const uint8_t *body,
                        size_t len, struct pending *p)
{
    (void)s, (void)info;
    uint64_t limit = 10000;
    struct msgread_item item;
    if (frame_get(body, len, "limit", &item) && item.type == MSGREAD_UINT && item.v.u < limit)
        limit = item.v.u;
    char text[24];
    snprintf(text, sizeof text, "%llu", (unsigned long long)limit);
    const char *argv[] = {text};
    if (cluster_call("moonpost_users", 1, argv, NULL, on_users, p) != 0)
        answer_code(p, 503, "storage unavailable");
}

/* ---- admin.kick {user}: wherever the user is logged in ---- */

static void on_kick(redisReply *reply, const char *error, void *arg)
{
    struct pending *p = arg;
    if (redis_failed(p, reply, error)) return;
    if (reply->type != REDIS_REPLY_STRING) return answer_code(p, 404, "user not online");
    log_info("admin: kicked %s (on node %s)", p->user, reply->str);
    answer_code(p, 200, NULL);
}

static void admin_kick(struct session *s, const struct frame_info *info, const uint8_t *body,
                       size_t len, struct pending *p)
{
    (void)s, (void)info;
    int n = admin_str_field(body, len, "user", p->user, sizeof p->user);
    if (n <= 0) return answer_code(p, 400, "kick needs user");
    struct session *victim = presence_find(p->user, (size_t)n);
    if (victim != NULL) {
        log_info("admin: kicked %s", p->user);
        session_close(victim, 403, "kicked by an administrator");
        return answer_code(p, 200, NULL);
    }
    if (cluster_kick(p->user, (size_t)n, on_kick, p) != 0)
        answer_code(p, 503, "storage unavailable");
}

/* ---- routes ---- */

/* A command ends its request (session_handler_done) when its answer is sent. */
typedef void (*admin_async_fn)(struct session *s, const struct frame_info *info,
                               const uint8_t *body, size_t len, struct pending *p);

static const struct {
    const char *type;
    admin_async_fn fn;
} commands[] = {
    {"admin.nodes", admin_nodes},
    {"admin.users", admin_users},
    {"admin.kick", admin_kick},
};

static void route(void *state, struct session *s, const struct frame_info *info,
                  const uint8_t *body, size_t len)
{
    admin_async_fn fn = *(const admin_async_fn *)state;
    struct pending *p = pending_new(s, info);
    if (p == NULL) {
        session_reply(s, info->has_id, info->id, 500, "out of memory");
        return session_handler_done(s);
    }
    fn(s, info, body, len, p);
}

int admin_cluster_start(void)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (router_add(commands[i].type, ROUTE_ADMIN, route, (void *)&commands[i].fn) !=
            ROUTER_ADDED)
            return -1;
    return 0;
}
