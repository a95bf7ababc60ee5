/* router: type -> handler, the checks every frame passes, and delivery to sessions. */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "luahost.h"
#include "plugin.h"
#include "presence.h"

#define ROUTER_MAX_HOOKS 16

struct route {
    char *type;
    size_t type_len;
    enum route_kind kind;
    int anonymous;
    router_c_handler fn;
    void *state;
    int lua_slot; /* ROUTE_LUA: where luahost finds the handler, so the type is looked up once */
};

struct hook {
    router_message_hook fn;
    void *state;
};

static struct route *routes;
static size_t route_count, route_capacity;
static struct hook hooks[ROUTER_MAX_HOOKS];
static size_t hook_count;

static struct route *find_route(const uint8_t *type, size_t len)
{
    for (size_t i = 0; i < route_count; i++) {
        if (routes[i].type_len == len && memcmp(routes[i].type, type, len) == 0) return &routes[i];
    }
    return NULL;
}

static int add_route(const char *type, enum route_kind kind, int anonymous, router_c_handler fn,
                     void *state)
{
    struct route *r = find_route((const uint8_t *)type, strlen(type));
    if (r == NULL) {
        if (route_count == route_capacity) {
            size_t cap = route_capacity ? route_capacity * 2 : 16;
            struct route *grown = realloc(routes, cap * sizeof *grown);
            if (grown == NULL) return -1;
            routes = grown;
            route_capacity = cap;
        }
        r = &routes[route_count];
        r->type = strdup(type);
        if (r->type == NULL) return -1;
        r->type_len = strlen(type);
        route_count++;
    }
    r->kind = kind;
    r->anonymous = anonymous;
    r->fn = fn;
    r->state = state;
    return 0;
}

int router_add_lua(const char *type, int anonymous, int slot)
{
    struct route *r = find_route((const uint8_t *)type, strlen(type));
    if (r != NULL && r->kind == ROUTE_C) {
        log_warn("type '%s' is served by a C plugin; its Lua handler is not used", type);
        return -1;
    }
    if (add_route(type, ROUTE_LUA, anonymous, NULL, NULL) != 0) return -1;
    find_route((const uint8_t *)type, strlen(type))->lua_slot = slot;
    return 0;
}

int router_add_c(const char *type, int anonymous, router_c_handler fn, void *state)
{
    return add_route(type, ROUTE_C, anonymous, fn, state);
}

void router_clear_lua(void)
{
    size_t kept = 0;
    for (size_t i = 0; i < route_count; i++) {
        if (routes[i].kind == ROUTE_LUA)
            free(routes[i].type);
        else
            routes[kept++] = routes[i];
    }
    route_count = kept;
}

int router_add_message_hook(router_message_hook fn, void *state)
{
    if (hook_count == ROUTER_MAX_HOOKS) return -1;
    hooks[hook_count++] = (struct hook){fn, state};
    return 0;
}

void router_free(void)
{
    for (size_t i = 0; i < route_count; i++) free(routes[i].type);
    free(routes);
    routes = NULL;
    route_count = route_capacity = 0;
    hook_count = 0;
}

size_t router_count(void)
{
    return route_count;
}

const char *router_type_at(size_t i, enum route_kind *kind, int *anonymous)
{
    if (i >= route_count) return NULL;
    *kind = routes[i].kind;
    *anonymous = routes[i].anonymous;
    return routes[i].type;
}

static int is_admin_type(const struct frame_info *info)
{
    return info->type_len >= 6 && memcmp(info->type, "admin.", 6) == 0;
}

static void refuse(struct session *s, const struct frame_info *info, int code, const char *why)
{
    session_reply(s, info->has_id, info->id, code, why);
}

