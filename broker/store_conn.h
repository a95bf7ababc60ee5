/* store_conn: one of the store's Redis connections (the only one on a single Redis, one per
 * master on a Redis Cluster), shared by store.c and the slot map (store_cluster.c). */
#ifndef MOONPOST_STORE_CONN_H
#define MOONPOST_STORE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "redis_reply_arena.h"

struct call;
struct event;

enum conn_state {
    CONN_DOWN,
    CONN_CONNECTING,
    CONN_CONNECTED, /* TCP up and AUTH sent, not set up: only asked for the slot map */
    CONN_READY,     /* set up (functions loaded): takes commands */
};

struct store_conn {
    char addr[96]; /* "host:port" or "unix:/path" */
    redisAsyncContext *ctx;
    enum conn_state state;
    int in_map;    /* a master of the current slot map (always 1 on a single Redis) */
    size_t in_flight;
    int64_t last_progress_ms; /* last reply, or when the oldest in-flight command was sent */
    int64_t connect_started_ms;
    int backoff_ms;
    struct event *retry;
    int durable;  /* enum store_durability, from the latest check */
    int verified; /* a check answered on this connection */
    int64_t last_check_ms;
    char settings[64]; /* "appendonly yes, appendfsync everysec": what was logged last */
    struct call *wait_first, *wait_last; /* replicated commands sent since the last WAIT */
    struct reply_arena replies;          /* where hiredis builds this connection's replies */
};

/* The connection to ADDR, made (and connecting) when CREATE and it does not exist; NULL when
 * it does not exist, or too many do. */
struct store_conn *store_conn_for(const char *addr, int create);
/* Starts connecting CONN now (when it is down). */
void store_conn_connect(struct store_conn *conn);
/* Sets CONN up (functions, durability check) once it is connected and a master: READY. */
void store_conn_setup(struct store_conn *conn);
/* Every connection, for the slot map's bookkeeping. */
size_t store_conn_count(void);
struct store_conn *store_conn_at(size_t i);

#endif
