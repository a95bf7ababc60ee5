/* cluster: the node's registration, its channels and the registry of who is online where. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "broker.h"
#include "bus.h"
#include "cluster_functions.h" /* generated from cluster_functions.lua */
#include "log.h"
#include "presence.h"
#include "redis_link.h"
#include "redis_slot.h"
#include "router.h"
#include "session.h"
#include "stats.h"
#include "store_cluster.h"
#include "topic.h"

#define BEAT_MAX_MS 1000
#define RENEW_BATCH 200 /* sessions per moonpost_presence_renew call */
#define ID_MAX 64

static struct {
    struct event_base *base;
    struct event *beat;
    struct redis_link beat_link; /* beats do not wait behind the store's commands */
    int beat_in_flight;          /* a beat sent on beat_link, not answered yet */
    char instance[33]; /* random per process start: tells a restart from a second process */
    char started[24];  /* ms since the epoch */
    char channel[ID_MAX + 80];   /* this node's channel */
    char broadcast[80];          /* every node's channel */
    int registered;    /* a beat succeeded once */
    int64_t held_deadline; /* while the id is held by another instance: its deadline seen last */
    int left;    /* no more beats: the node is stopping */
    int rejoin_pending; /* sessions to renew and resync once both connections are up */
    void (*stop)(const char *why); /* stops the broker: the node id is not ours */
    struct {
        uint8_t *data;
        size_t len, cap;
    } payload; /* the message being published (hiredis copies it) */
} node;

static const char *prefix(void)
{
    return broker.conf.redis_prefix;
}

static const char *node_id(void)
{
    return broker.conf.node_id;
}

/* ---- calling the registry ---- */

const char *cluster_registry_key(void)
{
    static char key[256];
    snprintf(key, sizeof key, "%s%snodes", prefix(),
             broker.conf.redis_cluster ? "{registry}:" : "");
    return key;
}

enum { CALL_FIXED = 5, CALL_MAX_ARGS = 2 * RENEW_BATCH + 8, CALL_MAX = CALL_FIXED + CALL_MAX_ARGS };

/* The words of "FCALL NAME 1 registry-key prefix ARGV..." into WORDS and WORD_LENS (CALL_MAX
 * each); returns their count, or -1 when ARGC is too many. The one key routes the call to the
 * registry's slot on a Redis Cluster. */
static int call_words(const char *name, int argc, const char *const *argv, const size_t *lens,
                      const char **words, size_t *word_lens)
{
    if (argc > CALL_MAX_ARGS) return -1;
    const char *fixed[CALL_FIXED] = {"FCALL", name, "1", cluster_registry_key(), prefix()};
    for (int i = 0; i < CALL_FIXED; i++) {
        words[i] = fixed[i];
        word_lens[i] = strlen(fixed[i]);
    }
    for (int i = 0; i < argc; i++) {
        words[CALL_FIXED + i] = argv[i];
        word_lens[CALL_FIXED + i] = lens != NULL ? lens[i] : strlen(argv[i]);
    }
    return CALL_FIXED + argc;
}

int cluster_call(const char *name, int argc, const char *const *argv, const size_t *lens,
                 store_reply_fn fn, void *arg)
{
    const char *words[CALL_MAX];
    size_t word_lens[CALL_MAX];
    int n = call_words(name, argc, argv, lens, words, word_lens);
    return n < 0 ? -1 : store_command(n, words, word_lens, fn, arg);
}

