/* router: one table from message type to handler (Lua or C), the order of checks of
 * PROTOCOL.md, plugin hooks before dispatch, and the two delivery primitives. */
#ifndef MOONPOST_ROUTER_H
#define MOONPOST_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "session.h"

typedef void (*router_c_handler)(void *state, struct session *s, const struct frame_info *info,
                                 const uint8_t *body, size_t len);

/* A hook run before dispatch; returns 0 to let the frame through, or a reply code (429, 403...)
 * to refuse it, with *error set to a static reason. */
typedef int (*router_message_hook)(void *state, struct session *s, const struct frame_info *info,
                                   const uint8_t *body, size_t len, const char **error);

enum route_kind { ROUTE_LUA, ROUTE_C };

/* Registers (or replaces) the handler of TYPE. ANONYMOUS: it may run before login. SLOT is
 * handed back to luahost_dispatch to find the Lua function. */
int router_add_lua(const char *type, int anonymous, int slot);
int router_add_c(const char *type, int anonymous, router_c_handler fn, void *state);
/* Forgets every Lua route (before a reload registers the new ones). C routes stay. */
void router_clear_lua(void);
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

/* A session is being freed: drops its script data and tells plugins and scripts when its user
 * went offline. */
void router_session_freed(struct session *s);

/* Route introspection for admin.plugins and tests. */
size_t router_count(void);
const char *router_type_at(size_t i, enum route_kind *kind, int *anonymous);

#endif
