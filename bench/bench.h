/* bench: the types every part of moonpost-bench shares: options, the run, workers, clients.
 *
 * One run = N clients spread over T worker threads, each thread one epoll loop. The main
 * thread only moves the run through its phases and reports. */
#ifndef MOONPOST_BENCH_H
#define MOONPOST_BENCH_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hist.h"

#define BENCH_MAX_THREADS 64
#define BENCH_BODY_MIN 36 /* 16 hex timestamp, 8 hex sender, 8 hex seq, 4 hex run id */
#define BENCH_CODES 600   /* res and bye codes are counted in arrays this long */
#define BENCH_PORTS_PER_ADDR 28000
#define BENCH_MAX_BROKERS 16 /* --connect addresses, --broker-pid pids */

enum workload_kind { WL_PRIVATE, WL_BROADCAST, WL_IDLE, WL_LOGIN, WL_RESUME, WL_ROOM };
enum proto_kind { PROTO_MOONPOST, PROTO_MQTT };

/* Whom a private message goes to, by broker (client i uses broker i % brokers). */
enum recipients {
    RCPT_ANY,   /* any other client */
    RCPT_CROSS, /* a client on another broker: every message crosses nodes */
    RCPT_LOCAL, /* a client on the sender's broker: no message crosses nodes */
};

/* What a client does after it connects, before it counts as ready. */
enum setup_mode {
    SETUP_LOGIN,      /* register (409 is fine) then login */
    SETUP_REGISTER,   /* register only, then close (login storm preparation) */
    SETUP_LOGIN_ONLY, /* login (the login storm) */
    SETUP_RESUME,     /* resume with the token kept from the preparation */
};

/* Locally detected errors, counted beside the broker's res/bye codes. */
enum local_error {
    LERR_CONNECT,  /* connect() failed or was refused */
    LERR_CLOSED,   /* the broker closed a connection we still needed */
    LERR_PROTOCOL, /* a frame or packet we could not read */
    LERR_LOST,     /* sent, never delivered within --lost-after */
    LERR_SETUP,    /* a client was not ready when the setup timeout ran out */
    LERR_STORM,    /* a storm session not back when the storm timeout ran out */
    LERR_BARRIER,  /* --barrier: the go never came */
    LERR_COUNT
};

/* --ack-every read: a client acks after every read that brought messages, as one that wants its
 * mailbox small does */
#define ACK_EVERY_READ 0

struct options {
    enum workload_kind workload;
    enum proto_kind proto;
    const char *host;
    int port;
    const char *connect; /* HOST:PORT[,HOST:PORT...]; NULL: --host and --port */
    enum recipients recipients;
    int allow_remote;
    int clients;    /* receivers for broadcast and a room fan-out */
    int publishers; /* broadcast and room fan-out senders */
    int room_size;  /* room: members per room, every one sending; 0 = one room, --publishers
                     * send to --clients (a fan-out like broadcast) */
    int threads;
    double duration, warmup, drain, settle, lost_after;
    double setup_timeout, hard_timeout;
    double rate; /* total sends per second; 0 = as fast as the window allows */
    int window;
    int size;
    int ack_every; /* or ACK_EVERY_READ */
    double ack_delay;
    const char *user_prefix;
    const char *password;
    const char *topic_prefix;
    int no_register;
    int setup_concurrency;
    int src_addrs;        /* 0 = automatic */
    const char *src_base; /* first source address; NULL: 127.0.0.2 */
    int broker_pid[BENCH_MAX_BROKERS];
    int brokers; /* pids in broker_pid */
    int redis_pid;
    const char *barrier; /* directory shared with the other processes of one run */
    int json, progress;
    int tls; /* --tls: connect with TLS (to a tls_listen port) */
    const char *label;
};

enum phase { PH_INIT, PH_SETUP, PH_RUN, PH_DRAIN, PH_CLOSE, PH_STORM, PH_DONE };

enum client_state { CL_IDLE, CL_CONNECTING, CL_SETUP, CL_READY, CL_DONE };

struct worker;

struct client {
    int fd;
    struct ssl_st *ssl; /* --tls: the connection's TLS stream (an OpenSSL SSL), else NULL */
    uint32_t index; /* global index: user PREFIX<index> */
    uint8_t state;
    uint8_t step; /* protocol-specific setup step */
    uint8_t mode; /* enum setup_mode */
    uint8_t dirty, want_out, ack_listed, receiver;
    uint64_t last_id;
    uint64_t max_mid; /* highest mid seen, acked by the next ack */
    uint32_t unacked;
    int64_t t_start, t_ack_due;
    uint32_t seq; /* messages this client sent */
    struct buf in, out;
    struct worker *w;
};

