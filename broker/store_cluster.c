/* store_cluster: see store_cluster.h. */
#include "store_cluster.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "conf.h"
#include "log.h"
#include "redis_slot.h"
#include "stats.h"
#include "store_conn.h"

#define REFRESH_EVERY_MS 10000 /* while every slot is served */
#define REFRESH_RETRY_MS 500   /* while some are not, or no map could be read */
#define MAX_SEEDS 16
#define ASK_MIN_MS 100         /* between two reads asked for at once */

static struct {
    char *seeds[MAX_SEEDS];
    size_t seed_count;
    size_t next_source; /* where the map is read from when no connection is up: in turn */
    struct store_conn *owner[REDIS_SLOTS];
    int covered;        /* every slot has an owner */
    int asking;         /* a CLUSTER SLOTS is in flight */
    int64_t asked_ms;
    int64_t due_ms;     /* when the map is read next */
    size_t next_any;    /* the master a keyless command goes to: in turn */
    int logged_masters, logged_serving;
} map;

static struct store_conn *map_source(void);

int store_cluster_masters(int *ready)
{
    int masters = 0;
    *ready = 0;
    for (size_t i = 0; i < store_conn_count(); i++) {
        const struct store_conn *conn = store_conn_at(i);
        if (!conn->in_map) continue;
        masters++;
        if (conn->state == CONN_READY) (*ready)++;
    }
    return masters;
}

int store_cluster_serving(void)
{
    int ready, masters = store_cluster_masters(&ready);
    return map.covered && masters > 0 && ready == masters;
}

struct store_conn *store_cluster_owner(int slot)
{
    if (slot >= 0) return map.owner[slot];
    size_t n = store_conn_count();
    for (size_t i = 0; i < n; i++) {
        struct store_conn *conn = store_conn_at(map.next_any++ % n);
        if (conn->in_map && conn->state == CONN_READY) return conn;
    }
    return NULL;
}

const char *store_cluster_addr_for(int slot)
{
    const struct store_conn *conn = store_cluster_owner(slot);
    if (conn == NULL) conn = map_source();
    if (conn != NULL) return conn->addr;
    return map.seed_count > 0 ? map.seeds[0] : NULL;
}

const char *store_cluster_master_of(int slot)
{
    const struct store_conn *conn = map.owner[slot];
    return conn != NULL ? conn->addr : NULL;
}

static void ask_map(int64_t now_ms);

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void store_cluster_refresh_soon(void)
{
    map.due_ms = 0;
    /* at once (a new map ends the 503s sooner), but not more than once per ASK_MIN_MS: a
     * master that refuses connections must not make a loop of reads and reconnects */
    int64_t now = monotonic_ms();
    if (!map.asking && now - map.asked_ms >= ASK_MIN_MS) ask_map(now);
}

static void log_changes(void)
{
    int ready, masters = store_cluster_masters(&ready);
    int serving = store_cluster_serving();
    if (masters == map.logged_masters && serving == map.logged_serving) return;
    map.logged_masters = masters;
    map.logged_serving = serving;
    if (serving)
        log_info("redis cluster: %d master(s) serve the %d slots", masters, REDIS_SLOTS);
    else
        log_warn("redis cluster: %d of %d master(s) connected%s", ready, masters,
                 map.covered ? "" : ", some slots have no master");
}

/* Masters of the map are connected and set up; those that left it take no more commands. */
static void follow_map(void)
{
    for (size_t i = 0; i < store_conn_count(); i++) {
        struct store_conn *conn = store_conn_at(i);
        if (!conn->in_map) {
            if (conn->state == CONN_READY) conn->state = CONN_CONNECTED;
        } else if (conn->state == CONN_DOWN && !evtimer_pending(conn->retry, NULL)) {
            store_conn_connect(conn); /* a new master (a lost one reconnects on its backoff) */
        } else if (conn->state == CONN_CONNECTED) {
            store_conn_setup(conn);
        }
    }
    log_changes();
}

/* "ip:port" of a CLUSTER SLOTS node entry ({ip, port, id, ...}); an empty ip is the host of
 * FROM, the node that answered. 0 or -1. */
