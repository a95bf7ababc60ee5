/* moonpost-bench: a load generator for moonpost (and, for comparison, MQTT brokers).
 *
 * main: options, the clients dealt to the worker threads, the threads, the report. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "loop.h"
#include "net.h"
#include "opts.h"
#include "phases.h"
#include "proto.h"
#include "report.h"
#include "tls.h"

#define SPARE_FDS 64

struct run run;

static void on_sigint(int sig)
{
    (void)sig;
    phases_interrupted = 1;
}

static int raise_fd_limit(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need + SPARE_FDS > rl.rlim_cur) {
        fprintf(stderr,
                "moonpost-bench: %d connections need more than the %llu descriptors "
                "this process may open\n",
                need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

/* Client I goes to worker I % T, so each worker's slice is in index order. */
static int deal_clients(void)
{
    int t = run.opt.threads;
    enum setup_mode mode = run.opt.workload == WL_LOGIN ? SETUP_REGISTER : SETUP_LOGIN;
    for (int w = 0; w < t; w++) {
        struct worker *wk = &run.workers[w];
        wk->count = (size_t)((run.total - w + t - 1) / t);
        wk->clients = calloc(wk->count ? wk->count : 1, sizeof *wk->clients);
        if (wk->clients == NULL) return -1;
    }
    for (int i = 0; i < run.total; i++) {
        struct worker *wk = &run.workers[i % t];
        struct client *c = &wk->clients[i / t];
        c->fd = -1;
        c->index = (uint32_t)i;
        c->w = wk;
        c->mode = (uint8_t)mode;
        c->receiver = i >= run.first_receiver;
    }
    for (int w = 0; w < t; w++)
        if (worker_init(&run.workers[w], w) != 0) return -1;
    return 0;
}

/* --connect, else --host and --port: the brokers, client i on broker i % count. */
static int resolve_targets(void)
{
    const struct options *o = &run.opt;
    if (o->connect == NULL) {
        run.targets = 1;
        return net_resolve(o->host, o->port, o->allow_remote, &run.target[0]);
    }
    run.targets = net_resolve_list(o->connect, o->port, o->allow_remote, run.target,
                                   BENCH_MAX_BROKERS);
    return run.targets > 0 ? 0 : -1;
}

/* --recipients cross needs a second broker; local needs two clients on every broker. */
static int check_recipients(void)
{
    const struct options *o = &run.opt;
    if (o->recipients == RCPT_CROSS && (run.targets < 2 || run.total < run.targets)) {
        fprintf(stderr, "moonpost-bench: --recipients cross needs 2 brokers or more (--connect) "
                        "and a client on each\n");
        return -1;
    }
    if (o->recipients == RCPT_LOCAL && run.total < 2 * run.targets) {
        fprintf(stderr, "moonpost-bench: --recipients local needs 2 clients on every broker\n");
        return -1;
    }
    return 0;
}

static int init_run(void)
{
    struct options *o = &run.opt;
    run.proto = o->proto == PROTO_MQTT ? &proto_mqtt : &proto_moonpost;
    if (resolve_targets() != 0) return -1;
    run.total = o->clients;
    run.first_receiver = 0;
    if (workload_fans_out(o)) {
        run.total += o->publishers;
        run.senders = run.first_receiver = o->publishers;
    } else if (o->workload == WL_PRIVATE || o->workload == WL_ROOM) {
        run.senders = run.total; /* rooms of --room-size: every member sends and receives */
    }
    if (check_recipients() != 0 || raise_fd_limit(run.total) != 0) return -1;
    run.src_addrs = o->src_addrs ? o->src_addrs : net_source_addrs(&run.target[0], run.total);
    run.src_base = (127u << 24) | 2u;
    if (o->src_base != NULL) {
        if (net_parse_source(o->src_base, &run.src_base) != 0) return -1;
        if (run.src_addrs == 0) run.src_addrs = 1; /* a base given is a base used */
    }
    run.run_id = (uint16_t)(getpid() ^ (bench_now() >> 10));
    run.sender = calloc((size_t)(run.senders ? run.senders : 1), sizeof *run.sender);
    int counted = o->workload == WL_BROADCAST || o->workload == WL_ROOM; /* per message */
    size_t slots = (size_t)(run.senders ? run.senders : 1) * BCAST_RING;
    if (counted) run.bcast = calloc(slots, sizeof *run.bcast);
    if (o->workload == WL_RESUME) run.tokens = calloc((size_t)run.total, sizeof *run.tokens);
    if (!run.sender || (counted && !run.bcast) ||
        (o->workload == WL_RESUME && !run.tokens))
        return -1;
    return deal_clients();
}

static void free_run(void)
{
    for (int w = 0; w < run.opt.threads; w++) {
        worker_free(&run.workers[w]);
        free(run.workers[w].clients);
    }
    if (run.tokens)
        for (int i = 0; i < run.total; i++)
            free(run.tokens[i]);
    free(run.tokens);
    free(run.sender);
    free(run.bcast);
}

int main(int argc, char **argv)
{
    int rc = opts_parse(&run.opt, argc, argv);
    if (rc != 0) return rc > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    alarm((unsigned)run.opt.hard_timeout + 10); /* the last resort if a phase hangs */
    if (run.opt.tls && bench_tls_init() != 0) return 1;
    if (init_run() != 0) {
        fprintf(stderr, "moonpost-bench: cannot set the run up\n");
        return 1;
    }
    atomic_store(&run.phase, PH_INIT);
    int started = 0;
    for (; started < run.opt.threads; started++)
        if (pthread_create(&run.workers[started].thread, NULL, worker_main,
                           &run.workers[started]) != 0)
            break;
    static struct result result;
    if (started == run.opt.threads) phases_run(&result);
    atomic_store(&run.phase, PH_DONE);
    for (int i = 0; i < started; i++)
        pthread_join(run.workers[i].thread, NULL);
    report_collect(&result);
    if (run.opt.json)
        report_json(&result, stdout);
    else
        report_table(&result, stdout);
    free_run();
    bench_tls_free();
    if (started != run.opt.threads) return 1;
    return result.hard_stop ? 3 : 0;
}
