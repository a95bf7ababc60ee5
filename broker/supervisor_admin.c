/* supervisor_admin: the host's admin socket (same framing as a broker's, so moonpostctl works
 * unchanged). A request goes on to the workers (supervisor_link) and their replies come back
 * combined; replies may come in any order, as from a broker. admin.stats answers the sum of
 * the workers' integer fields; a field of another kind is answered as the workers gave it when
 * they all agree, else as a map {worker node id: value}; `uptime` and `node` are the
 * supervisor's, and `nodes` (workers that answered) and `processes` are added. */
#include "supervisor_admin.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "broker.h"
#include "frame.h"
#include "listener.h"
#include "log.h"
#include "msgread.h"
#include "reply.h"
#include "server.h"
#include "supervisor.h"
#include "supervisor_link.h"

#define ADMIN_CONNECTIONS 16    /* like a broker's admin sessions */
#define ADMIN_PENDING_MAX 64    /* requests of one connection in flight; reading waits past it */
#define ADMIN_CALL_TIMEOUT 30.0 /* a reload compiles every script: leave it time */
#define STATS_FIELDS_MAX 64
#define MSG_MAX_DEPTH 32

enum forward { TO_ONE, TO_ALL_STATS, TO_ALL_OK, TO_SUPERVISOR };

/* The types not simply passed to one worker (the cluster-wide ones answer the same from any). */
static const struct admin_route {
    const char *type;
    enum forward how;
} admin_routes[] = {
    {"admin.stats", TO_ALL_STATS},
    {"admin.reload", TO_ALL_OK},
    {"admin.loglevel", TO_ALL_OK},
    {"admin.shutdown", TO_SUPERVISOR},
};

struct admin_conn;

struct admin_req {
    struct admin_conn *conn;
    struct link_call *call;
    enum forward how;
    int has_id;
    uint64_t id;
    int log_level; /* admin.loglevel's level, set here too once every worker took it; or -1 */
    struct admin_req *prev, *next;
};

struct admin_conn {
    struct bufferevent *bev;
    struct admin_req *reqs;
    int pending;
    int closing;
    struct admin_conn *prev, *next;
};

static struct {
    struct listener *listener;
    char path[108];
    struct admin_conn *conns;
    int count;
    struct codec_buf out;
} admin;

static void process(struct admin_conn *c);

/* ---- connections ---- */

static void req_free(struct admin_req *r)
{
    struct admin_conn *c = r->conn;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    c->pending--;
    free(r);
}