/* The reply of a call nobody waits for: only errors matter. */
static void on_ignored_reply(redisReply *reply, const char *error, void *arg)
{
    const char *what = arg;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_error("cluster: %s: %s", what, reply->str);
    else if (reply == NULL)
        log_debug("cluster: %s: %s", what, error);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

/* ---- delivery to other nodes ---- */

/* SPUBLISHes MSG on node TO's channel (whose slot is its own on a Redis Cluster). The reply is
 * the number of nodes that got it: 1, or 0 when TO is not subscribed. */
static int tell(const char *to, size_t to_len, const void *msg, size_t len, store_reply_fn fn,
                void *arg)
{
    char channel[ID_MAX + 80];
    int n = snprintf(channel, sizeof channel, "%snode:%.*s", prefix(), (int)to_len, to);
    if (n < 0 || (size_t)n >= sizeof channel) return -1;
    const char *argv[] = {"SPUBLISH", channel, msg};
    size_t lens[] = {8, (size_t)n, len};
    if (fn == NULL) {
        fn = on_ignored_reply;
        arg = (void *)"SPUBLISH";
    }
    return store_command(3, argv, lens, fn, arg);
}

/* "K<seq> <user>" to node TO: a newer claim of USER elsewhere. */
static void tell_kick(const char *to, size_t to_len, const char *user, size_t user_len,
                      uint64_t seq)
{
    char msg[24 + SESSION_USER_MAX + 2];
    int n = snprintf(msg, sizeof msg, "K%llu %.*s", (unsigned long long)seq, (int)user_len, user);
    if (n > 0 && (size_t)n < sizeof msg) tell(to, to_len, msg, (size_t)n, NULL, NULL);
}

/* Writes a channel message's head at AT: KIND, then NAME with its length byte first. Returns
 * where the bytes after it go. */
static uint8_t *put_head(uint8_t *at, char kind, const char *name, size_t name_len)
{
    at[0] = (uint8_t)kind;
    at[1] = (uint8_t)name_len;
    memcpy(at + 2, name, name_len);
    return at + 2 + name_len;
}

/* The rest of a 'D' message, at TAIL: MID, PREV, then the frame. */
static void put_delivery(uint8_t *tail, uint64_t mid, uint64_t prev, const void *frame,
                         size_t frame_len)
{
    put_u64(tail, mid);
    put_u64(tail + 8, prev);
    memcpy(tail + 16, frame, frame_len);
}

/* A message for a user's node, waiting for the registry to say which node that is. */
struct route {
    store_reply_fn fn; /* NULL: nobody waits */
    void *arg;
    size_t len;
    uint8_t msg[];
};

/* A route whose message starts with KIND and NAME (its length byte first); its EXTRA bytes
 * that follow are the caller's to write at *TAIL. NULL when out of memory. */
static struct route *route_new(char kind, const char *name, size_t name_len, size_t extra,
                               uint8_t **tail)
{
    struct route *r = malloc(sizeof *r + 2 + name_len + extra);
    if (r == NULL) return NULL;
    r->len = 2 + name_len + extra;
    *tail = put_head(r->msg, kind, name, name_len);
    return r;
}

/* The caller hears the registry's answer (the node, or nil: online nowhere) at once; the
 * message follows on that node's channel. A node whose channel is not subscribed at that
 * moment reads its users' mailboxes again once it is. */
static void on_where_reply(redisReply *reply, const char *error, void *arg)
{
    struct route *r = arg;
    if (reply != NULL && reply->type == REDIS_REPLY_STRING &&
        tell(reply->str, reply->len, r->msg, r->len, NULL, NULL) != 0)
        reply = NULL, error = "storage unavailable";
    if (r->fn != NULL)
        r->fn(reply, error, r->arg);
    else if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_error("cluster: moonpost_where: %s", reply->str);
    free(r);
}

/* Asks the registry where USER is, then sends R there. */
static int route_send(const char *user, size_t user_len, struct route *r, store_reply_fn fn,
                      void *arg)
{
    r->fn = fn;
    r->arg = arg;
    const char *argv[] = {user};
    if (cluster_call("moonpost_where", 1, argv, &user_len, on_where_reply, r) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

int cluster_route(const char *user, size_t user_len, const void *frame, size_t frame_len,
                  uint64_t mid, uint64_t prev, store_reply_fn fn, void *arg)
{
    if (user_len == 0 || user_len > SESSION_USER_MAX) return -1;
    uint8_t *tail;
    struct route *r = route_new('D', user, user_len, 16 + frame_len, &tail);
    if (r == NULL) return -1;
    put_delivery(tail, mid, prev, frame, frame_len);
    return route_send(user, user_len, r, fn, arg);
}

/* Starts node.payload with KIND and NAME (its length byte first), and returns where the
 * caller writes the EXTRA bytes that follow, or NULL when out of memory. */
static uint8_t *payload_begin(char kind, const char *name, size_t name_len, size_t extra)
{
    size_t need = 2 + name_len + extra;
    if (need > node.payload.cap) {
        size_t cap = need < 4096 ? 4096 : need * 2;
        uint8_t *grown = realloc(node.payload.data, cap);
        if (grown == NULL) return NULL;
        node.payload.data = grown;
        node.payload.cap = cap;
    }
    node.payload.len = need;
    return put_head(node.payload.data, kind, name, name_len);
}

int cluster_route_to(const char *to, size_t to_len, const char *user, size_t user_len,
                     const void *frame, size_t frame_len, uint64_t mid, uint64_t prev,
                     store_reply_fn fn, void *arg)
{
    if (user_len == 0 || user_len > SESSION_USER_MAX) return -1;
    uint8_t *tail = payload_begin('D', user, user_len, 16 + frame_len);
    if (tail == NULL) return -1;
    put_delivery(tail, mid, prev, frame, frame_len);
    return tell(to, to_len, node.payload.data, node.payload.len, fn, arg);
}

int cluster_kick(const char *user, size_t user_len, store_reply_fn fn, void *arg)
{
    if (user_len == 0 || user_len > SESSION_USER_MAX) return -1;
    uint8_t *tail;
    struct route *r = route_new('X', user, user_len, 0, &tail);
    if (r == NULL) return -1;
    return route_send(user, user_len, r, fn, arg);
}

static void remote_deliver(const char *user, size_t user_len, const void *frame, size_t frame_len,
                           uint64_t mid, uint64_t prev)
{
    cluster_route(user, user_len, frame, frame_len, mid, prev, NULL, NULL);
}

static void remote_broadcast(const void *frame, size_t frame_len)
{
    const char *id = node_id();
    uint8_t *tail = payload_begin('B', id, strlen(id), frame_len);
    if (tail == NULL) return;
    memcpy(tail, frame, frame_len);
    const char *argv[] = {"PUBLISH", node.broadcast, (const char *)node.payload.data};
    size_t lens[] = {7, strlen(node.broadcast), node.payload.len};
    store_command(3, argv, lens, on_ignored_reply, (void *)"PUBLISH broadcast");
}

const char *cluster_broadcast_channel(void)
{
    return node.broadcast;
}

const char *cluster_node_channel(void)
{
    return node.channel;
}

/* ---- claims: one user, one session, cluster-wide ---- */

struct claim {
    session_handle session;
    uint8_t user_len;
    char user[SESSION_USER_MAX + 1];
};

/* The location key of USER: "<prefix>loc:USER", "<prefix>loc:{USER}" on a Redis Cluster (the
 * user's slot, as the chat scripts' chat.key.location). Its length, or 0 when it does not fit. */
static size_t loc_key(char *key, size_t size, const char *user, size_t user_len)
{
    int cluster = broker.conf.redis_cluster;
    int n = snprintf(key, size, "%sloc:%s%.*s%s", prefix(), cluster ? "{" : "", (int)user_len, user,
                     cluster ? "}" : "");
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* moonpost_loc_set or moonpost_loc_clear (NAME) of USER's location for this node's claim SEQ;
 * moonpost_loc_forget with SEQ 0. */
static void loc_call(const char *name, const char *user, size_t user_len, uint64_t seq)
{
    char key[512], seq_text[24];
    size_t key_len = loc_key(key, sizeof key, user, user_len);
    if (key_len == 0) return;
    snprintf(seq_text, sizeof seq_text, "%llu", (unsigned long long)seq);
    const char *argv[] = {"FCALL", name, "1", key, prefix(), node_id(), seq_text};
    size_t lens[] = {5, strlen(name), 1, key_len, strlen(prefix()), strlen(node_id()),
                     strlen(seq_text)};
    store_command(seq != 0 ? 7 : 6, argv, lens, on_ignored_reply, (void *)name);
}

static void release(const char *user, size_t user_len, uint64_t seq)
{
    char seq_text[24];
    snprintf(seq_text, sizeof seq_text, "%llu", (unsigned long long)seq);
    const char *argv[] = {node_id(), user, seq_text};
    size_t lens[] = {strlen(node_id()), user_len, strlen(seq_text)};
    cluster_call("moonpost_presence_release", 3, argv, lens, on_ignored_reply,
                 (void *)"moonpost_presence_release");
    loc_call("moonpost_loc_clear", user, user_len, seq);
}

static void kicked(struct session *s)
{
    stats.cluster_kicks_total++;
    session_supersede(s);
}

static void on_claim_reply(redisReply *reply, const char *error, void *arg)
{
    struct claim *c = arg;
    struct session *s = session_get(c->session);
    if (s != NULL && s->claiming > 0) s->claiming--;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        /* the renew after the reconnect claims it again */
        log_warn("cluster: claim of %s failed: %s", c->user,
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : error);
        free(c);
        return;
    }
    uint64_t seq = (uint64_t)reply->element[0]->integer;
    const redisReply *old = reply->elements > 1 ? reply->element[1] : NULL;
    if (old != NULL && old->type == REDIS_REPLY_STRING)
        tell_kick(old->str, old->len, c->user, c->user_len, seq);
    if (s == NULL || s->user_len != c->user_len || memcmp(s->user, c->user, c->user_len) != 0) {
        release(c->user, c->user_len, seq); /* the session left before its claim landed */
    } else {
        s->claim_seq = seq;
        /* sent before the login's mailbox read, on the same connection (the user's master):
         * a store either sees this location or is in the mailbox that read returns */
        loc_call("moonpost_loc_set", s->user, s->user_len, seq);
        if (s->kicked_seq > seq) kicked(s);
    }
    free(c);
}

static void claim(struct session *s)
{
    struct claim *c = malloc(sizeof *c);
    if (c == NULL) return;
    c->session = s->handle;
    c->user_len = s->user_len;
    memcpy(c->user, s->user, s->user_len + 1);
    const char *argv[] = {s->user, node_id()};
    size_t lens[] = {s->user_len, strlen(node_id())};
    if (cluster_call("moonpost_presence_claim", 2, argv, lens, on_claim_reply, c) != 0) {
        free(c);
        return;
    }
    if (s->claiming < UINT8_MAX) s->claiming++; /* a renew may claim again meanwhile */
}

static void on_session_event(void *state, struct session *s, enum session_event event)
{
    (void)state;
    if (s->kind != SESSION_CLIENT) return;
    if (event == SESSION_LOGGED_IN) claim(s);
    if (event == SESSION_CLOSED && s->claim_seq != 0) release(s->user, s->user_len, s->claim_seq);
}

/* "K<seq> <user>": a newer claim of USER on another node. */
static void on_kick(const uint8_t *msg, size_t len)
{
    const uint8_t *space = memchr(msg, ' ', len);
    if (space == NULL) return;
    uint64_t seq = strtoull((const char *)msg + 1, NULL, 10);
    const char *user = (const char *)space + 1;
    struct session *s = presence_find(user, len - (size_t)(space + 1 - msg));
    if (s == NULL) return;
    if (s->claim_seq != 0 && s->claim_seq < seq)
        kicked(s);
    else if (s->claim_seq == 0 && seq > s->kicked_seq)
        s->kicked_seq = seq; /* its own claim has not come back yet */
}

/* ---- rejoining: presence renewed, mailboxes read again ---- */

/* {lost users, {holder, user, seq, ...}}: the sessions a newer claim took, and the nodes to
 * tell of the users this node took back. */
static void on_renew_reply(redisReply *reply, const char *error, void *arg)
{
    (void)arg;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        log_warn("cluster: renewing presence failed: %s",
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : error);
        return;
    }
    const redisReply *lost = reply->element[0], *to_tell = reply->element[1];
    for (size_t i = 0; i < lost->elements; i++) {
        const redisReply *u = lost->element[i];
        struct session *s = u->type == REDIS_REPLY_STRING ? presence_find(u->str, u->len) : NULL;
        if (s != NULL) kicked(s);
    }
    for (size_t i = 0; i + 2 < to_tell->elements; i += 3) {
        const redisReply *holder = to_tell->element[i], *user = to_tell->element[i + 1],
                         *seq = to_tell->element[i + 2];
        if (holder->type == REDIS_REPLY_STRING && user->type == REDIS_REPLY_STRING &&
            seq->type == REDIS_REPLY_INTEGER)
            tell_kick(holder->str, holder->len, user->str, user->len, (uint64_t)seq->integer);
    }
}

static void renew_step(const char *name)
{
    const char *argv[] = {node_id()};
    cluster_call(name, 1, argv, NULL, on_ignored_reply, (void *)name);
}

/* Puts every session of this node back in the registry (claims what has none yet), and takes
 * out what the registry says of this node that it does not hold. */
static void renew_all(void)
{
    const char *argv[2 * RENEW_BATCH + 1];
    size_t lens[2 * RENEW_BATCH + 1];
    char seqs[RENEW_BATCH][24];
    int n = 0;
    argv[0] = node_id();
    lens[0] = strlen(node_id());
    renew_step("moonpost_presence_renew_begin");
    for (size_t i = 0, count = presence_count(); i <= count; i++) {
        struct session *s = i < count ? presence_at(i) : NULL;
        if (s != NULL && s->claim_seq == 0) {
            /* even when a claim is in flight: one that ran before renew_begin is in the list
             * set aside, and renew_end would take it out */
            claim(s);
        } else if (s != NULL) {
            loc_call("moonpost_loc_set", s->user, s->user_len, s->claim_seq);
            snprintf(seqs[n], sizeof seqs[n], "%llu", (unsigned long long)s->claim_seq);
            argv[1 + 2 * n] = s->user;
            lens[1 + 2 * n] = s->user_len;
            argv[2 + 2 * n] = seqs[n];
            lens[2 + 2 * n] = strlen(seqs[n]);
            n++;
        }
        if (n > 0 && (n == RENEW_BATCH || s == NULL)) {
            cluster_call("moonpost_presence_renew", 1 + 2 * n, argv, lens, on_renew_reply, NULL);
            n = 0;
        }
    }
    renew_step("moonpost_presence_renew_end");
}

static void resync_all(void)
{
    /* router_request_resync may close a session, which reorders the online list: from the end */
    for (size_t i = presence_count(); i-- > 0;) {
        struct session *s = presence_at(i);
        if (s != NULL) router_request_resync(s, 0);
    }
}

/* Renews and resyncs every session once the store and the channels are both up: after the
 * channels came back (what was published meanwhile is lost: kicks and live messages), and
 * after the node rejoined past its deadline. A resync reads the mailbox, so it waits for the
 * store. */
static void rejoin_when_ready(void)
{
    if (!node.rejoin_pending || !store_ready() || !bus_ready()) return;
    node.rejoin_pending = 0;
    renew_all();
    resync_all();
}

static void on_subscribed(void)
{
    if (!node.registered) return; /* the first beat renews */
    node.rejoin_pending = 1;
    rejoin_when_ready();
}

static void on_bus_message(const char *channel, size_t channel_len, const uint8_t *msg,
                           size_t len)
{
    if (len < 2) return;
    int broadcast = channel_len == strlen(node.broadcast) &&
                    memcmp(channel, node.broadcast, channel_len) == 0;
    size_t name_len = msg[1];
    if (msg[0] == 'K') return on_kick(msg, len);
    if (len < 2 + name_len) return;
    const char *name = (const char *)msg + 2;
    const uint8_t *rest = msg + 2 + name_len;
    size_t rest_len = len - 2 - name_len;
    if (broadcast && msg[0] == TOPIC_KIND) return topic_on_bus(name, name_len, rest, rest_len);
    if (!broadcast && msg[0] == TOPIC_FOLLOW_KIND)
        return topic_on_follow(name, name_len, rest, rest_len);
    if (broadcast && msg[0] == 'B') {
        if (name_len != strlen(node_id()) || memcmp(name, node_id(), name_len) != 0)
            router_broadcast_local(rest, rest_len, NULL);
        return;
    }
    struct session *s = presence_find(name, name_len);
    if (s == NULL) {
        /* gone meanwhile: a mailbox message waits in the mailbox; a location that still names
         * this node is stale (a later login here sets it again, after this on one connection) */
        if (msg[0] == 'D') loc_call("moonpost_loc_forget", name, name_len, 0);
        return;
    }
    if (msg[0] == 'D' && rest_len >= 16)
        router_deliver_to(s, rest + 16, rest_len - 16, get_u64(rest), get_u64(rest + 8));
    else if (msg[0] == 'X')
        session_close(s, 403, "kicked by an administrator");
}

/* ---- heartbeat ---- */

static void refuse_id(const char *why)
{
    log_error("cluster: node_id %s %s; give each broker its own node_id", node_id(), why);
    broker.exit_code = 2;
    node.stop("node_id in use");
}

static void on_beat_reply(redisReply *reply, const char *error, void *arg)
{
    (void)arg;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        log_warn("cluster: heartbeat failed: %s",
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : error);
        return;
    }
    if (reply->element[0]->integer == 0) {
        /* held by another instance: a live one beats (its deadline moves), a dead one's passes
         * (a process that stopped, or one Redis remembers from an older copy of its data) */
        int64_t deadline = reply->element[1]->integer;
        if (node.held_deadline != 0 && deadline > node.held_deadline)
            return refuse_id("is in use by a live node");
        if (node.held_deadline == 0)
            log_warn("cluster: node_id %s is held by another process until its heartbeat "
                     "expires; waiting", node_id());
        node.held_deadline = deadline;
        return;
    }
    int joined = reply->element[1]->integer == 1;
    if (!node.registered) log_info("cluster: node %s registered", node_id());
    else if (joined) log_warn("cluster: node %s rejoined (its heartbeat had expired)", node_id());
    node.registered = 1;
    node.held_deadline = 0;
    if (joined) {
        node.rejoin_pending = 1;
        rejoin_when_ready();
    }
}

static void beat(int via_store);

static void on_link_beat_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac, (void)privdata;
    const redisReply *r = reply;
    node.beat_in_flight = 0;
    if (node.left) return; /* the link closing at the stop */
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        (strncmp(r->str, "MOVED", 5) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0)) {
        /* the registry's slot has another master now: beat there (via the store meanwhile) */
        store_cluster_refresh_soon();
        redis_link_reset(&node.beat_link);
        beat(1);
        return;
    }
    on_beat_reply(reply, "heartbeat connection lost", NULL);
}

