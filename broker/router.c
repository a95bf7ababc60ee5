/* router: type -> handler, the checks every frame passes, and delivery to sessions. */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "presence.h"
#include "router_gap.h"
#include "stats.h"

#define ROUTER_MAX_HOOKS 16

struct route {
    char *type;
    size_t type_len;
    unsigned flags;
    router_handler fn;
    void *state;
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

/* The admin.* names belong to the admin socket, known or not (PROTOCOL.md, order of checks). */
static int is_admin_name(const uint8_t *type, size_t len)
{
    return len >= 6 && memcmp(type, "admin.", 6) == 0;
}

int router_add(const char *type, unsigned flags, router_handler fn, void *state)
{
    size_t len = strlen(type);
    struct route *r = find_route((const uint8_t *)type, len);
    if (r != NULL && !(r->flags & ROUTE_REPLACEABLE)) return ROUTER_TAKEN;
    int admin_name = is_admin_name((const uint8_t *)type, len);
    if (admin_name != ((flags & ROUTE_ADMIN) != 0) ||
        ((flags & ROUTE_ADMIN) && (flags & (ROUTE_ANONYMOUS | ROUTE_ALSO_ADMIN))))
        return ROUTER_BAD_FLAGS;
    if (r == NULL) {
        if (route_count == route_capacity) {
            size_t cap = route_capacity ? route_capacity * 2 : 16;
            struct route *grown = realloc(routes, cap * sizeof *grown);
            if (grown == NULL) return ROUTER_NO_MEMORY;
            routes = grown;
            route_capacity = cap;
        }
        r = &routes[route_count];
        r->type = strdup(type);
        if (r->type == NULL) return ROUTER_NO_MEMORY;
        r->type_len = len;
        route_count++;
    }
    r->flags = flags;
    r->fn = fn;
    r->state = state;
    return ROUTER_ADDED;
}

void router_remove_fn(router_handler fn)
{
    size_t kept = 0;
    for (size_t i = 0; i < route_count; i++) {
        if (routes[i].fn == fn)
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

const char *router_route_at(size_t i, unsigned *flags, router_handler *fn)
{
    if (i >= route_count) return NULL;
    *flags = routes[i].flags;
    *fn = routes[i].fn;
    return routes[i].type;
}

static void refuse(struct session *s, const struct frame_info *info, int code, const char *why)
{
    session_reply(s, info->has_id, info->id, code, why);
}

/* The one place that checks a frame against its route, in PROTOCOL.md's order: the socket
 * (admin types only on the admin socket, which serves client types flagged ROUTE_ALSO_ADMIN),
 * the login (401), the type (404), the message hooks; then the handler runs, counted in
 * flight until it calls session_handler_done. */
void router_dispatch(struct session *s, const struct frame_info *info, const uint8_t *body,
                     size_t len)
{
    struct route *r = find_route(info->type, info->type_len);
    int admin_type = r != NULL ? (r->flags & ROUTE_ADMIN) != 0
                               : is_admin_name(info->type, info->type_len);
    if (s->kind == SESSION_ADMIN) {
        if (!admin_type && (r == NULL || !(r->flags & ROUTE_ALSO_ADMIN)))
            return refuse(s, info, 403, "the admin socket serves admin.* types and ping only");
    } else {
        if (admin_type)
            return refuse(s, info, 403, "admin types are only served on the admin socket");
        if (s->state == SESSION_ANONYMOUS && (r == NULL || !(r->flags & ROUTE_ANONYMOUS)))
            return refuse(s, info, 401, "not logged in");
    }
    if (r == NULL) return refuse(s, info, 404, "unknown type");
    for (size_t i = 0; i < hook_count; i++) {
        const char *why = "refused";
        int code = hooks[i].fn(hooks[i].state, s, info, body, len, &why);
        if (code != 0) return refuse(s, info, code, why);
    }
    s->inflight++;
    r->fn(r->state, s, info, body, len);
}

static struct router_remote remote;
static router_resync_fn resync;

void router_set_remote(const struct router_remote *r)
{
    if (r != NULL)
        remote = *r;
    else
        memset(&remote, 0, sizeof remote);
}

void router_set_resync(router_resync_fn fn)
{
    resync = fn;
}

int router_push(struct session *s, const void *frame, size_t frame_len, uint64_t mid)
{
    if (mid > 0) {
        if (mid <= s->last_mid) return 0;
        s->last_mid = mid;
        if (mid > s->covered_mid) s->covered_mid = mid;
    }
    session_send_bytes(s, frame, frame_len);
    return 1;
}

/* A live message whose mid is not above what the session was already sent, and not a repeat
 * of what a replay pushed: its mid was handed out behind a later one, which the mid rule of the
 * Redis functions prevents unless the clocks of Redis and the broker went back further than
 * the data Redis lost. The client would take it for a repeat, so it is not pushed (it stays in
 * the mailbox until the client acks past it, which no mid rule can prevent once the clocks went
 * back); it is never silent. */
static void mid_went_back(const struct session *s, uint64_t mid)
{
    stats.mid_regressions_total++;
    log_error("session %s: live message mid %llu is not above the last pushed mid %llu, not "
              "pushed (a mid went back: check the clocks of Redis and the broker)",
              s->user, (unsigned long long)mid, (unsigned long long)s->last_mid);
}

void router_request_resync(struct session *s, int gap)
{
    if (s->state != SESSION_AUTHENTICATED) return;
    router_drop_held(s);
    if (s->replaying) { /* the replay running may have read before the loss: once more */
        s->held_mid = UINT64_MAX;
        return;
    }
    s->replaying = 1;
    s->held_mid = 0;
    if (resync != NULL && resync(s) == 0) {
        stats.resyncs_total++;
        return;
    }
    s->replaying = 0;
    if (gap) session_close(s, 503, "messages may have been missed, log in again");
}

int router_replay_caught_up(struct session *s)
{
    if (s->held_mid > s->last_mid) {
        s->held_mid = 0;
        return 0;
    }
    s->replaying = 0;
    s->held_mid = 0;
    return 1;
}

int router_live_wanted(struct session *s, uint64_t mid, uint64_t prev)
{
    if (mid == 0) return ROUTER_LIVE_PUSH;
    if (s->replaying) {
        if (mid > s->held_mid) s->held_mid = mid;
        return ROUTER_LIVE_SKIP;
    }
    if (mid <= s->last_mid) {
        if (mid > s->covered_mid) mid_went_back(s, mid);
        return ROUTER_LIVE_SKIP;
    }
    if (prev > s->last_mid) return ROUTER_LIVE_HOLD; /* an earlier one is on its way */
    return ROUTER_LIVE_PUSH;
}

void router_push_live(struct session *s, const void *frame, size_t frame_len, uint64_t mid)
{
    if (mid > 0) s->last_mid = mid;
    session_send_bytes(s, frame, frame_len);
    stats.deliveries_total++;
}

void router_deliver_wanted(struct session *s, const void *frame, size_t frame_len, uint64_t mid)
{
    router_push_live(s, frame, frame_len, mid);
    if (mid > 0 && s->held != NULL) router_release_held(s);
}

int router_deliver_to(struct session *s, const void *frame, size_t frame_len, uint64_t mid,
                      uint64_t prev)
{
    int wanted = router_live_wanted(s, mid, prev);
    if (wanted == ROUTER_LIVE_PUSH) router_deliver_wanted(s, frame, frame_len, mid);
    if (wanted == ROUTER_LIVE_HOLD) router_hold(s, frame, frame_len, mid, prev);
    return 1;
}

int router_deliver(const char *user, size_t user_len, const void *frame, size_t frame_len,
                   uint64_t mid, uint64_t prev)
{
    struct session *s = presence_find(user, user_len);
    if (s != NULL) return router_deliver_to(s, frame, frame_len, mid, prev);
    if (remote.deliver != NULL) remote.deliver(user, user_len, frame, frame_len, mid, prev);
    return 0;
}

size_t router_broadcast_local(const void *frame, size_t frame_len, const struct session *except)
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
    stats.broadcast_deliveries_total += sent;
    return sent;
}

size_t router_broadcast(const void *frame, size_t frame_len, const struct session *except)
{
    if (remote.broadcast != NULL) remote.broadcast(frame, frame_len);
    return router_broadcast_local(frame, frame_len, except);
}