static void conn_free(struct admin_conn *c)
{
    for (struct admin_req *r = c->reqs, *next; r != NULL; r = next) {
        next = r->next;
        link_call_cancel(r->call);
        free(r);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        admin.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    admin.count--;
    bufferevent_free(c->bev);
    free(c);
}

static void send_frame(struct admin_conn *c, const void *data, size_t len)
{
    bufferevent_write(c->bev, data, len);
}

/* `res` CODE (ERROR when not 200) for a request; a success without an id is not answered. */
static void answer(struct admin_conn *c, int has_id, uint64_t id, int code, const char *error)
{
    if (code == 200 && !has_id) return;
    msgpack_packer *pk = reply_begin_in(&admin.out, has_id, id, code, error ? 1 : 0);
    if (error) {
        reply_pack_str(pk, "error");
        reply_pack_str(pk, error);
    }
    size_t n = codec_frame_end(&admin.out);
    send_frame(c, admin.out.sb.data, n);
}

/* A worker's reply as it came, with the client's id in place of the links'. */
static void pass_through(struct admin_req *r, const struct link_reply *reply)
{
    if (reply->code == 200 && !r->has_id) return;
    if (frame_with_id(reply->body, reply->len, r->has_id, r->id, &admin.out) != 0)
        return answer(r->conn, r->has_id, r->id, 500, "a worker's reply is not a map");
    send_frame(r->conn, admin.out.sb.data, admin.out.sb.size);
}

/* ---- admin.stats ---- */

struct stats_field {
    const uint8_t *key;   /* points into a reply */
    const uint8_t *value; /* the first worker's value (the item's bytes), to compare with */
    size_t value_len;
    uint64_t sum;
    uint32_t key_len;
    int is_int;
    int negative; /* some value was a negative integer: the sum is signed */
    int differ;   /* not an integer, and the workers gave different values */
};

static int is_key(const struct msgread_item *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGREAD_STR && k->v.str.len == n && memcmp(k->v.str.ptr, name, n) == 0;
}

/* Fields of the reply that are not summed: the frame's own and those the supervisor answers. */
static int own_field(const struct msgread_item *k)
{
    return k->type != MSGREAD_STR || is_key(k, "type") || is_key(k, "id") || is_key(k, "code") ||
           is_key(k, "error") || is_key(k, "uptime") || is_key(k, "node") || is_key(k, "nodes") ||
           is_key(k, "processes");
}

static struct stats_field *field_find(struct stats_field *f, size_t *n,
                                      const struct msgread_item *k)
{
    for (size_t i = 0; i < *n; i++)
        if (f[i].key_len == k->v.str.len && memcmp(f[i].key, k->v.str.ptr, f[i].key_len) == 0)
            return &f[i];
    if (*n == STATS_FIELDS_MAX) return NULL;
    struct stats_field *nf = &f[(*n)++];
    memset(nf, 0, sizeof *nf);
    nf->key = k->v.str.ptr;
    nf->key_len = k->v.str.len;
    return nf;
}

/* Adds one worker's reply into the fields F (N of them). */
static void stats_add(struct stats_field *f, size_t *n, const uint8_t *body, size_t len)
{
    struct mpr r;
    msgread_init(&r, body, len);
    struct msgread_item map, key, value;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return;
    for (uint32_t i = 0; i < map.v.count; i++) {
        if (msgread_next(&r, &key) != MSGREAD_OK) return;
        const uint8_t *start = r.pos;
        struct mpr peek = r;
        if (msgread_next(&peek, &value) != MSGREAD_OK ||
            msgread_skip(&r, MSG_MAX_DEPTH) != MSGREAD_OK)
            return;
        if (own_field(&key)) continue;
        struct stats_field *sf = field_find(f, n, &key);
        if (sf == NULL) continue;
        size_t vlen = (size_t)(r.pos - start);
        int is_int = value.type == MSGREAD_UINT || value.type == MSGREAD_INT;
        if (sf->value == NULL) {
            sf->is_int = is_int;
            sf->value = start;
            sf->value_len = vlen;
        } else if (!is_int || !sf->is_int) {
            sf->is_int = 0;
            if (vlen != sf->value_len || memcmp(start, sf->value, vlen) != 0) sf->differ = 1;
        }
        if (value.type == MSGREAD_UINT) sf->sum += value.v.u;
        if (value.type == MSGREAD_INT) {
            sf->sum += (uint64_t)value.v.i;
            sf->negative = 1;
        }
    }
}

/* Bytes of one whole MessagePack item, copied into the reply being written. */
static void pack_raw(const uint8_t *data, size_t len)
{
    msgpack_sbuffer_write(&admin.out.sb, (const char *)data, len);
}

/* The bytes of the value of field KEY (KEY_LEN bytes) in the map BODY, or NULL. */
static const uint8_t *field_bytes(const uint8_t *body, size_t len, const uint8_t *key,
                                  uint32_t key_len, size_t *value_len)
{
    struct mpr r;
    msgread_init(&r, body, len);
    struct msgread_item map, k;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return NULL;
    for (uint32_t i = 0; i < map.v.count; i++) {
        if (msgread_next(&r, &k) != MSGREAD_OK) return NULL;
        const uint8_t *start = r.pos;
        if (msgread_skip(&r, MSG_MAX_DEPTH) != MSGREAD_OK) return NULL;
        if (k.type == MSGREAD_STR && k.v.str.len == key_len &&
            memcmp(k.v.str.ptr, key, key_len) == 0) {
            *value_len = (size_t)(r.pos - start);
            return start;
        }
    }
    return NULL;
}

/* {worker node id: its value of field SF} over the workers that answered. */
static void pack_per_worker(msgpack_packer *pk, const struct stats_field *sf,
                            const struct link_reply *replies, int count)
{
    int answered = 0;
    for (int i = 0; i < count; i++)
        answered += replies[i].body != NULL && replies[i].code == 200;
    msgpack_pack_map(pk, (size_t)answered);
    for (int i = 0; i < count; i++) {
        if (replies[i].body == NULL || replies[i].code != 200) continue;
        reply_pack_str(pk, supervisor_worker_id(i));
        size_t n;
        const uint8_t *v = field_bytes(replies[i].body, replies[i].len, sf->key, sf->key_len, &n);
        if (v != NULL)
            pack_raw(v, n);
        else
            msgpack_pack_nil(pk);
    }
}

static void answer_stats(struct admin_req *r, const struct link_reply *replies, int count)
{
    struct stats_field f[STATS_FIELDS_MAX];
    size_t n = 0;
    int nodes = 0;
    for (int i = 0; i < count; i++) {
        if (replies[i].body == NULL || replies[i].code != 200) continue;
        nodes++;
        stats_add(f, &n, replies[i].body, replies[i].len);
    }
    if (nodes == 0) return answer(r->conn, r->has_id, r->id, 503, "no worker answered");
    if (!r->has_id) return;
    msgpack_packer *pk = reply_begin_in(&admin.out, r->has_id, r->id, 200, n + 4);
    reply_pack_str(pk, "uptime");
    msgpack_pack_uint64(pk, (uint64_t)(time(NULL) - supervisor_started()));
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str_with_body(pk, f[i].key, f[i].key_len);
        if (f[i].is_int && f[i].negative)
            msgpack_pack_int64(pk, (int64_t)f[i].sum);
        else if (f[i].is_int)
            msgpack_pack_uint64(pk, f[i].sum);
        else if (!f[i].differ)
            pack_raw(f[i].value, f[i].value_len);
        else
            pack_per_worker(pk, &f[i], replies, count);
    }
    reply_pack_str(pk, "node");
    reply_pack_str(pk, supervisor_node_id());
    reply_pack_str(pk, "nodes");
    msgpack_pack_int(pk, nodes);
    reply_pack_str(pk, "processes");
    msgpack_pack_int(pk, supervisor_workers());
    size_t len = codec_frame_end(&admin.out);
    send_frame(r->conn, admin.out.sb.data, len);
}

