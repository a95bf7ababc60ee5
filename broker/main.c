/* main: the moonpost daemon: options, start-up in order, the loop, orderly shutdown. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "admin.h"
#include "broker.h"
#include "chain_pool.h"
#include "clock.h"
#include "cluster.h"
#include "conf.h"
#include "metrics.h"
#include "idle_trim.h"
#include "log.h"
#include "pidfile.h"
#include "luahost_timer.h"
#include "luahost.h"
#include "plugin.h"
#include "presence.h"
#include "reload.h"
#include "router.h"
#include "server.h"
#include "session.h"
#include "shutdown.h"
#include "signals.h"
#include "store.h"
#include "topic.h"
#include "web_static.h"
#include "supervisor.h"
#include "tls_server.h"
#include "worker.h"

#define EXIT_CONFIG 2
#define ADMIN_SESSIONS 16
#define FD_RESERVED 64 /* stdio, log, epoll, signals, Redis, worker wake-ups, plugins */
#define DEFAULT_CONFIG "etc/broker.conf"

#define SIGNAL_COUNT 3
static const int handled_signals[SIGNAL_COUNT] = {SIGINT, SIGTERM, SIGHUP};
static struct event *signal_events[SIGNAL_COUNT];

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpost [-c FILE] [--set KEY=VALUE]... [--processes N] [-t]\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "      --set KEY=VALUE override one key of the file (repeatable; for a list key\n"
            "                      the first --set replaces the whole list)\n"
            "      --processes N   run N broker processes on the client port under a\n"
            "                      supervisor (the key `processes`; 1..256, default 1)\n"
            "  -t, --test          check the configuration and the scripts, then exit\n"
            "  -v, --version       print the version\n"
            "  -h, --help          this text\n"
            "Exit codes: 0 clean stop, 1 start-up failure, 2 configuration error.\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    if (sig == SIGHUP) {
        char err[1024];
        log_info("SIGHUP: reloading");
        if (broker_reload(err, sizeof err) != 0) log_error("SIGHUP: reload failed: %s", err);
        return;
    }
    broker_shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void default_node_id(struct conf *c)
{
    if (c->node_id != NULL) return;
    char host[256] = "node";
    gethostname(host, sizeof host - 1);
    /* the id names Redis keys: a host name has only A-Za-z0-9.- anyway, but be sure */
    for (char *p = host; *p; p++)
        if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", *p) == NULL)
            *p = '_';
    host[40] = '\0';
    char id[300];
    snprintf(id, sizeof id, "%s-%ld", host, (long)getpid());
    c->node_id = strdup(id);
}

static int load_config(int argc, char **argv, int *test_only)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
        {"test", no_argument, NULL, 't'},         {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {"processes", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0}};
    static char processes_set[32]; /* --processes N is --set processes=N */
    const char *path = DEFAULT_CONFIG;
    char **sets = calloc((size_t)argc, sizeof *sets);
    size_t set_count = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tvh", options, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 's': sets[set_count++] = optarg; break;
        case 'p':
            snprintf(processes_set, sizeof processes_set, "processes=%.20s", optarg);
            sets[set_count++] = processes_set;
            break;
        case 't': *test_only = 1; break;
        case 'v': printf("moonpost %s\n", MOONPOST_VERSION); free(sets); exit(0);
        case 'h': usage(stdout); free(sets); exit(0);
        default: usage(stderr); free(sets); exit(EXIT_CONFIG);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moonpost: unexpected argument '%s'\n", argv[optind]);
        free(sets);
        exit(EXIT_CONFIG);
    }
    struct conf_error err;
    broker.conf_path = path;
    broker.conf_sets = (const char *const *)sets; /* kept for reloads */
    broker.conf_set_count = set_count;
    if (broker_conf_read(&broker.conf, &err) != 0) {
        fprintf(stderr, "moonpost: %s\n", err.text);
        return -1;
    }
    struct tls_context *tls;
    if (tls_server_load(&broker.conf, broker.conf_path, &tls, &err) != 0) {
        fprintf(stderr, "moonpost: %s\n", err.text);
        conf_free(&broker.conf);
        return -1;
    }
    tls_server_use(tls);
    default_node_id(&broker.conf);
    return 0;
}

/* Raises the soft descriptor limit to the hard one, then checks that every connection the
 * configuration allows fits: past the limit, accept fails with EMFILE and the broker can
 * neither take a connection nor open Redis again. */