/* On a Redis Cluster the heartbeat connects to the master of the registry's slot. */
static const char *beat_address(const struct redis_link *link)
{
    (void)link;
    const char *words[CALL_MAX];
    size_t word_lens[CALL_MAX];
    int n = call_words("moonpost_node_beat", 0, NULL, NULL, words, word_lens);
    return store_cluster_addr_for(redis_command_slot(n, words, word_lens));
}

/* A beat. On the heartbeat's own connection when it is up, so that it never waits behind the
 * store's commands (a login storm, a slow script command) past the node's deadline; on the
 * store's with VIA_STORE (right after the store loaded the registry's functions, which a
 * command on another connection might overtake) or while that connection is down. */
static void beat(int via_store)
{
    if (node.left) return;
    char ttl[24], sessions[24], pid[24], host[256] = "";
    snprintf(ttl, sizeof ttl, "%d", broker.conf.presence_ttl * 1000);
    snprintf(sessions, sizeof sessions, "%zu", presence_count());
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    gethostname(host, sizeof host - 1);
    const char *argv[] = {node_id(), node.instance, ttl, sessions, node.started, host, pid};
    if (via_store || !node.beat_link.up || !store_ready()) {
        cluster_call("moonpost_node_beat", 7, argv, NULL, on_beat_reply, NULL);
        return;
    }
    if (node.beat_in_flight) return; /* Redis has not answered the last one: no pile-up */
    const char *words[CALL_MAX];
    size_t word_lens[CALL_MAX];
    int n = call_words("moonpost_node_beat", 7, argv, NULL, words, word_lens);
    if (redisAsyncCommandArgv(node.beat_link.ctx, on_link_beat_reply, NULL, n, words,
                              word_lens) == REDIS_OK)
        node.beat_in_flight = 1;
}

