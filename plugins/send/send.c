/* send: the private-chat `send {to, body}` handler in C, a drop-in for scripts/send.lua.
 *
 * Same checks, same replies, same mailbox: the message blob is the map {from, to, body, ts}
 * that scripts/lib/chat.lua replays, stored by the Redis function moonpost_store (loaded by
 * scripts/lib/redis_functions.lua), so the sender hears 200 only once the message is in the
 * recipient's mailbox; then it is pushed at once when the recipient is online.
 *
 * Config: none on the plugin line (max_body, redis_prefix and redis_cluster come from the
 * broker). Options:
 * mailbox_max and mailbox_per_sender, declared like scripts/send.lua declares them, set in the
 * broker's config file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("send", "1.0.0");

#define USER_MAX 32
#define KEY_MAX 512

struct send_state {
    const mp_api *api;
    size_t max_body;
    char *prefix;
    const char *tag_open, *tag_close; /* "{" and "}" around the user on a Redis Cluster */
    mp_writer *blob; /* the mailbox blob of the send being stored, reused by every send */
};

/* One send waiting for Redis: what the reply and the push need, copied out of the frame. */
struct pending_send {
    struct send_state *st;
    mp_request req; /* session, id: the frame pointers in it are not used after the call */
    int64_t ts;
    uint64_t mid; /* once stored */
    int body_is_bin;
    size_t from_len, to_len, body_len;
    char *from, *to, *body; /* into data */
    char data[];
};

