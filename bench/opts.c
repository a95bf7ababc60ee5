/* opts: parsing and checking the command line. */
#include "opts.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const workload_names[] = {"private", "broadcast", "idle",
                                             "login",   "resume",    "room"};

const char *workload_name(enum workload_kind k)
{
    return workload_names[k];
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpost-bench WORKLOAD [options]\n"
            "workloads:\n"
            "  private     every client sends to random others; receivers ack in batches\n"
            "  broadcast   --publishers P send to everyone, --clients N receive\n"
            "  idle        N logged-in sessions held for --duration (RSS per session with\n"
            "              --broker-pid)\n"
            "  login       login storm: N sessions log in at once (moonpost only)\n"
            "  resume      resume storm: N sessions resume their token at once (moonpost only)\n"
            "  room        rooms (moonpost only): --publishers P send to one room that --clients\n"
            "              N are members of; with --room-size K, N clients in rooms of K, each\n"
            "              sending to its own room\n"
            "options:\n"
            "  --proto moonpost|mqtt    protocol (default moonpost; mqtt: MQTT 3.1.1, QoS 0)\n"
            "  -H, --host HOST          target, loopback only (default 127.0.0.1)\n"
            "  -p, --port PORT          default 8889, 1883 for mqtt\n"
            "      --connect H:P[,H:P...]  several brokers (a cluster): client i connects to\n"
            "                           the (i mod count)-th (default: --host and --port)\n"
            "      --allow-remote       allow a target outside 127.0.0.0/8\n"
            "  -c, --clients N          clients (broadcast: receivers) (default 100)\n"
            "  -P, --publishers P       broadcast senders (default 1)\n"
            "      --room-size K        room: members per room, all sending (default 0: one\n"
            "                           room, --publishers send)\n"
            "  -t, --threads T          worker threads, each one epoll loop (default 1)\n"
            "  -d, --duration S         measured seconds; storms: the longest wait (default 10)\n"
            "      --warmup S           sending before the measured window (default 1)\n"
            "      --drain S            wait for messages in flight after it (default 3)\n"
            "  -r, --rate R             sends per second in total; 0 = as fast as the window\n"
            "                           allows (default 0)\n"
            "  -w, --window W           messages one sender may have undelivered (default 8)\n"
            "  -s, --size B             body bytes, >= %d (default 64)\n"
            "      --recipients any|cross|local  private: to any other client, only to clients\n"
            "                           of another broker, or only of the sender's (default any)\n"
            "      --ack-every K|read   ack after K messages (default 32) ...\n"
            "      --ack-delay S        ... or S seconds after the first unacked one (0.05);\n"
            "                           read: after every read that brought messages\n"
            "      --lost-after S       a window stuck this long counts as lost (default 5)\n"
            "      --user-prefix STR    users / MQTT client ids are STR<i> (default b)\n"
            "      --password STR       (default secret1)\n"
            "      --topic-prefix STR   MQTT topics STRu/<i> and STRall (default empty)\n"
            "      --no-register        the users exist: log in without registering\n"
            "      --setup-concurrency N  clients connecting/logging in at once (default 256)\n"
            "      --setup-timeout S    (default 120)\n"
            "      --settle S           idle: wait before the RSS sample; resume: after the\n"
            "                           disconnect (default 1)\n"
            "      --timeout S          hard stop of the whole run (default: the sum of the\n"
            "                           phases + 30)\n"
            "      --src-addrs K        spread sockets over 127.0.0.2..K+1 (default: automatic\n"
            "                           past %d connections)\n"
            "      --src-base ADDR      the first of those addresses (default 127.0.0.2; giving\n"
            "                           it binds every socket, so that several processes can\n"
            "                           use addresses of their own)\n"
            "      --broker-pid PID[,PID...]  report their RSS (summed) and CPU (each)\n"
            "      --redis-pid PID      report its CPU\n"
            "      --barrier DIR        before the timed phase, create DIR/ready.PID and wait\n"
            "                           for DIR/go (several processes start it together)\n"
            "      --label STR          copied into the JSON\n"
            "      --json               print the result as JSON on stdout\n"
            "      --tls                connect with TLS (a tls_listen port; moonpost only);\n"
            "                           the certificate is not verified\n"
            "      --progress / --no-progress  live line on stderr (default: when a terminal)\n",
            BENCH_BODY_MIN, BENCH_PORTS_PER_ADDR);
}

