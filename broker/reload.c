/* reload: SIGHUP and admin.reload. A fresh struct conf is read from the file; the settings the
 * running process was built with (sockets, Redis, threads, table sizes) keep their running
 * values, with a warning when the file changed them; everything else takes effect: new
 * sessions see the new timeouts, every session the new limits, the scripts run in a fresh
 * Lua state, plugin lines added to the file are loaded, new TLS connections get tls_cert and
 * tls_key as they are in their files now (a renewed certificate). */
#include "reload.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "luahost.h"
#include "plugin.h"
#include "session.h"
#include "store.h"
#include "tls_server.h"

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int list_has(const struct conf_list *l, const char *item)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], item) == 0) return 1;
    return 0;
}

static int same_list(const struct conf_list *a, const struct conf_list *b)
{
    if (a->count != b->count) return 0;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i], b->items[i]) != 0) return 0;
    return 1;
}

static void restart_needed(const char *key)
{
    log_warn("reload: '%s' changed in the file; it takes effect at the next restart", key);
}

#define SWAP(a, b)                                                                                 \
    do {                                                                                           \
        __typeof__(a) swap_tmp = (a);                                                              \
        (a) = (b);                                                                                 \
        (b) = swap_tmp;                                                                            \
    } while (0)

/* Exchanges the settings that only a restart changes between A and B; done once to give the
 * fresh conf the running values, and once more to undo it. */
static void exchange_restart_only(struct conf *a, struct conf *b)
{
    SWAP(a->listen, b->listen);
    SWAP(a->tls_listen, b->tls_listen);
    SWAP(a->max_connections, b->max_connections);
    SWAP(a->reuseport, b->reuseport);
    SWAP(a->log_file, b->log_file);
    SWAP(a->pid_file, b->pid_file);
    SWAP(a->redis, b->redis);
    SWAP(a->redis_password, b->redis_password);
    SWAP(a->redis_db, b->redis_db);
    SWAP(a->redis_prefix, b->redis_prefix);
    SWAP(a->redis_cluster, b->redis_cluster);
    SWAP(a->workers, b->workers);
    SWAP(a->pwhash_queue_max, b->pwhash_queue_max);
    SWAP(a->pwhash_queue_per_addr, b->pwhash_queue_per_addr);
    SWAP(a->admin_socket, b->admin_socket);
    SWAP(a->http_listen, b->http_listen);
    SWAP(a->http_tls, b->http_tls);
    SWAP(a->websocket, b->websocket);
    SWAP(a->web_root, b->web_root);
    SWAP(a->node_id, b->node_id);
    SWAP(a->presence_ttl, b->presence_ttl);
    SWAP(a->processes, b->processes);
    SWAP(a->plugin, b->plugin); /* the running list is the record of what is loaded */
}

static void warn_restart_only(const struct conf *fresh, const struct conf *run)
{
    if (!same_list(&fresh->listen, &run->listen)) restart_needed("listen");
    if (!same_list(&fresh->tls_listen, &run->tls_listen)) restart_needed("tls_listen");
    if (fresh->max_connections != run->max_connections) restart_needed("max_connections");
    if (fresh->reuseport != run->reuseport) restart_needed("reuseport");
    if (!same_str(fresh->log_file, run->log_file)) restart_needed("log_file");
    if (!same_str(fresh->pid_file, run->pid_file)) restart_needed("pid_file");
    if (!same_str(fresh->redis, run->redis)) restart_needed("redis");
    if (!same_str(fresh->redis_password, run->redis_password)) restart_needed("redis_password");
    if (fresh->redis_db != run->redis_db) restart_needed("redis_db");
    if (!same_str(fresh->redis_prefix, run->redis_prefix)) restart_needed("redis_prefix");
    if (fresh->redis_cluster != run->redis_cluster) restart_needed("redis_cluster");
    if (fresh->workers != run->workers) restart_needed("workers");
    if (fresh->pwhash_queue_max != run->pwhash_queue_max) restart_needed("pwhash_queue_max");
    if (fresh->pwhash_queue_per_addr != run->pwhash_queue_per_addr)
        restart_needed("pwhash_queue_per_addr");
    if (!same_str(fresh->admin_socket, run->admin_socket)) restart_needed("admin_socket");
    if (!same_str(fresh->http_listen, run->http_listen)) restart_needed("http_listen");
    if (fresh->http_tls != run->http_tls) restart_needed("http_tls");
    if (fresh->websocket != run->websocket) restart_needed("websocket");
    if (!same_str(fresh->web_root, run->web_root)) restart_needed("web_root");
    /* node_id: the file may leave it out (computed at start); a changed one needs a restart */
    if (fresh->node_id != NULL && !same_str(fresh->node_id, run->node_id))
        restart_needed("node_id");
    if (fresh->presence_ttl != run->presence_ttl) restart_needed("presence_ttl");
    if (fresh->processes != run->processes) restart_needed("processes");
    for (size_t i = 0; i < run->plugin.count; i++)
        if (!list_has(&fresh->plugin, run->plugin.items[i]))
            log_warn("reload: plugin line '%s' was removed or changed: a loaded plugin cannot be "
                     "unloaded while its callbacks may be pending; it stays until a restart",
                     run->plugin.items[i]);
}

