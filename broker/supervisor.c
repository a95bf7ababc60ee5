/* supervisor: the workers' processes. Each is this executable started again (fork, exec of
 * /proc/self/exe) with the same config file and --set overrides, plus the settings of a worker:
 * one process, its own node id and private admin socket, the client port shared
 * (SO_REUSEPORT), no HTTP listener and no pid file. A worker that dies is started again, at
 * most once a second; one that fails its very first start stops the host (a configuration
 * error would fail the same way for ever). */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"
#include "http.h"
#include "log.h"
#include "pidfile.h"
#include "server.h"
#include "signals.h"
#include "supervisor_admin.h"
#include "supervisor_link.h"
#include "supervisor_metrics.h"

#define EXIT_CONFIG 2
#define RESTART_INTERVAL_MS 1000
#define STOP_MARGIN_S 5 /* past shutdown_timeout, before a worker that has not stopped is killed   \
                         */
#define NODE_ID_MAX 320
#define SIGNAL_COUNT 4
static const int handled_signals[SIGNAL_COUNT] = {SIGCHLD, SIGINT, SIGTERM, SIGHUP};
#define WORKER_SETS 6 /* the --set a worker gets on top of the command's */

struct worker {
    pid_t pid; /* 0: not running */
    int launches;
    int64_t started_us; /* monotonic */
    struct event *restart;
    char id[NODE_ID_MAX];
};

static struct {
    int count;
    struct worker *workers;
    int alive;
    int stopping;
    int exit_code;
    uint64_t restarts;
    time_t started;
    struct event *signals[SIGNAL_COUNT];
    struct event *kill_timer;
    /* the workers' admin sockets are "<socket_base>.<i>": admin_socket's path, or one in a
     * directory of the supervisor's own when only http_listen needs them */
    char socket_base[4096];
    char private_dir[256];
} sup;

int supervisor_workers(void)
{
    return sup.count;
}

const char *supervisor_node_id(void)
{
    return broker.conf.node_id;
}

const char *supervisor_worker_id(int i)
{
    return sup.workers[i].id;
}

int supervisor_worker_running(int i)
{
    return sup.workers[i].pid != 0;
}

uint64_t supervisor_restarts(void)
{
    return sup.restarts;
}

time_t supervisor_started(void)
{
    return sup.started;
}

/* ---- starting a worker ---- */

static void free_strings(char **v)
{
    if (v == NULL) return;
    for (char **p = v; *p != NULL; p++)
        free(*p);
    free(v);
}

/* ["moonpost", "-c", FILE, "--set", K=V..., NULL], every string allocated. */
static char **worker_argv(int i)
{
    size_t sets = broker.conf_set_count + WORKER_SETS;
    char **argv = calloc(3 + 2 * sets + 1, sizeof *argv);
    if (argv == NULL) return NULL;
    size_t n = 0;
    argv[n++] = strdup("moonpost");
    argv[n++] = strdup("-c");
    argv[n++] = strdup(broker.conf_path);
    char worker_sets[WORKER_SETS][sizeof sup.socket_base + 32];
    size_t own = 0;
    snprintf(worker_sets[own++], sizeof worker_sets[0], "processes=1");
    snprintf(worker_sets[own++], sizeof worker_sets[0], "node_id=%s", sup.workers[i].id);
    snprintf(worker_sets[own++], sizeof worker_sets[0], "reuseport=on");
    snprintf(worker_sets[own++], sizeof worker_sets[0], "http_listen=");
    snprintf(worker_sets[own++], sizeof worker_sets[0], "pid_file=");
    if (sup.socket_base[0] != '\0')
        snprintf(worker_sets[own++], sizeof worker_sets[0], "admin_socket=%s.%d", sup.socket_base,
                 i + 1);
    for (size_t k = 0; k < broker.conf_set_count + own; k++) {
        argv[n++] = strdup("--set");
        argv[n++] = strdup(k < broker.conf_set_count ? broker.conf_sets[k]
                                                     : worker_sets[k - broker.conf_set_count]);
    }
    for (size_t k = 0; k < n; k++) {
        if (argv[k] != NULL) continue;
        for (size_t j = 0; j < n; j++) /* free_strings would stop at the hole */
            free(argv[j]);
        free(argv);
        return NULL;
    }
    return argv;
}