/* ---- forwarding ---- */

/* Every worker must have answered 200; else the first error (a worker that is not up counts). */
static void answer_all_ok(struct admin_req *r, const struct link_reply *replies, int count)
{
    for (int i = 0; i < count; i++) {
        if (replies[i].body == NULL) {
            char why[400];
            snprintf(why, sizeof why, "worker %d (%s) did not answer", i + 1,
                     supervisor_worker_id(i));
            return answer(r->conn, r->has_id, r->id, 503, why);
        }
        if (replies[i].code != 200) return pass_through(r, &replies[i]);
    }
    if (r->log_level >= 0) {
        log_set_level((enum conf_log_level)r->log_level);
        log_info("supervisor: log level set to %s", conf_log_level_name(r->log_level));
    }
    answer(r->conn, r->has_id, r->id, 200, NULL);
}

static void answer_one(struct admin_req *r, const struct link_reply *replies, int count)
{
    for (int i = 0; i < count; i++)
        if (replies[i].body != NULL) return pass_through(r, &replies[i]);
    answer(r->conn, r->has_id, r->id, 503, "no worker answered");
}

static void on_forwarded(void *arg, const struct link_reply *replies, int count)
{
    struct admin_req *r = arg;
    struct admin_conn *c = r->conn;
    switch (r->how) {
    case TO_ALL_STATS:
        answer_stats(r, replies, count);
        break;
    case TO_ALL_OK:
        answer_all_ok(r, replies, count);
        break;
    case TO_ONE:
        answer_one(r, replies, count);
        break;
    case TO_SUPERVISOR: /* answered at once, never forwarded */
        break;
    }
    int was_full = c->pending >= ADMIN_PENDING_MAX;
    req_free(r);
    if (was_full && !c->closing) {
        bufferevent_enable(c->bev, EV_READ);
        process(c);
    }
}

static enum forward route_of(const struct frame_info *info)
{
    for (size_t i = 0; i < sizeof admin_routes / sizeof admin_routes[0]; i++) {
        size_t n = strlen(admin_routes[i].type);
        if (info->type_len == n && memcmp(info->type, admin_routes[i].type, n) == 0)
            return admin_routes[i].how;
    }
    return TO_ONE;
}

