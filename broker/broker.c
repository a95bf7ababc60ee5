/* broker: the process-wide state of the daemon (one event loop per process) and its clock. */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct broker broker;

int64_t broker_now_ms(void)
{
    struct timeval tv;
    event_base_gettimeofday_cached(broker.base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A node id names Redis keys and channels: 1-64 bytes of A-Za-z0-9_.- (unset: computed). */
static int valid_node_id(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= 64 && strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789_.-") == n;
}

/* Several redis addresses are a Redis Cluster's seeds. On a cluster every key of one atomic
 * step must share a hash slot, so the prefix cannot carry a hash tag of its own, and a cluster
 * has only database 0; its nodes are reached over TCP. */
static int check_redis_cluster(struct conf *c, struct conf_error *err)
{
    const char *list = c->redis, *why = NULL, *key = "redis_cluster";
    size_t first = strcspn(list, REDIS_ADDRESS_SEPARATORS);
    if (list[first + strspn(list + first, REDIS_ADDRESS_SEPARATORS)] != '\0')
        c->redis_cluster = 1;
    if (!c->redis_cluster) return 0;
    if (c->redis_db != 0)
        why = "a Redis Cluster has only database 0: remove redis_db", key = "redis_db";
    else if (c->redis_prefix != NULL && strpbrk(c->redis_prefix, "{}") != NULL)
        why = "redis_prefix must not contain { or } on a Redis Cluster (the keys' hash tags "
              "decide their slots)", key = "redis_prefix";
    else if (strstr(list, "unix:") != NULL)
        why = "the seeds of a Redis Cluster are host:port addresses", key = "redis";
    if (why == NULL) return 0;
    char where[200];
    conf_key_origin(c, broker.conf_path, key, where, sizeof where);
    snprintf(err->text, sizeof err->text, "%s%s", where, why);
    return -1;
}

int broker_conf_read(struct conf *c, struct conf_error *err)
{
    conf_init(c);
    int rc = conf_load_file(c, broker.conf_path, err);
    for (size_t i = 0; rc == 0 && i < broker.conf_set_count; i++)
        rc = conf_set(c, broker.conf_sets[i], err);
    if (rc == 0 && c->listen.count == 0 && c->tls_listen.count == 0) {
        snprintf(err->text, sizeof err->text, "%s: no 'listen' or 'tls_listen' address",
                 broker.conf_path);
        rc = -1;
    }
    if (rc == 0 && c->redis == NULL) {
        snprintf(err->text, sizeof err->text, "%s: 'redis' must be set", broker.conf_path);
        rc = -1;
    }
    if (rc == 0 && c->node_id != NULL && c->node_id[0] == '\0') {
        free(c->node_id); /* "" is unset */
        c->node_id = NULL;
    }
    if (rc == 0 && c->node_id != NULL && !valid_node_id(c->node_id)) {
        snprintf(err->text, sizeof err->text,
                 "%s: node_id '%s': 1-64 bytes of A-Za-z0-9_.- expected", broker.conf_path,
                 c->node_id);
        rc = -1;
    }
    if (rc == 0 && c->redis_prefix != NULL && strlen(c->redis_prefix) > REDIS_PREFIX_MAX) {
        char where[200];
        conf_key_origin(c, broker.conf_path, "redis_prefix", where, sizeof where);
        snprintf(err->text, sizeof err->text, "%sredis_prefix: at most %d bytes", where,
                 REDIS_PREFIX_MAX);
        rc = -1;
    }
    if (rc == 0) rc = check_redis_cluster(c, err);
    if (rc != 0) conf_free(c);
    return rc;
}