/* In the child, between fork and exec: die with the supervisor, whatever killed it. */
static void exec_worker(char **argv, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1); /* the supervisor died before prctl */
    signal(SIGPIPE, SIG_DFL);          /* the broker sets its own */
    execv("/proc/self/exe", argv);
    fprintf(stderr, "moonpost: worker: exec /proc/self/exe: %s\n", strerror(errno));
    _exit(1);
}

static int spawn(int i)
{
    struct worker *w = &sup.workers[i];
    char **argv = worker_argv(i);
    if (argv == NULL) {
        log_error("supervisor: worker %d: out of memory", i + 1);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) exec_worker(argv, parent);
    free_strings(argv);
    if (pid < 0) {
        log_error("supervisor: worker %d: fork: %s", i + 1, strerror(errno));
        return -1;
    }
    w->pid = pid;
    w->launches++;
    w->started_us = clock_monotonic_us();
    sup.alive++;
    log_info("supervisor: worker %d (node %s) started, pid %ld", i + 1, w->id, (long)pid);
    link_connect(i);
    return 0;
}

static void schedule_restart(int i, int64_t delay_ms)
{
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000};
    evtimer_add(sup.workers[i].restart, &tv);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    int i = (int)((struct worker *)arg - sup.workers);
    if (sup.stopping) return;
    if (spawn(i) != 0) return schedule_restart(i, RESTART_INTERVAL_MS);
    sup.restarts++;
}

/* ---- a worker that ended ---- */

static void log_exit(int i, pid_t pid, int status)
{
    if (WIFSIGNALED(status))
        log_warn("supervisor: worker %d (pid %ld) killed by signal %d (%s)", i + 1, (long)pid,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        log_warn("supervisor: worker %d (pid %ld) exited with status %d", i + 1, (long)pid,
                 WEXITSTATUS(status));
}

static void on_worker_exit(int i, int status)
{
    struct worker *w = &sup.workers[i];
    pid_t pid = w->pid;
    w->pid = 0;
    sup.alive--;
    link_disconnect(i);
    if (sup.stopping) {
        log_info("supervisor: worker %d (pid %ld) stopped", i + 1, (long)pid);
        if (sup.alive == 0) event_base_loopexit(broker.base, NULL);
        return;
    }
    log_exit(i, pid, status);
    /* a broker exits 1 or 2 only when it could not start: at the first start, the command
     * could not start (and a configuration error would come back at every restart) */
    if (w->launches == 1 && WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        int code = WEXITSTATUS(status) == EXIT_CONFIG ? EXIT_CONFIG : 1;
        log_error("supervisor: worker %d could not start; stopping every worker", i + 1);
        return supervisor_stop("a worker could not start", code);
    }
    int64_t wait_ms = (w->started_us - clock_monotonic_us()) / 1000 + RESTART_INTERVAL_MS;
    if (wait_ms < 0) wait_ms = 0;
    log_info("supervisor: restarting worker %d in %lld ms", i + 1, (long long)wait_ms);
    schedule_restart(i, wait_ms);
}

static void reap(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < sup.count; i++)
            if (sup.workers[i].pid == pid) on_worker_exit(i, status);
    }
}

/* ---- signals and the stop ---- */

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (int i = 0; i < sup.count; i++) {
        if (sup.workers[i].pid == 0) continue;
        log_warn("supervisor: worker %d (pid %ld) has not stopped: SIGKILL", i + 1,
                 (long)sup.workers[i].pid);
        kill(sup.workers[i].pid, SIGKILL);
    }
}

static void signal_workers(int sig)
{
    for (int i = 0; i < sup.count; i++)
        if (sup.workers[i].pid != 0) kill(sup.workers[i].pid, sig);
}