static int raise_descriptor_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want; /* EPERM when unlimited: keep */
    }
    const struct conf *c = &broker.conf;
    unsigned long long need = (unsigned long long)c->max_connections + ADMIN_SESSIONS +
                              (c->http_listen ? (unsigned long long)c->http_max_connections : 0) +
                              c->listen.count + c->tls_listen.count + FD_RESERVED;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        fprintf(stderr,
                "moonpost: max_connections %d needs %llu file descriptors (with %d admin, %d "
                "HTTP and %d reserved), but the limit is %llu: raise it (ulimit -n, systemd "
                "LimitNOFILE=) or lower max_connections\n",
                c->max_connections, need, ADMIN_SESSIONS,
                c->http_listen ? c->http_max_connections : 0, FD_RESERVED,
                (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

/* One thread owns the loop (workers wake it through an eventfd), so no locks; the epoll
 * changelist folds the add/del of a write event within one loop pass into one epoll_ctl. */
static struct event_base *new_event_base(void)
{
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}


/* Returns 0, -1 (start-up failure) or EXIT_CONFIG (an option the config sets is wrong). */
static int start(void)
{
    size_t max = (size_t)broker.conf.max_connections + ADMIN_SESSIONS;
    broker_apply_live_settings();
    if (session_table_init(broker.base, max, router_dispatch) != 0 || presence_init(max) != 0 ||
        router_start(broker.base) != 0 || topic_start() != 0) {
        log_error("cannot allocate tables for %zu sessions", max);
        return -1;
    }
    /* a hashing job that would start after half the login timeout is refused (503) at once */
    if (worker_start(broker.base, broker.conf.workers, broker.conf.pwhash_queue_max,
                     broker.conf.pwhash_queue_per_addr,
                     (int)(broker.conf.login_timeout * 500)) != 0) {
        log_error("cannot start %d worker thread(s)", broker.conf.workers);
        return -1;
    }
    if (admin_start() != 0 || admin_cluster_start() != 0) return -1;
    if (plugin_load_all() != 0) return -1;
    int scripts = luahost_start();
    if (scripts != 0) return scripts == LUAHOST_BAD_CONFIG ? EXIT_CONFIG : -1;
    struct store_options redis = {broker.conf.redis, broker.conf.redis_password,
                                  broker.conf.redis_db, broker.conf.redis_timeout,
                                  broker.conf.redis_require_durable, broker.conf.redis_cluster,
                                  broker.conf.redis_wait_replicas};
    if (store_start(broker.base, &redis) != 0 ||
        cluster_start(broker.base, &redis, broker_shutdown) != 0)
        return -1;
    if (signals_start(broker.base, handled_signals, signal_events, SIGNAL_COUNT, on_signal) != 0)
        return -1;
    int listening = server_listen();
    if (listening != 0) return listening == SERVER_IN_USE ? EXIT_CONFIG : -1;
    if (broker.conf.http_listen && web_static_load(broker.conf.web_root) != 0) return EXIT_CONFIG;
    if (http_start(broker.conf.http_listen, metrics_serve_http, broker.conf.http_tls) != 0) return -1;
    if (idle_trim_start(broker.base) != 0) return -1;
    if (broker.conf.pid_file && pidfile_write(broker.conf.pid_file) != 0) return -1;
    return 0;
}

static void stop(void)
{
    idle_trim_stop();
    http_stop();
    web_static_free();
    server_close();
    worker_stop(); /* resumes waiting handlers with errors; they may start timers */
    cluster_stop();
    store_stop();
    luahost_timer_stop_all();
    session_table_free();
    tls_server_use(NULL);
    presence_free();
    topic_stop();
    luahost_stop();
    plugin_unload_all();
    router_stop();
    router_free();
    signals_stop(handled_signals, signal_events, SIGNAL_COUNT);
    broker_shutdown_free();
    if (broker.conf.pid_file) unlink(broker.conf.pid_file);
    codec_buf_free(&broker.scratch);
    event_base_free(broker.base);
    chain_pool_trim();
    conf_free(&broker.conf);
    free((void *)broker.conf_sets);
    log_close();
}

/* processes N > 1: this process supervises N brokers and serves no client itself. */
static int run_supervisor(void)
{
    int rc = supervisor_run();
    codec_buf_free(&broker.scratch);
    event_base_free(broker.base);
    conf_free(&broker.conf);
    free((void *)broker.conf_sets);
    log_close();
    return rc;
}

int main(int argc, char **argv)
{
    /* No fastbins: Lua's many small frees kept them full, and every free that merged into a
     * 64 KiB chunk (hiredis drops its output buffer after each write) made glibc consolidate
     * them all: 6.5% of the private-chat profile; without fastbins, +4-6% msgs/s. tcache still
     * serves the small sizes. */
    mallopt(M_MXFAST, 0);
    chain_pool_install();
    int test_only = 0;
    if (load_config(argc, argv, &test_only) != 0) return EXIT_CONFIG;
    if (raise_descriptor_limit() != 0) {
        conf_free(&broker.conf);
        return EXIT_CONFIG;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "moonpost: libsodium failed to initialise\n");
        return 1;
    }
    if (log_open(broker.conf.log_file) != 0) {
        fprintf(stderr, "moonpost: log_file %s: %s\n", broker.conf.log_file, strerror(errno));
        return EXIT_CONFIG;
    }
    log_set_level(broker.conf.log_level);
    broker.base = new_event_base();
    codec_buf_init(&broker.scratch);
    if (broker.conf.processes > 1 && !test_only) return run_supervisor();
    if (test_only) {
        int ok = plugin_load_all() == 0 && luahost_start() == 0 &&
                 web_static_load(broker.conf.http_listen ? broker.conf.web_root : NULL) == 0;
        web_static_free();
        printf("%s: %s\n", broker.conf_path, ok ? "configuration ok" : "configuration has errors");
        luahost_stop();
        plugin_unload_all();
        router_free();
        codec_buf_free(&broker.scratch);
        event_base_free(broker.base);
        conf_free(&broker.conf);
        return ok ? 0 : EXIT_CONFIG;
    }
    log_info("moonpost %s starting (node %s)", MOONPOST_VERSION, broker.conf.node_id);
    int rc = start();
    if (rc == 0) {
        event_base_dispatch(broker.base);
        log_info("stopped");
    }
    stop();
    if (rc == 0) return broker.exit_code;
    return rc == EXIT_CONFIG ? EXIT_CONFIG : 1;
}