void router_dispatch(struct session *s, const struct frame_info *info, const uint8_t *body,
                     size_t len)
{
    int admin_type = is_admin_type(info);
    if (admin_type && s->kind != SESSION_ADMIN)
        return refuse(s, info, 403, "admin types are only served on the admin socket");
    if (s->kind == SESSION_ADMIN && !admin_type &&
        !(info->type_len == 4 && memcmp(info->type, "ping", 4) == 0))
        return refuse(s, info, 403, "the admin socket serves admin.* types and ping only");
    struct route *r = find_route(info->type, info->type_len);
    if (s->state == SESSION_ANONYMOUS && s->kind == SESSION_CLIENT && (r == NULL || !r->anonymous))
        return refuse(s, info, 401, "not logged in");
    if (r == NULL) return refuse(s, info, 404, "unknown type");
    for (size_t i = 0; i < hook_count; i++) {
        const char *why = "refused";
        int code = hooks[i].fn(hooks[i].state, s, info, body, len, &why);
        if (code != 0) return refuse(s, info, code, why);
    }
    if (r->kind == ROUTE_C)
        r->fn(r->state, s, info, body, len);
    else
        luahost_dispatch(s, info, body, len, r->lua_slot);
}

void router_session_freed(struct session *s)
{
    luahost_session_freed(s->handle);
    if (s->kind != SESSION_CLIENT) return;
    plugin_session_closed(s);
    if (s->user_len == 0) return;
    if (presence_find(s->user, s->user_len) == NULL) luahost_user_gone(s->user, s->user_len);
}

int router_push(struct session *s, const void *frame, size_t frame_len, uint64_t mid)
{
    if (mid > 0) {
        if (mid <= s->last_mid) return 0;
        s->last_mid = mid;
    }
    session_send_bytes(s, frame, frame_len);
    return 1;
}

/* A live message whose mid is not above what the session was already sent: its mid was handed
 * out behind a later one, which the mid rule of the Redis functions prevents unless the clocks
 * of Redis and the broker went back further than the data Redis lost. The client would take it
 * for a repeat, so it is not pushed (it stays in the mailbox until the client acks past it,
 * which no mid rule can prevent once the clocks went back); it is never silent. */
static void mid_went_back(const struct session *s, uint64_t mid)
{
    broker.stats.mid_regressions_total++;
    log_error("session %s: live message mid %llu is not above the last pushed mid %llu, not "
              "pushed (a mid went back: check the clocks of Redis and the broker)",
              s->user, (unsigned long long)mid, (unsigned long long)s->last_mid);
}

int router_live_wanted(struct session *s, uint64_t mid)
{
    if (mid == 0) return 1;
    if (s->replaying) return 0;
    if (mid <= s->last_mid) {
        mid_went_back(s, mid);
        return 0;
    }
    return 1;
}

void router_deliver_wanted(struct session *s, const void *frame, size_t frame_len, uint64_t mid)
{
    if (mid > 0) s->last_mid = mid;
    session_send_bytes(s, frame, frame_len);
    broker.stats.deliveries_total++;
}

int router_deliver_to(struct session *s, const void *frame, size_t frame_len, uint64_t mid)
{
    if (router_live_wanted(s, mid)) router_deliver_wanted(s, frame, frame_len, mid);
    return 1;
}

int router_deliver(const char *user, size_t user_len, const void *frame, size_t frame_len,
                   uint64_t mid)
{
    struct session *s = presence_find(user, user_len);
    return s != NULL ? router_deliver_to(s, frame, frame_len, mid) : 0;
}

size_t router_broadcast(const void *frame, size_t frame_len, const struct session *except)
{
    size_t sent = 0;
    /* session_send_bytes may drop a slow reader, which reorders the online list: walk it from
     * the end so that the swap-remove only moves already visited entries */
    for (size_t i = presence_count(); i-- > 0;) {
        struct session *s = presence_at(i);
        if (s == NULL || s == except) continue;
        session_send_bytes(s, frame, frame_len);
        sent++;
    }
    broker.stats.broadcast_deliveries_total += sent;
    return sent;
}