/* Per-sender flow control, touched by the receiving thread too. */
struct sender {
    atomic_int inflight;
    atomic_llong last_progress_ns;
};

/* Broadcast completion: a slot per message in flight, counted by every receiver. */
#define BCAST_RING 1024
struct bcast_slot {
    atomic_uint seq;
    atomic_uint count;
};

/* Counters a worker owns; the main thread reads the atomics for the progress line. */
struct counters {
    atomic_ullong sent, delivered, ready, failed, back, errors;
    uint64_t delivered_window; /* deliveries received inside the measured window */
    uint64_t sent_window;
    uint64_t stale; /* deliveries of another run (a left-over mailbox), acked */
    uint64_t from_mailbox; /* deliveries of this run read from the mailbox (offline: a resync) */
    uint64_t acks;
    uint64_t res_err[BENCH_CODES];
    uint64_t bye[BENCH_CODES];
    uint64_t local[LERR_COUNT];
    uint64_t other_err; /* res codes out of range */
};

struct worker {
    int id;
    pthread_t thread;
    int epfd;
    struct client *clients; /* this worker's slice */
    size_t count;
    size_t next_connect; /* setup: next client to start */
    size_t open_setups;  /* clients connecting or in setup */
    size_t next_sender;  /* round robin over senders */
    double rate_sent;    /* sends made under --rate since the run started */
    int64_t next_lost_check;
    uint8_t *body; /* scratch for one message body of --size bytes */
    struct client **dirty;
    size_t dirty_count;
    struct client **ack_list;
    size_t ack_count;
    uint64_t rng;
    uint8_t *rbuf;
    struct hist latency; /* send to delivery (private, broadcast), connect to back (storms) */
    struct hist reply;   /* request to its res (moonpost send, broadcast) */
    struct hist setup;   /* connect to ready (login, subscribe) before the measured phase */
    struct counters ctr;
};

struct run {
    struct options opt;
    uint16_t run_id;
    struct sockaddr_in target[BENCH_MAX_BROKERS];
    int targets;
    int src_addrs;
    uint32_t src_base; /* host byte order */
    int total; /* connections: clients + publishers */
    int senders, first_receiver;
    atomic_int phase;
    atomic_llong t_run_start, t_measure_start, t_measure_end; /* CLOCK_MONOTONIC ns */
    atomic_llong t_storm_start, t_last_back;
    atomic_int receivers_ready;
    struct worker workers[BENCH_MAX_THREADS];
    struct sender *sender;    /* [senders] */
    struct bcast_slot *bcast; /* [publishers * BCAST_RING] */
    char **tokens;            /* resume tokens by client index */
    const struct proto *proto;
};

extern struct run run;

/* The broker (index into run.target) client INDEX connects to: round robin by index. */
static inline int broker_of(uint32_t index)
{
    return (int)(index % (uint32_t)run.targets);
}

/* Workloads that send messages (and measure their delivery). */
static inline int workload_sends(enum workload_kind k)
{
    return k == WL_PRIVATE || k == WL_BROADCAST || k == WL_ROOM;
}

/* Workloads where --publishers send to --clients. */
static inline int workload_fans_out(const struct options *o)
{
    return o->workload == WL_BROADCAST || (o->workload == WL_ROOM && o->room_size == 0);
}

/* The room client INDEX is a member of (room workload). */
static inline uint32_t room_of(uint32_t index)
{
    return run.opt.room_size ? index / (uint32_t)run.opt.room_size : 0;
}

/* Monotonic clock in nanoseconds. */
int64_t bench_now(void);

/* Whether T falls inside the measured window (sends and deliveries outside it are not counted). */
static inline int in_measured_window(int64_t t)
{
    return t >= atomic_load_explicit(&run.t_measure_start, memory_order_relaxed) &&
           t < atomic_load_explicit(&run.t_measure_end, memory_order_relaxed);
}

/* Counts a broker-side code (res != 200) or a local error. */
void count_res_error(struct worker *w, int code);
void count_bye(struct worker *w, int code);
void count_local(struct worker *w, enum local_error e);

#endif