/* The user name rule of scripts/lib/chat.lua: 1-32 bytes of A-Z a-z 0-9 _ . - */
static int valid_user(const char *u, size_t len)
{
    if (len < 1 || len > USER_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = u[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static void write_body(const mp_api *api, mp_writer *w, const struct pending_send *m)
{
    if (m->body_is_bin)
        api->write_bin(w, m->body, m->body_len);
    else
        api->write_str(w, m->body, m->body_len);
}

/* The four pairs the mailbox blob and the msg frame share: from, to, body, ts. */
static void write_message_fields(const mp_api *api, mp_writer *w, const struct pending_send *m)
{
    api->write_str(w, "from", 4);
    api->write_str(w, m->from, m->from_len);
    api->write_str(w, "to", 2);
    api->write_str(w, m->to, m->to_len);
    api->write_str(w, "body", 4);
    write_body(api, w, m);
    api->write_str(w, "ts", 2);
    api->write_uint(w, (uint64_t)m->ts);
}

/* The mailbox blob: what mp.encode{from, to, body, ts} makes of the same values. */
static void write_blob(const mp_api *api, mp_writer *w, const struct pending_send *m)
{
    api->write_map(w, 4);
    write_message_fields(api, w, m);
}

static void reply_stored(struct pending_send *m, int online)
{
    const mp_api *api = m->st->api;
    mp_writer *w = api->reply_begin(&m->req, 2);
    api->write_str(w, "mid", 3);
    api->write_uint(w, m->mid);
    api->write_str(w, "online", 6);
    api->write_bool(w, online);
    api->reply_end(&m->req);
}

/* The recipient is on another node, or nowhere: the reply waits for the registry's answer. */
static void on_delivered(int online, void *arg)
{
    struct pending_send *m = arg;
    reply_stored(m, online);
    free(m);
}

/* Pushes the msg frame to the recipient, on this node or through the node holding it (PREV
 * keeps the pushes in mid order, docs/cluster.md), then replies {mid, online}; frees M. */
static void deliver_and_reply(const mp_api *api, struct pending_send *m, uint64_t prev)
{
    mp_writer *w = api->frame_begin();
    api->write_map(w, 7);
    api->write_str(w, "type", 4);
    api->write_str(w, "msg", 3);
    api->write_str(w, "mid", 3);
    api->write_uint(w, m->mid);
    write_message_fields(api, w, m);
    api->write_str(w, "offline", 7);
    api->write_bool(w, 0);
    size_t len;
    const void *frame = api->frame_end(&len);
    int here = api->deliver_mail(m->to, m->to_len, frame, len, m->mid, prev, on_delivered, m);
    if (here == 0) return; /* on_delivered replies */
    reply_stored(m, here == 1);
    free(m);
}

/* The {mid, prev} of a stored message, or 0 when REPLY is not that. */
static uint64_t stored_mid(const mp_redis_reply *reply, uint64_t *prev)
{
    if (reply->type != MP_REDIS_ARRAY || reply->count != 2 ||
        reply->elements[0].type != MP_REDIS_INTEGER || reply->elements[1].type != MP_REDIS_INTEGER)
        return 0;
    *prev = (uint64_t)reply->elements[1].integer;
    return (uint64_t)reply->elements[0].integer;
}

static void on_stored(const mp_redis_reply *reply, const char *error, void *arg)
{
    struct pending_send *m = arg;
    const mp_api *api = m->st->api;
    uint64_t mid, prev = 0;
    if (reply == NULL) {
        api->log(api, MP_LOG_DEBUG, "store for %s failed: %s", m->to, error);
        api->reply(&m->req, 503, "storage unavailable");
    } else if (reply->type == MP_REDIS_ERROR && strncmp(reply->str, "OOM", 3) == 0) {
        api->log(api, MP_LOG_WARN, "redis is out of memory, a write was refused: %s", reply->str);
        api->reply(&m->req, 503, "storage full");
    } else if (reply->type == MP_REDIS_INTEGER && reply->integer == -404) {
        api->reply(&m->req, 404, "no such user");
    } else if (reply->type == MP_REDIS_INTEGER && reply->integer == -507) {
        api->reply(&m->req, 507, "mailbox full");
    } else if (reply->type == MP_REDIS_INTEGER && reply->integer == -429) {
        api->reply(&m->req, 429, "too many unread messages to this user");
    } else if ((mid = stored_mid(reply, &prev)) == 0) {
        api->log(api, MP_LOG_ERROR, "redis: %s",
                 reply->type == MP_REDIS_ERROR ? reply->str : "unexpected reply to FCALL");
        api->reply(&m->req, 500, "storage error");
    } else {
        m->mid = mid;
        deliver_and_reply(api, m, prev);
        return;
    }
    free(m);
}

static struct pending_send *copy_request(struct send_state *st, const mp_request *req,
                                         const char *from, size_t from_len, const mp_value *to,
                                         const mp_value *body)
{
    struct pending_send *m = malloc(sizeof *m + from_len + to->v.str.len + body->v.str.len + 3);
    if (m == NULL) return NULL;
    m->st = st;
    m->req = *req;
    m->req.body = NULL;
    m->req.type = NULL;
    m->ts = st->api->now_ms();
    m->body_is_bin = body->type == MP_BIN;
    m->from_len = from_len;
    m->to_len = to->v.str.len;
    m->body_len = body->v.str.len;
    m->from = m->data;
    m->to = m->from + from_len + 1;
    m->body = m->to + m->to_len + 1;
    memcpy(m->from, from, from_len);
    m->from[from_len] = '\0';
    memcpy(m->to, to->v.str.ptr, m->to_len);
    m->to[m->to_len] = '\0';
    if (m->body_len > 0) memcpy(m->body, body->v.str.ptr, m->body_len);
    return m;
}

/* KEY = <prefix><kind>:<to>, the user tagged {<to>} on a Redis Cluster (scripts/lib/chat.lua's
 * key names). */
static void user_key(char *key, size_t size, const struct send_state *st, const char *kind,
                     const char *to)
{
    snprintf(key, size, "%s%s:%s%s%s", st->prefix, kind, st->tag_open, to, st->tag_close);
}

/* FCALL moonpost_store 3 <prefix>user:<to> <prefix>mbox:<to> <prefix>mboxfrom:<to>
 *       mailbox_max blob ts mailbox_per_sender <from> */
static int store(struct send_state *st, struct pending_send *m)
{
    char user[KEY_MAX], mbox_key[KEY_MAX], from_key[KEY_MAX];
    user_key(user, sizeof user, st, "user", m->to);
    user_key(mbox_key, sizeof mbox_key, st, "mbox", m->to);
    user_key(from_key, sizeof from_key, st, "mboxfrom", m->to);
    const mp_api *api = st->api;
    api->writer_reset(st->blob);
    write_blob(api, st->blob, m);
    size_t blob_len;
    const void *blob = api->writer_data(st->blob, &blob_len);
    char ts[24]; /* the broker's clock: the mid is at least 1024 per ms of it */
    snprintf(ts, sizeof ts, "%lld", (long long)m->ts);
    /* read on each send: a reload may give the options new values */
    const char *mailbox_max = st->api->option(st->api, "mailbox_max");
    const char *mailbox_per_sender = st->api->option(st->api, "mailbox_per_sender");
    enum { ARGC = 11, BLOB = 7 }; /* the blob is binary, every other argument a C string */
    const char *argv[ARGC] = {"FCALL",  "moonpost_store",   "3",         user,
                              mbox_key, from_key,           mailbox_max, blob,
                              ts,       mailbox_per_sender, m->from};
    size_t lens[ARGC];
    for (int i = 0; i < ARGC; i++)
        lens[i] = i == BLOB ? blob_len : strlen(argv[i]);
    /* replicated: with redis_wait_replicas set, answered once that many replicas have it; the
     * command is copied, so blob is free again on return */
    return api->redis_replicated(ARGC, argv, lens, on_stored, m);
}

static void handle_send(void *state, const mp_request *req)
{
    struct send_state *st = state;
    const mp_api *api = st->api;
    mp_value to, body;
    if (!api->field(req, "to", &to) || to.type != MP_STR || !api->field(req, "body", &body) ||
        (body.type != MP_STR && body.type != MP_BIN))
        return api->reply(req, 400, "send needs to (str) and body (str or bin)");
    if (body.v.str.len > st->max_body) return api->reply(req, 413, "body too large");
    if (!valid_user(to.v.str.ptr, to.v.str.len)) return api->reply(req, 404, "no such user");
    size_t from_len = 0;
    const char *from = api->session_user(req->session, &from_len);
    if (from == NULL) return api->reply(req, 401, "not logged in");
    struct pending_send *m = copy_request(st, req, from, from_len, &to, &body);
    if (m == NULL) return api->reply(req, 500, "out of memory");
    if (store(st, m) != 0) {
        free(m);
        api->reply(req, 503, "storage unavailable");
    }
}

/* The same options as scripts/send.lua declares (either may run, or both). */
static const mp_option_spec options[] = {
    {"mailbox_max", MP_OPTION_INT, "10000", MP_OPTION_HAS_MIN | MP_OPTION_HAS_MAX, 1, 100000000,
     "messages one mailbox holds; a send past it is answered 507"},
    {"mailbox_per_sender", MP_OPTION_INT, "1000", MP_OPTION_HAS_MIN | MP_OPTION_HAS_MAX, 1,
     100000000,
     "unacked messages from one sender in one mailbox; past it that sender is answered 429"},
};

int mp_plugin_init(const mp_api *api, void **state)
{
    MP_PLUGIN_CHECK_VERSION(api);
    if (!MP_API_HAS(api, deliver_mail)) return -1;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (api->option_declare(api, &options[i]) != 0) return -1;
    const char *key = api->config_key_at(api, 0);
    if (key != NULL) {
        api->log(api, MP_LOG_ERROR, "unknown key '%s' (send takes no keys)", key);
        return -1;
    }
    const char *prefix = api->conf_get("redis_prefix");
    long long max_body = mp_conf_int(api, "max_body", 16384);
    if (prefix == NULL || strlen(prefix) > KEY_MAX - 64) {
        api->log(api, MP_LOG_ERROR, "redis_prefix is missing or too long");
        return -1;
    }
    struct send_state *st = calloc(1, sizeof *st);
    if (st == NULL || (st->prefix = strdup(prefix)) == NULL ||
        (st->blob = api->writer_new()) == NULL) {
        mp_plugin_fini(st);
        return -1;
    }
    st->api = api;
    const char *cluster = api->conf_get("redis_cluster");
    int tagged = cluster != NULL && strcmp(cluster, "1") == 0;
    st->tag_open = tagged ? "{" : "";
    st->tag_close = tagged ? "}" : "";
    st->max_body = max_body < 0 ? 0 : (size_t)max_body;
    if (api->add_handler(api, "send", 0, handle_send) != 0) {
        mp_plugin_fini(st);
        return -1;
    }
    *state = st;
    return 0;
}

void mp_plugin_fini(void *state)
{
    struct send_state *st = state;
    if (st == NULL) return;
    if (st->blob != NULL) st->api->writer_free(st->blob);
    free(st->prefix);
    free(st);
}