/* The level an admin.loglevel request asks for, or -1 (the workers answer a bad one). */
static int log_level_of(const struct frame_info *info, const uint8_t *body, size_t len)
{
    static const char type[] = "admin.loglevel";
    struct msgread_item level;
    char name[16];
    if (info->type_len != sizeof type - 1 || memcmp(info->type, type, sizeof type - 1) != 0 ||
        !frame_get(body, len, "level", &level) || level.type != MSGREAD_STR ||
        level.v.str.len >= sizeof name)
        return -1;
    memcpy(name, level.v.str.ptr, level.v.str.len);
    name[level.v.str.len] = '\0';
    return conf_log_level_parse(name);
}

static void handle(struct admin_conn *c, const uint8_t *body, size_t len)
{
    struct frame_info info;
    enum frame_error err = frame_check(body, len, &info);
    if (err != FRAME_OK) return answer(c, info.has_id, info.id, 400, frame_error_text(err));
    enum forward how = route_of(&info);
    if (how == TO_SUPERVISOR) {
        answer(c, info.has_id, info.id, 200, NULL);
        return supervisor_stop("admin.shutdown", 0);
    }
    int worker = -1;
    if (how == TO_ONE && (worker = link_first_up()) < 0)
        return answer(c, info.has_id, info.id, 503, "no worker is up");
    struct admin_req *r = calloc(1, sizeof *r);
    if (r == NULL) return answer(c, info.has_id, info.id, 500, "no memory");
    *r = (struct admin_req){.conn = c,
                            .how = how,
                            .has_id = info.has_id,
                            .id = info.id,
                            .log_level = log_level_of(&info, body, len)};
    r->next = c->reqs;
    if (c->reqs) c->reqs->prev = r;
    c->reqs = r;
    c->pending++;
    r->call = link_call(worker, body, len, ADMIN_CALL_TIMEOUT, on_forwarded, r);
    if (r->call == NULL) {
        req_free(r);
        answer(c, info.has_id, info.id, 500, "no memory");
    }
}

static void close_with_bye(struct admin_conn *c, int code, const char *why)
{
    size_t n;
    const char *bye = reply_encode_bye(code, why, &n);
    send_frame(c, bye, n);
    c->closing = 1;
    bufferevent_disable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) conn_free(c);
}

/* Handles every whole frame buffered, while the connection has room for more requests. */
static void process(struct admin_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    uint8_t *body;
    uint32_t len;
    int rc = 0;
    while (!c->closing && c->pending < ADMIN_PENDING_MAX &&
           (rc = frame_pull(in, (uint32_t)broker.conf.max_frame, &body, &len)) == 1) {
        handle(c, body, len);
        evbuffer_drain(in, FRAME_HEADER_LEN + (size_t)len);
    }
    if (rc == FRAME_PULL_EMPTY) return close_with_bye(c, 400, "empty frame");
    if (rc == FRAME_PULL_TOO_LARGE) return close_with_bye(c, 413, "frame too large");
    if (c->pending >= ADMIN_PENDING_MAX) bufferevent_disable(c->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void on_written(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct admin_conn *c = arg;
    if (c->closing) conn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg)
{
    (void)l, (void)addr, (void)len, (void)arg;
    if (admin.count >= ADMIN_CONNECTIONS) {
        size_t n;
        const char *bye = reply_encode_bye(503, "too many admin connections", &n);
        if (send(fd, bye, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            /* the console is gone */
        }
        evutil_closesocket(fd);
        return;
    }
    struct admin_conn *c = calloc(1, sizeof *c);
    if (c == NULL ||
        (c->bev = bufferevent_socket_new(broker.base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->next = admin.conns;
    if (admin.conns) admin.conns->prev = c;
    admin.conns = c;
    admin.count++;
    bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
}

int supervisor_admin_start(const char *path)
{
    int rc;
    codec_buf_init(&admin.out);
    admin.listener = server_listen_admin(broker.base, path, on_accept, NULL, &rc);
    if (admin.listener == NULL) return rc;
    snprintf(admin.path, sizeof admin.path, "%s", path);
    return 0;
}

void supervisor_admin_stop(void)
{
    for (struct admin_conn *c = admin.conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_free(c);
    }
    if (admin.listener) {
        listener_free(admin.listener);
        unlink(admin.path);
    }
    admin.listener = NULL;
    codec_buf_free(&admin.out);
}
