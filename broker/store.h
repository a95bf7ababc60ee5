/* store: the broker's asynchronous Redis connection (hiredis on the loop), pipelined,
 * reconnecting by itself with capped backoff; on a Redis Cluster one such connection per
 * master, each command sent to the master of its key's slot. */
#ifndef MOONPOST_STORE_H
#define MOONPOST_STORE_H

#include <stddef.h>

#include <hiredis/hiredis.h>

struct event_base;

/* Called exactly once per command: with the reply, or with reply == NULL and a reason when the
 * connection was lost or timed out before the reply came. The reply is freed after it returns. */
typedef void (*store_reply_fn)(redisReply *reply, const char *error, void *arg);

/* What Redis's persistence settings mean for a message answered 200 (checked at every
 * connect and every 30 s): it survives a Redis restart (appendonly yes), it does not, or
 * unknown (CONFIG refused, or not checked yet). */
enum store_durability {
    STORE_DURABILITY_UNKNOWN = -1,
    STORE_NOT_DURABLE = 0,
    STORE_DURABLE = 1,
};

/* Where Redis is and how to talk to it; the strings must outlive the store. */
struct store_options {
    const char *addr;     /* "host:port" or "unix:/path.sock"; a cluster's seeds */
    const char *password; /* NULL = no AUTH */
    int db;
    double timeout;       /* seconds, connect and command timeout */
    int require_durable;  /* refuse storage while Redis keeps no AOF */
    int cluster;          /* addr names seeds of a Redis Cluster */
    int wait_replicas;    /* replicas a store_command_replicated waits for (WAIT) */
};

/* Connects (and keeps reconnecting) on BASE. */
int store_start(struct event_base *base, const struct store_options *options);
/* What may change while connected (a reload): the timeout, the durability requirement and
 * the replicas to wait for. */
void store_set_limits(double timeout, int require_durable, int wait_replicas);
void store_stop(void);
/* Connected, and (with redis_require_durable on) found durable on this connection. */
int store_ready(void);
int store_durability(void);

/* Sends one command. Returns 0 (FN will be called), or -1 when Redis is not connected (FN is
 * not called: the caller answers 503 at once). */
int store_command(int argc, const char **argv, const size_t *argv_len, store_reply_fn fn,
                  void *arg);

/* store_command for a write that must survive a failover: FN gets the reply only after a WAIT
 * (one per connection per loop pass, at most half of redis_timeout) confirmed that
 * wait_replicas replicas have it, else reply NULL (503). With wait_replicas 0: store_command.
 * Not redirected on a cluster: a MOVED or ASK is answered as unavailable. */
int store_command_replicated(int argc, const char **argv, const size_t *argv_len,
                             store_reply_fn fn, void *arg);

/* Calls FN(STATE) every time a connection (on a cluster: a master's) is (re)established, before any command of the
 * callers: the place to send store_setup_command()s. At most 4 subscribers; 0 or -1. */
typedef void (*store_connected_fn)(void *state);
int store_on_connected(store_connected_fn fn, void *state);
/* Sends a set-up command (FUNCTION LOAD...) ahead of the callers' commands, its error logged
 * under WHAT: from a subscriber, on the connection being set up; else on every connected one
 * (a connection made later runs the subscribers again). */
void store_setup_command(const char *what, int argc, const char **argv, const size_t *argv_len);

/* A one-line description of the connection state for admin.stats and /healthz. */
const char *store_state_text(void);

#endif