/* Loads the plugin lines of FRESH that are not loaded yet, recording each in the running list.
 * Returns 0, or -1 with the reason. */
static int load_added_plugins(const struct conf_list *fresh, char *errbuf, size_t errlen)
{
    struct conf_list *loaded = &broker.conf.plugin;
    for (size_t i = 0; i < fresh->count; i++) {
        const char *line = fresh->items[i];
        if (list_has(loaded, line)) continue;
        char **grown = realloc(loaded->items, (loaded->count + 1) * sizeof *grown);
        char *copy = strdup(line);
        if (grown != NULL) loaded->items = grown;
        if (grown == NULL || copy == NULL) {
            free(copy);
            snprintf(errbuf, errlen, "out of memory loading plugin '%s'", line);
            return -1;
        }
        if (plugin_load(line) != 0) {
            free(copy);
            snprintf(errbuf, errlen, "plugin '%s' failed to load (see the log)", line);
            return -1;
        }
        loaded->items[loaded->count++] = copy;
        log_info("reload: plugin '%s' loaded", line);
    }
    return 0;
}

void broker_apply_live_settings(void)
{
    const struct conf *c = &broker.conf;
    log_set_level(c->log_level);
    struct session_limits limits = {
        .idle_timeout = c->idle_timeout,
        .login_timeout = c->login_timeout,
        .output_limit = (size_t)c->output_limit,
        .output_budget = (size_t)c->output_budget,
        .request_rate = c->request_rate,
        .request_burst = c->request_burst,
        .max_frame = (uint32_t)c->max_frame,
    };
    session_set_limits(&limits);
    store_set_limits(c->redis_timeout, c->redis_require_durable, c->redis_wait_replicas);
}

int broker_reload(char *errbuf, size_t errlen)
{
    struct conf fresh;
    struct conf_error err;
    if (broker_conf_read(&fresh, &err) != 0) {
        snprintf(errbuf, errlen, "%s", err.text);
        log_error("reload failed, the running configuration stays: %s", errbuf);
        stats.reload_failures_total++;
        return -1;
    }
    warn_restart_only(&fresh, &broker.conf);
    exchange_restart_only(&fresh, &broker.conf); /* tls_listen: the running one decides */
    struct tls_context *tls;
    int tls_failed = tls_server_load(&fresh, broker.conf_path, &tls, &err);
    exchange_restart_only(&fresh, &broker.conf);
    if (tls_failed) {
        snprintf(errbuf, errlen, "%s", err.text);
        log_error("reload failed, the running configuration stays: %s", errbuf);
        conf_free(&fresh);
        stats.reload_failures_total++;
        return -1;
    }
    /* plugins first, so that the options they declare are checked with the scripts' ones; a
     * plugin that loaded stays loaded (recorded in the running list) whatever happens next */
    if (load_added_plugins(&fresh.plugin, errbuf, errlen) != 0) {
        log_error("reload failed, the running scripts and settings stay: %s", errbuf);
        tls_context_free(tls);
        conf_free(&fresh);
        stats.reload_failures_total++;
        return -1;
    }
    exchange_restart_only(&fresh, &broker.conf);
    struct conf running = broker.conf;
    broker.conf = fresh; /* the scripts load under the new settings, and check its options */
    if (luahost_reload(errbuf, errlen) != 0) {
        fresh = broker.conf;
        broker.conf = running;
        exchange_restart_only(&fresh, &broker.conf);
        conf_free(&fresh);
        tls_context_free(tls);
        return -1;
    }
    conf_free(&running);
    if (tls != NULL) {
        tls_server_use(tls); /* new connections get the renewed certificate; open ones stay */
        log_info("reload: TLS certificate %s loaded", broker.conf.tls_cert);
    }
    broker_apply_live_settings();
    log_info("reload: done (%zu script(s), %zu plugin(s))", broker.conf.script.count,
             broker.conf.plugin.count);
    return 0;
}
