/* cluster: this broker as one node of several sharing Redis (docs/cluster.md): its id and
 * heartbeat, the presence registry (claims, releases, kicks), the node channels, and the
 * remote half of delivery and broadcast, installed into the router. */
#ifndef MOONPOST_CLUSTER_H
#define MOONPOST_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct event_base;

/* Registers the node on BASE: loads the registry's Redis functions at every connect of the
 * store, beats, subscribes to the node channels (a connection of its own to REDIS), claims
 * every login and installs the router's remote delivery. STOP is called (with
 * broker.exit_code set to 2) when another live process holds this node_id. */
int cluster_start(struct event_base *base, const struct store_options *redis,
                  void (*stop)(const char *why));
/* A graceful stop: the node's entry and its users leave the registry at once. */
void cluster_leave(void);
void cluster_stop(void);

/* The registry's key that every call of its functions declares: "<prefix>nodes", or on a Redis
 * Cluster "<prefix>{registry}:nodes" (every registry key shares that hash tag). The functions
 * name the registry's other keys after it. */
const char *cluster_registry_key(void);
/* Calls the registry's Redis function NAME (declaring cluster_registry_key) with redis_prefix
 * and ARGC more arguments; FN as for store_command. Returns 0, or -1 when Redis is not
 * connected. */
int cluster_call(const char *name, int argc, const char *const *argv, const size_t *lens,
                 store_reply_fn fn, void *arg);

/* Sends FRAME (a mailbox message when MID > 0, with PREV as in router.h) to the session of
 * USER on the node holding it: the registry says which, then that node's channel carries it.
 * FN (may be NULL) gets the registry's answer: the node's name (a string) when a live node
 * holds USER, else nil. Returns 0, or -1 when Redis is not connected. */
int cluster_route(const char *user, size_t user_len, const void *frame, size_t frame_len,
                  uint64_t mid, uint64_t prev, store_reply_fn fn, void *arg);

/* Sends FRAME as cluster_route does, to node TO, which the caller knows holds USER (the user's
 * location, read by the store): no registry call. FN gets the SPUBLISH's reply, the integer 1
 * when TO's channel is subscribed, else 0. Returns 0, or -1 when Redis is not connected. */
int cluster_route_to(const char *to, size_t to_len, const char *user, size_t user_len,
                     const void *frame, size_t frame_len, uint64_t mid, uint64_t prev,
                     store_reply_fn fn, void *arg);

/* The channel every node subscribes to (broadcasts and topics, topic.h), and this node's own. */
const char *cluster_broadcast_channel(void);
const char *cluster_node_channel(void);

/* Closes USER's session on the node holding it (admin.kick), with `bye` 403. As cluster_route. */
int cluster_kick(const char *user, size_t user_len, store_reply_fn fn, void *arg);

#endif