enum {
    OPT_PROTO = 256,
    OPT_ROOM_SIZE,
    OPT_ALLOW_REMOTE,
    OPT_WARMUP,
    OPT_DRAIN,
    OPT_ACK_EVERY,
    OPT_ACK_DELAY,
    OPT_LOST_AFTER,
    OPT_USER_PREFIX,
    OPT_PASSWORD,
    OPT_TOPIC_PREFIX,
    OPT_NO_REGISTER,
    OPT_SETUP_CONC,
    OPT_SETUP_TIMEOUT,
    OPT_SETTLE,
    OPT_TIMEOUT,
    OPT_SRC_ADDRS,
    OPT_SRC_BASE,
    OPT_CONNECT,
    OPT_RECIPIENTS,
    OPT_BARRIER,
    OPT_BROKER_PID,
    OPT_REDIS_PID,
    OPT_LABEL,
    OPT_JSON,
    OPT_TLS,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
};

static const struct option long_options[] = {
    {"proto", required_argument, 0, OPT_PROTO},
    {"host", required_argument, 0, 'H'},
    {"port", required_argument, 0, 'p'},
    {"allow-remote", no_argument, 0, OPT_ALLOW_REMOTE},
    {"clients", required_argument, 0, 'c'},
    {"publishers", required_argument, 0, 'P'},
    {"room-size", required_argument, 0, OPT_ROOM_SIZE},
    {"threads", required_argument, 0, 't'},
    {"duration", required_argument, 0, 'd'},
    {"warmup", required_argument, 0, OPT_WARMUP},
    {"drain", required_argument, 0, OPT_DRAIN},
    {"rate", required_argument, 0, 'r'},
    {"window", required_argument, 0, 'w'},
    {"size", required_argument, 0, 's'},
    {"ack-every", required_argument, 0, OPT_ACK_EVERY},
    {"ack-delay", required_argument, 0, OPT_ACK_DELAY},
    {"lost-after", required_argument, 0, OPT_LOST_AFTER},
    {"user-prefix", required_argument, 0, OPT_USER_PREFIX},
    {"password", required_argument, 0, OPT_PASSWORD},
    {"topic-prefix", required_argument, 0, OPT_TOPIC_PREFIX},
    {"no-register", no_argument, 0, OPT_NO_REGISTER},
    {"setup-concurrency", required_argument, 0, OPT_SETUP_CONC},
    {"setup-timeout", required_argument, 0, OPT_SETUP_TIMEOUT},
    {"settle", required_argument, 0, OPT_SETTLE},
    {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"src-addrs", required_argument, 0, OPT_SRC_ADDRS},
    {"src-base", required_argument, 0, OPT_SRC_BASE},
    {"connect", required_argument, 0, OPT_CONNECT},
    {"recipients", required_argument, 0, OPT_RECIPIENTS},
    {"barrier", required_argument, 0, OPT_BARRIER},
    {"broker-pid", required_argument, 0, OPT_BROKER_PID},
    {"redis-pid", required_argument, 0, OPT_REDIS_PID},
    {"label", required_argument, 0, OPT_LABEL},
    {"json", no_argument, 0, OPT_JSON},
    {"tls", no_argument, 0, OPT_TLS},
    {"progress", no_argument, 0, OPT_PROGRESS},
    {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "moonpost-bench: --%s %s: expected a number in %g..%g\n", name, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_int(const char *name, const char *s, double lo, double hi, int *out)
{
    double v;
    if (parse_num(name, s, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

/* "PID[,PID...]" into O->broker_pid. */
static int parse_pids(const char *s, struct options *o)
{
    o->brokers = 0;
    for (const char *p = s; *p != '\0';) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > (1L << 30) || (*end != ',' && *end != '\0') ||
            o->brokers == BENCH_MAX_BROKERS) {
            fprintf(stderr, "moonpost-bench: --broker-pid %s: 1 to %d pids, comma-separated\n", s,
                    BENCH_MAX_BROKERS);
            return -1;
        }
        o->broker_pid[o->brokers++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    return o->brokers ? 0 : -1;
}

static int parse_recipients(const char *s, enum recipients *out)
{
    static const char *const names[] = {"any", "cross", "local"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum recipients)i;
            return 0;
        }
    }
    fprintf(stderr, "moonpost-bench: --recipients any, cross or local\n");
    return -1;
}

static void defaults(struct options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->clients = 100;
    o->publishers = 1;
    o->threads = 1;
    o->duration = 10;
    o->warmup = 1;
    o->drain = 3;
    o->settle = 1;
    o->lost_after = 5;
    o->setup_timeout = 120;
    o->window = 8;
    o->size = 64;
    o->ack_every = 32;
    o->ack_delay = 0.05;
    o->user_prefix = "b";
    o->password = "secret1";
    o->topic_prefix = "";
    o->setup_concurrency = 256;
    o->progress = -1;
}

static int set_workload(struct options *o, const char *name)
{
    for (size_t i = 0; i < sizeof workload_names / sizeof *workload_names; i++) {
        if (strcmp(name, workload_names[i]) == 0) {
            o->workload = (enum workload_kind)i;
            return 0;
        }
    }
    fprintf(stderr, "moonpost-bench: unknown workload '%s'\n", name);
    return -1;
}

static int take(struct options *o, int ch, const char *arg)
{
    switch (ch) {
    case OPT_PROTO:
        if (strcmp(arg, "moonpost") == 0)
            o->proto = PROTO_MOONPOST;
        else if (strcmp(arg, "mqtt") == 0)
            o->proto = PROTO_MQTT;
        else
            return fprintf(stderr, "moonpost-bench: --proto moonpost or mqtt\n"), -1;
        return 0;
    case 'H':
        o->host = arg;
        return 0;
    case 'p':
        return parse_int("port", arg, 1, 65535, &o->port);
    case OPT_ALLOW_REMOTE:
        o->allow_remote = 1;
        return 0;
    case 'c':
        return parse_int("clients", arg, 1, 1000000, &o->clients);
    case 'P':
        return parse_int("publishers", arg, 1, 100000, &o->publishers);
    case OPT_ROOM_SIZE:
        return parse_int("room-size", arg, 2, 1000000, &o->room_size);
    case 't':
        return parse_int("threads", arg, 1, BENCH_MAX_THREADS, &o->threads);
    case 'd':
        return parse_num("duration", arg, 0.1, 86400, &o->duration);
    case OPT_WARMUP:
        return parse_num("warmup", arg, 0, 3600, &o->warmup);
    case OPT_DRAIN:
        return parse_num("drain", arg, 0, 3600, &o->drain);
    case 'r':
        return parse_num("rate", arg, 0, 1e9, &o->rate);
    case 'w':
        return parse_int("window", arg, 1, (double)BCAST_RING / 2, &o->window);
    case 's':
        return parse_int("size", arg, BENCH_BODY_MIN, 16 << 20, &o->size);
    case OPT_ACK_EVERY:
        if (strcmp(arg, "read") == 0) {
            o->ack_every = ACK_EVERY_READ;
            return 0;
        }
        return parse_int("ack-every", arg, 1, 1000000, &o->ack_every);
    case OPT_ACK_DELAY:
        return parse_num("ack-delay", arg, 0, 60, &o->ack_delay);
    case OPT_LOST_AFTER:
        return parse_num("lost-after", arg, 0.01, 3600, &o->lost_after);
    case OPT_USER_PREFIX:
        o->user_prefix = arg;
        return 0;
    case OPT_PASSWORD:
        o->password = arg;
        return 0;
    case OPT_TOPIC_PREFIX:
        o->topic_prefix = arg;
        return 0;
    case OPT_NO_REGISTER:
        o->no_register = 1;
        return 0;
    case OPT_SETUP_CONC:
        return parse_int("setup-concurrency", arg, 1, 1000000, &o->setup_concurrency);
    case OPT_SETUP_TIMEOUT:
        return parse_num("setup-timeout", arg, 0.1, 86400, &o->setup_timeout);
    case OPT_SETTLE:
        return parse_num("settle", arg, 0, 3600, &o->settle);
    case OPT_TIMEOUT:
        return parse_num("timeout", arg, 1, 86400 * 2, &o->hard_timeout);
    case OPT_SRC_ADDRS:
        return parse_int("src-addrs", arg, 0, 250, &o->src_addrs);
    case OPT_SRC_BASE:
        o->src_base = arg;
        return 0;
    case OPT_CONNECT:
        o->connect = arg;
        return 0;
    case OPT_RECIPIENTS:
        return parse_recipients(arg, &o->recipients);
    case OPT_BARRIER:
        o->barrier = arg;
        return 0;
    case OPT_BROKER_PID:
        return parse_pids(arg, o);
    case OPT_REDIS_PID:
        return parse_int("redis-pid", arg, 1, 1 << 30, &o->redis_pid);
    case OPT_LABEL:
        o->label = arg;
        return 0;
    case OPT_TLS:
        o->tls = 1;
        return 0;
    case OPT_JSON:
        o->json = 1;
        return 0;
    case OPT_PROGRESS:
        o->progress = 1;
        return 0;
    case OPT_NO_PROGRESS:
        o->progress = 0;
        return 0;
    default:
        usage(stderr);
        return -1;
    }
}

static int check(struct options *o)
{
    int storm = o->workload == WL_LOGIN || o->workload == WL_RESUME;
    if (o->tls && o->proto == PROTO_MQTT) {
        fprintf(stderr, "moonpost-bench: --tls speaks moonpost only\n");
        return -1;
    }
    if (storm && o->proto == PROTO_MQTT) {
        fprintf(stderr, "moonpost-bench: the %s storm is moonpost only\n",
                workload_name(o->workload));
        return -1;
    }
    if (o->recipients != RCPT_ANY && o->workload != WL_PRIVATE) {
        fprintf(stderr, "moonpost-bench: --recipients is for the private workload\n");
        return -1;
    }
    if (o->workload == WL_ROOM && o->proto == PROTO_MQTT) {
        fprintf(stderr, "moonpost-bench: the room workload is moonpost only\n");
        return -1;
    }
    if (o->room_size && o->workload != WL_ROOM) {
        fprintf(stderr, "moonpost-bench: --room-size is for the room workload\n");
        return -1;
    }
    if (o->workload == WL_ROOM && o->room_size > o->clients) {
        fprintf(stderr, "moonpost-bench: --room-size is larger than --clients\n");
        return -1;
    }
    if (o->workload == WL_PRIVATE && o->clients < 2) {
        fprintf(stderr, "moonpost-bench: private needs at least 2 clients\n");
        return -1;
    }
    if (o->threads > o->clients) o->threads = o->clients;
    if (o->port == 0) o->port = o->proto == PROTO_MQTT ? 1883 : 8889;
    if (o->progress < 0) o->progress = isatty(STDERR_FILENO) && !o->json;
    if (o->hard_timeout == 0)
        o->hard_timeout =
            2 * o->setup_timeout + o->settle + o->warmup + o->duration + o->drain + 30;
    return 0;
}

int opts_parse(struct options *o, int argc, char **argv)
{
    defaults(o);
    int ch;
    while ((ch = getopt_long(argc, argv, "H:p:c:P:t:d:r:w:s:h", long_options, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return 1;
        }
        if (take(o, ch, optarg) != 0) return -1;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    if (set_workload(o, argv[optind]) != 0) return -1;
    return check(o);
}