static int node_addr(const redisReply *node, const struct store_conn *from, char *addr,
                     size_t len)
{
    if (node->type != REDIS_REPLY_ARRAY || node->elements < 2 ||
        node->element[0]->type != REDIS_REPLY_STRING ||
        node->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const char *ip = node->element[0]->str;
    size_t host_len = strlen(ip);
    if (host_len == 0) {
        ip = from->addr;
        const char *colon = strrchr(ip, ':');
        host_len = colon != NULL ? (size_t)(colon - ip) : strlen(ip);
    }
    int n = snprintf(addr, len, "%.*s:%lld", (int)host_len, ip, node->element[1]->integer);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

/* Applies a CLUSTER SLOTS reply: {start, end, master, replicas...} per range. */
static void apply_slots(const redisReply *r, const struct store_conn *from)
{
    static struct store_conn *fresh[REDIS_SLOTS];
    memset(fresh, 0, sizeof fresh);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        char addr[sizeof from->addr];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER ||
            node_addr(range->element[2], from, addr, sizeof addr) != 0)
            continue;
        long long first = range->element[0]->integer, last = range->element[1]->integer;
        struct store_conn *master = store_conn_for(addr, 1);
        if (master == NULL || first < 0 || last >= REDIS_SLOTS) continue;
        for (long long slot = first; slot <= last; slot++)
            fresh[slot] = master;
    }
    for (size_t i = 0; i < store_conn_count(); i++)
        store_conn_at(i)->in_map = 0;
    map.covered = 1;
    for (size_t slot = 0; slot < REDIS_SLOTS; slot++) {
        map.owner[slot] = fresh[slot];
        if (fresh[slot] != NULL)
            fresh[slot]->in_map = 1;
        else
            map.covered = 0;
    }
    stats.redis_slot_map_reads_total++;
    follow_map();
}

static void on_slots(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    const redisReply *r = reply;
    map.asking = 0;
    if (r == NULL) return; /* the connection went: the next tick asks another */
    if (r->type != REDIS_REPLY_ARRAY) {
        log_warn("redis cluster: CLUSTER SLOTS on %s: %s", ((struct store_conn *)privdata)->addr,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    apply_slots(r, privdata);
}

/* A connection the map can be read on: a ready master first, else any that is up. */
static struct store_conn *map_source(void)
{
    struct store_conn *best = NULL;
    for (size_t i = 0; i < store_conn_count(); i++) {
        struct store_conn *conn = store_conn_at(i);
        if (conn->state == CONN_READY && conn->in_map) return conn;
        if (conn->state >= CONN_CONNECTED && best == NULL) best = conn;
    }
    return best;
}

/* Nothing is up: connect the next seed, or the next node ever known (seeds may be gone after
 * failovers). */
static void connect_next_source(void)
{
    size_t n = map.seed_count + store_conn_count();
    for (size_t tries = 0; tries < n; tries++) {
        size_t i = map.next_source++ % n;
        struct store_conn *conn = i < map.seed_count ? store_conn_for(map.seeds[i], 1)
                                                     : store_conn_at(i - map.seed_count);
        if (conn == NULL || conn->state != CONN_DOWN) continue;
        store_conn_connect(conn);
        return;
    }
}

void store_cluster_tick(int64_t timeout_ms)
{
    int64_t now_ms = monotonic_ms();
    if (map.asking && now_ms - map.asked_ms > timeout_ms) map.asking = 0;
    if (map.asking || now_ms < map.due_ms) return;
    ask_map(now_ms);
}

static void ask_map(int64_t now_ms)
{
    map.asked_ms = now_ms;
    map.due_ms = now_ms + (store_cluster_serving() ? REFRESH_EVERY_MS : REFRESH_RETRY_MS);
    struct store_conn *source = map_source();
    if (source == NULL) {
        connect_next_source();
        return;
    }
    if (redisAsyncCommand(source->ctx, on_slots, source, "CLUSTER SLOTS") == REDIS_OK) {
        map.asking = 1;
        map.asked_ms = now_ms;
    }
}

void store_cluster_moved(unsigned slot, struct store_conn *to)
{
    map.owner[slot] = to;
    if (!to->in_map) {
        to->in_map = 1;
        follow_map();
    }
    store_cluster_refresh_soon();
}

void store_cluster_conn_changed(struct store_conn *conn)
{
    if (conn->state == CONN_CONNECTED && conn->in_map) {
        store_conn_setup(conn);
    } else {
        /* a lost master (a failover may follow: read the map until it settles), or a seed
         * up while the map is incomplete (it can be read now) */
        int lost_master = conn->state == CONN_DOWN && conn->in_map;
        int seed_up = conn->state == CONN_CONNECTED && !map.covered;
        if (lost_master || seed_up) store_cluster_refresh_soon();
    }
    log_changes();
}

int store_cluster_start(const char *seeds)
{
    for (const char *at = seeds; *at != '\0' && map.seed_count < MAX_SEEDS;) {
        at += strspn(at, REDIS_ADDRESS_SEPARATORS);
        size_t len = strcspn(at, REDIS_ADDRESS_SEPARATORS);
        if (len == 0) break;
        char *seed = strndup(at, len);
        if (seed == NULL) return -1;
        map.seeds[map.seed_count++] = seed;
        at += len;
    }
    connect_next_source();
    return map.seed_count > 0 ? 0 : -1;
}

void store_cluster_stop(void)
{
    for (size_t i = 0; i < map.seed_count; i++) {
        free(map.seeds[i]);
        map.seeds[i] = NULL;
    }
    map.seed_count = 0;
    memset(map.owner, 0, sizeof map.owner);
    map.covered = 0;
}
