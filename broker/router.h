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
 * last_mid, which it then becomes, so a session never sees a mid twice or out of order. This is
 * the replay's push: the mid also counts as covered (a live copy of it later is a repeat).
 * Returns 1 when queued. */
int router_push(struct session *s, const void *frame, size_t frame_len, uint64_t mid);

/* Mailbox messages (MID > 0) reach a session in strictly increasing mid order although they
 * come from many nodes: each carries PREV, the highest mid in the recipient's mailbox before it
 * (what the store function returns; 0 when unknown, which trusts the arrival order). One whose
 * PREV was not pushed yet waits: the session resyncs (docs/cluster.md). */

/* Queues FRAME to USER's session on this node, else hands it to the cluster, which sends it to
 * the node holding USER (if any). Returns 1 when USER has a session here, else 0. */
int router_deliver(const char *user, size_t user_len, const void *frame, size_t frame_len,
                   uint64_t mid, uint64_t prev);
/* The same for a session already found (presence_find). */
int router_deliver_to(struct session *s, const void *frame, size_t frame_len, uint64_t mid,
                      uint64_t prev);
/* router_deliver_to in two steps, so that a caller encodes only what is pushed: what to do with
 * a live message to S: push it now, skip it (S replays, and the replay reads again; or a repeat;
 * a mid that went back is logged and counted), or hold it (PREV is not pushed yet: it waits for
 * it, router_gap.c); then the push (router_deliver_wanted, which lets the held messages it
 * unblocks follow) or the hold (router_hold). */
enum { ROUTER_LIVE_SKIP = 0, ROUTER_LIVE_PUSH = 1, ROUTER_LIVE_HOLD = 2 };
int router_live_wanted(struct session *s, uint64_t mid, uint64_t prev);
void router_deliver_wanted(struct session *s, const void *frame, size_t frame_len, uint64_t mid);
/* Holds a copy of FRAME until the message before it is pushed; if it does not come within
 * ROUTER_GAP_WAIT_MS, or too many wait, S resyncs (router_gap.c). */
#define ROUTER_GAP_WAIT_MS 500
void router_hold(struct session *s, const void *frame, size_t frame_len, uint64_t mid,
                 uint64_t prev);
/* The timer that resyncs sessions whose held messages waited too long; 0 or -1. */
int router_start(struct event_base *base);
void router_stop(void);

/* Queues FRAME (encoded once) to every online session of this node but EXCEPT, and hands it to
 * the cluster for every other node; returns how many sessions of this node got it. */
size_t router_broadcast(const void *frame, size_t frame_len, const struct session *except);
/* Only this node's sessions (a broadcast another node sent). */
size_t router_broadcast_local(const void *frame, size_t frame_len, const struct session *except);

/* What the cluster module installs: how a frame reaches the other nodes. */
struct router_remote {
    /* USER has no session here: FRAME goes to the node holding it, if any */
    void (*deliver)(const char *user, size_t user_len, const void *frame, size_t frame_len,
                    uint64_t mid, uint64_t prev);
    /* FRAME goes to the sessions of every other node */
    void (*broadcast)(const void *frame, size_t frame_len);
};
void router_set_remote(const struct router_remote *remote);

/* Starts a resync of S, which may have missed mailbox messages: reads the mailbox above
 * s->last_mid and pushes it (the scripts' mp.on_resync); returns 0 when started. */
typedef int (*router_resync_fn)(struct session *s);
void router_set_resync(router_resync_fn fn);
/* S may have missed live mailbox messages: live ones wait while it resyncs. Without a resync
 * handler (scripts that keep no mailbox), nothing happens, unless GAP says a message came
 * whose prev was not pushed: that session is closed with `bye` 503, and its next login
 * replays. */
void router_request_resync(struct session *s, int gap);
/* A replay or resync read everything above last_mid: returns 1 and ends it, or 0 when a live
 * message was held back meanwhile and the mailbox must be read once more. */
int router_replay_caught_up(struct session *s);

/* Route introspection for admin.plugins and tests. */
size_t router_count(void);
/* The type of route I (NULL past the end), with its flags and handler. */
const char *router_route_at(size_t i, unsigned *flags, router_handler *fn);

#endif