void supervisor_stop(const char *why, int code)
{
    if (sup.stopping) return;
    sup.stopping = 1;
    sup.exit_code = code;
    log_info("supervisor: stopping (%s)", why);
    for (int i = 0; i < sup.count; i++)
        evtimer_del(sup.workers[i].restart);
    signal_workers(SIGTERM);
    struct timeval tv = clock_timeval(broker.conf.shutdown_timeout + STOP_MARGIN_S);
    evtimer_add(sup.kill_timer, &tv);
    if (sup.alive == 0) event_base_loopexit(broker.base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    switch (sig) {
    case SIGCHLD:
        return reap();
    case SIGHUP:
        log_info("supervisor: SIGHUP: passed to every worker");
        return signal_workers(SIGHUP);
    default:
        return supervisor_stop(sig == SIGINT ? "SIGINT" : "SIGTERM", 0);
    }
}

static int start_signals(void)
{
    if (signals_start(broker.base, handled_signals, sup.signals, SIGNAL_COUNT, on_signal) != 0)
        return -1;
    sup.kill_timer = evtimer_new(broker.base, on_kill_timer, NULL);
    return sup.kill_timer ? 0 : -1;
}

/* ---- start and end ---- */

static int init_workers(void)
{
    sup.count = broker.conf.processes;
    sup.workers = calloc((size_t)sup.count, sizeof *sup.workers);
    if (sup.workers == NULL) return -1;
    for (int i = 0; i < sup.count; i++) {
        struct worker *w = &sup.workers[i];
        snprintf(w->id, sizeof w->id, "%s-%d", broker.conf.node_id, i + 1);
        w->restart = evtimer_new(broker.base, on_restart, w);
        if (w->restart == NULL) return -1;
    }
    return 0;
}

/* Without admin_socket, the metrics are read from sockets in a directory of our own (0700). */
static int make_private_sockets(void)
{
    const char *tmp = getenv("RUNTIME_DIRECTORY"); /* systemd's, when the unit has one */
    if (tmp == NULL || strchr(tmp, ':') != NULL) tmp = getenv("TMPDIR");
    if (tmp == NULL || strlen(tmp) > 64) tmp = "/tmp"; /* room in a socket's path */
    snprintf(sup.private_dir, sizeof sup.private_dir, "%s/moonpost-XXXXXX", tmp);
    if (mkdtemp(sup.private_dir) == NULL) {
        log_error("supervisor: cannot make a directory for the workers' sockets in %s: %s", tmp,
                  strerror(errno));
        sup.private_dir[0] = '\0';
        return -1;
    }
    snprintf(sup.socket_base, sizeof sup.socket_base, "%s/admin.sock", sup.private_dir);
    log_info("supervisor: no admin_socket: the workers' admin sockets are in %s", sup.private_dir);
    return 0;
}

static void remove_private_sockets(void)
{
    if (sup.private_dir[0] == '\0') return;
    char path[sizeof sup.socket_base + 32];
    for (int i = 0; i < sup.count; i++) {
        snprintf(path, sizeof path, "%s.%d", sup.socket_base, i + 1);
        unlink(path); /* left by a worker that was killed */
    }
    rmdir(sup.private_dir);
}

/* The host's listeners, before any worker: a second supervisor is refused for what it is. */
static int start_listeners(void)
{
    const struct conf *c = &broker.conf;
    if (c->admin_socket != NULL)
        snprintf(sup.socket_base, sizeof sup.socket_base, "%s", c->admin_socket);
    else if (c->http_listen != NULL && make_private_sockets() != 0)
        return 1;
    if (sup.socket_base[0] != '\0' && links_init(broker.base, sup.count, sup.socket_base) != 0)
        return EXIT_CONFIG;
    if (c->admin_socket != NULL) {
        int rc = supervisor_admin_start(c->admin_socket);
        if (rc != 0) return rc == SERVER_IN_USE ? EXIT_CONFIG : 1;
    }
    return http_start(c->http_listen, supervisor_metrics_serve, c->http_tls) == 0 ? 0 : 1;
}

static void cleanup(void)
{
    http_stop();
    supervisor_admin_stop();
    links_free();
    remove_private_sockets();
    signals_stop(handled_signals, sup.signals, SIGNAL_COUNT);
    if (sup.kill_timer) event_free(sup.kill_timer);
    for (int i = 0; i < sup.count; i++)
        if (sup.workers[i].restart) event_free(sup.workers[i].restart);
    free(sup.workers);
}

int supervisor_run(void)
{
    sup.started = time(NULL);
    log_info("moonpost %s supervisor starting %d workers (node %s)", MOONPOST_VERSION,
             broker.conf.processes, broker.conf.node_id);
    int rc = init_workers() == 0 && start_signals() == 0 ? start_listeners() : 1;
    for (int i = 0; rc == 0 && !sup.stopping && i < sup.count; i++)
        if (spawn(i) != 0) supervisor_stop("a worker could not be started", 1);
    const char *pid_file = broker.conf.pid_file;
    if (rc == 0 && pid_file != NULL && pidfile_write(pid_file) != 0)
        supervisor_stop("cannot write pid_file", 1);
    if (rc == 0) {
        event_base_dispatch(broker.base);
        rc = sup.exit_code;
        log_info("supervisor: stopped");
    }
    if (rc == 0 && pid_file != NULL) unlink(pid_file);
    cleanup();
    return rc;
}
