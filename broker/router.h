/* router: one table of routes {type, flags, handler, state}, the order of checks of
 * PROTOCOL.md, message hooks before dispatch, the count of requests in flight, and the
 * delivery primitives. It knows handlers only as function pointers: the Lua host and the
 * plugin loader register theirs like any other module. */
#ifndef MOONPOST_ROUTER_H
#define MOONPOST_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "session.h"

/* A route's handler. The router counted the request in flight before calling it: whatever
 * path the request takes, it ends with exactly one session_handler_done(s) (after its reply),
 * unless the session is gone by then. */
typedef void (*router_handler)(void *state, struct session *s, const struct frame_info *info,
                               const uint8_t *body, size_t len);

/* A hook run before dispatch; returns 0 to let the frame through, or a reply code (429, 403...)
 * to refuse it, with *error set to a static reason. */
typedef int (*router_message_hook)(void *state, struct session *s, const struct frame_info *info,
                                   const uint8_t *body, size_t len, const char **error);

/* What a route allows; router_dispatch checks them in PROTOCOL.md's order. */
enum route_flags {
    ROUTE_ANONYMOUS = 1u << 0,  /* may run before login */
    ROUTE_ADMIN = 1u << 1,      /* served only on the admin socket (the admin.* types) */
    ROUTE_ALSO_ADMIN = 1u << 2, /* a client type served on the admin socket too (ping) */
    ROUTE_REPLACEABLE = 1u << 3, /* another handler may take the type (scripts yield to C) */
};

enum router_add_result { ROUTER_ADDED = 0, ROUTER_NO_MEMORY = -1, ROUTER_TAKEN = -2,
                         ROUTER_BAD_FLAGS = -3 };

/* Serves TYPE with FN(STATE, ...) under FLAGS. A route of TYPE flagged ROUTE_REPLACEABLE is
 * replaced; any other stays and ROUTER_TAKEN is returned. The admin.*
 * names belong to the admin socket: TYPE starts with "admin." exactly when FLAGS has
 * ROUTE_ADMIN (else ROUTER_BAD_FLAGS). */
int router_add(const char *type, unsigned flags, router_handler fn, void *state);
/* Forgets every route served by FN (the scripts' routes, before a reload adds the new ones). */
void router_remove_fn(router_handler fn);
int router_add_message_hook(router_message_hook fn, void *state);
void router_free(void);

/* Checks and dispatches one well-formed frame. */
void router_dispatch(struct session *s, const struct frame_info *info, const uint8_t *body,
                     size_t len);

/* Queues FRAME to S. MID > 0 marks a mailbox message: pushed only when above the session's
 * last_mid, which it then becomes, so a session never sees a mid twice or out of order.
 * Returns 1 when queued. */
int router_push(struct session *s, const void *frame, size_t frame_len, uint64_t mid);

/* Queues FRAME to USER's session. A mailbox message (MID > 0) is also held back while the
 * session replays its mailbox (the replay will bring it). Returns 1 when the user is online
 * (pushed or about to be replayed), 0 when not. */
int router_deliver(const char *user, size_t user_len, const void *frame, size_t frame_len,
                   uint64_t mid);
/* The same for a session already found (presence_find). */
int router_deliver_to(struct session *s, const void *frame, size_t frame_len, uint64_t mid);
/* router_deliver_to in two steps, so that a caller encodes only what is pushed: whether a live
 * message with MID (0: not a mailbox message) goes to S now (not while S replays; a mid that
 * went back is logged and counted), then the push of one that does. */
int router_live_wanted(struct session *s, uint64_t mid);
void router_deliver_wanted(struct session *s, const void *frame, size_t frame_len, uint64_t mid);

/* Queues FRAME (encoded once) to every online session but EXCEPT; returns how many. */
size_t router_broadcast(const void *frame, size_t frame_len, const struct session *except);

/* Route introspection for admin.plugins and tests. */
size_t router_count(void);
/* The type of route I (NULL past the end), with its flags and handler. */
const char *router_route_at(size_t i, unsigned *flags, router_handler *fn);

#endif