static void on_beat_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    beat(0);
}

/* The heartbeat's connection, in the store's database (the registry's keys live there). */
static void on_beat_link_up(struct redis_link *link)
{
    if (link->options.db == 0) return;
    char db[16];
    snprintf(db, sizeof db, "%d", link->options.db);
    redisAsyncCommand(link->ctx, NULL, NULL, "SELECT %s", db);
}

/* Every connect: the registry's functions first, then a beat at once, and the sessions back in
 * the registry (a claim or release may have been lost with the connection). */
static void on_store_connected(void *state)
{
    (void)state;
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", cluster_functions_lua};
    size_t lens[] = {8, 4, 7, sizeof cluster_functions_lua - 1};
    store_setup_command("FUNCTION LOAD moonpost_cluster", 4, argv, lens);
    beat(1);
    if (node.registered) renew_all();
    rejoin_when_ready();
}

/* ---- start and stop ---- */

int cluster_start(struct event_base *base, const struct store_options *redis,
                  void (*stop)(const char *why))
{
    node.base = base;
    node.stop = stop;
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(node.instance, sizeof node.instance, raw, sizeof raw);
    snprintf(node.started, sizeof node.started, "%lld", (long long)broker_now_ms());
    snprintf(node.channel, sizeof node.channel, "%snode:%s", prefix(), node_id());
    snprintf(node.broadcast, sizeof node.broadcast, "%sbroadcast", prefix());
    static const struct router_remote remote = {remote_deliver, remote_broadcast};
    router_set_remote(&remote);
    if (session_subscribe(on_session_event, NULL) != 0 ||
        store_on_connected(on_store_connected, NULL) != 0)
        return -1;
    int ms = broker.conf.presence_ttl * 1000 / 3;
    if (ms > BEAT_MAX_MS) ms = BEAT_MAX_MS;
    node.beat = event_new(base, -1, EV_PERSIST, on_beat_timer, NULL);
    struct timeval every = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    if (node.beat == NULL || event_add(node.beat, &every) != 0) return -1;
    node.beat_link.name = "heartbeat";
    node.beat_link.on_up = on_beat_link_up;
    if (redis->cluster) node.beat_link.address = beat_address;
    if (redis_link_start(&node.beat_link, base, redis) != 0) return -1;
    const char *channels[BUS_CHANNELS] = {node.channel, node.broadcast};
    return bus_start(base, redis, channels, on_bus_message, on_subscribed);
}

/* The leave is not waited for (it may sit behind a blocking command): it is written during
 * the loop passes of the shutdown, and the deadline covers a node that could not send it. */
void cluster_leave(void)
{
    if (node.left) return;
    node.left = 1;
    if (!node.registered) return;
    const char *argv[] = {node_id(), node.instance};
    cluster_call("moonpost_node_leave", 2, argv, NULL, on_ignored_reply,
                 (void *)"moonpost_node_leave");
    node.registered = 0;
}

void cluster_stop(void)
{
    router_set_remote(NULL);
    bus_stop();
    node.left = 1; /* the link's unanswered beat is dropped in silence */
    redis_link_stop(&node.beat_link);
    if (node.beat != NULL) event_free(node.beat);
    node.beat = NULL;
    free(node.payload.data);
    memset(&node.payload, 0, sizeof node.payload);
}
