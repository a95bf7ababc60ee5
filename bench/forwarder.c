/* moonpost-forwarder: the ceiling the broker is measured against, a minimal single-threaded
 * epoll forwarder that speaks the part of the moonpost protocol moonpost-bench uses.
 *
 * It stores nothing and checks nothing: register and login always succeed, a send is pushed
 * to the recipient when it is connected and forgotten otherwise, a broadcast is encoded once
 * and copied to every other logged-in connection, an ack is answered and ignored. Like the
 * broker, it sets TCP_NODELAY and writes each connection's output once per loop pass. Its
 * output buffers keep their memory between passes: no allocation per delivery. A frame
 * is at most 64 KiB and nests at most 32 deep; output has no limit: a bench tool on loopback,
 * not a server for peers that do not read.
 *
 *   moonpost-forwarder [-p PORT] [-b ADDRESS]     (default 127.0.0.1:8889) */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "frame.h"
#include "msgread.h"

#define MAX_FRAME 65536
#define MAX_CONNS 20000
#define USER_MAX 33
#define USER_BUCKETS 65536 /* a power of two */
#define READ_CHUNK 65536

struct buf {
    uint8_t *data;
    size_t len, cap;
};

struct conn {
    int fd;
    int logged_in, dirty, want_out;
    char user[USER_MAX];
    struct conn *next_same_bucket;
    struct buf in, out;
};

/* The fields of a request the forwarder looks at; strings point into the frame. */
struct request {
    struct msgread_item type, to, body, user;
    uint64_t id;
    int has_id;
};

static struct conn *conns[MAX_CONNS]; /* by fd */
static struct conn *user_buckets[USER_BUCKETS];
static struct conn *dirty[MAX_CONNS];
static size_t dirty_count;
static struct conn *closed[MAX_CONNS]; /* freed at the end of the pass */
static size_t closed_count;
static int max_fd; /* the highest descriptor a connection has had */
static uint64_t next_mid = 1;
static int epfd;
static volatile sig_atomic_t stopping;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) die("realloc");
    b->data = data;
    b->cap = cap;
}

static void buf_append(struct buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

static int buf_write(void *data, const char *bytes, size_t len)
{
    buf_append(data, bytes, len);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- users ---- */

static size_t user_bucket(const char *name)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = h * 33 + *p;
    return h & (USER_BUCKETS - 1);
}

static struct conn *user_find(const char *name)
{
    for (struct conn *c = user_buckets[user_bucket(name)]; c; c = c->next_same_bucket)
        if (strcmp(c->user, name) == 0) return c;
    return NULL;
}

static void user_forget(struct conn *c)
{
    if (!c->logged_in) return;
    struct conn **p = &user_buckets[user_bucket(c->user)];
    while (*p != c) p = &(*p)->next_same_bucket;
    *p = c->next_same_bucket;
    c->logged_in = 0;
}

/* The newest login of a name wins; an older connection of it is no longer found. */
static void user_take(struct conn *c, const struct msgread_item *name)
{
    size_t len = name->v.str.len < USER_MAX - 1 ? name->v.str.len : USER_MAX - 1;
    user_forget(c);
    memcpy(c->user, name->v.str.ptr, len);
    c->user[len] = '\0';
    struct conn *old = user_find(c->user);
    if (old) user_forget(old);
    size_t b = user_bucket(c->user);
    c->next_same_bucket = user_buckets[b];
    user_buckets[b] = c;
    c->logged_in = 1;
}

/* ---- output ---- */

static void mark_dirty(struct conn *c)
{
    if (c->dirty) return;
    c->dirty = 1;
    dirty[dirty_count++] = c;
}

/* Starts a frame in B: its length is filled in by frame_finish. */
static size_t frame_start(struct buf *b, msgpack_packer *pk)
{
    size_t start = b->len;
    buf_reserve(b, FRAME_HEADER_LEN);
    b->len += FRAME_HEADER_LEN;
    msgpack_packer_init(pk, b, buf_write);
    return start;
}

static void frame_finish(struct buf *b, size_t start)
{
    frame_write_length(b->data + start, (uint32_t)(b->len - start - FRAME_HEADER_LEN));
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void pack_item_str(msgpack_packer *pk, const struct msgread_item *s)
{
    msgpack_pack_str_with_body(pk, s->v.str.ptr, s->v.str.len);
}

static void pack_body(msgpack_packer *pk, const struct msgread_item *body)
{
    if (body->type == MSGREAD_BIN)
        msgpack_pack_bin_with_body(pk, body->v.str.ptr, body->v.str.len);
    else
        pack_item_str(pk, body);
}

/* The pairs every push has: type, mid, from, body (empty when BODY is not a str or bin) and
 * ts; MORE pairs follow, packed by the caller. */
static void pack_push(msgpack_packer *pk, uint32_t more, const char *type, uint64_t mid,
                      const char *from, const struct msgread_item *body)
{
    msgpack_pack_map(pk, 5 + more);
    pack_cstr(pk, "type");
    pack_cstr(pk, type);
    pack_cstr(pk, "mid");
    msgpack_pack_uint64(pk, mid);
    pack_cstr(pk, "from");
    pack_cstr(pk, from);
    pack_cstr(pk, "body");
    if (body->type == MSGREAD_STR || body->type == MSGREAD_BIN) pack_body(pk, body);
    else pack_cstr(pk, "");
    pack_cstr(pk, "ts");
    msgpack_pack_int64(pk, now_ms());
}

/* res 200 for R, with EXTRA more pairs the caller packs after the returned packer's start. */
static size_t reply_start(struct conn *c, const struct request *r, msgpack_packer *pk,
                          uint32_t extra)
{
    size_t start = frame_start(&c->out, pk);
    msgpack_pack_map(pk, 2 + (r->has_id ? 1 : 0) + extra);
    pack_cstr(pk, "type");
    pack_cstr(pk, "res");
    pack_cstr(pk, "code");
    msgpack_pack_uint32(pk, 200);
    if (r->has_id) {
        pack_cstr(pk, "id");
        msgpack_pack_uint64(pk, r->id);
    }
    mark_dirty(c);
    return start;
}

static void reply_ok(struct conn *c, const struct request *r)
{
    msgpack_packer pk;
    frame_finish(&c->out, reply_start(c, r, &pk, 0));
}

static void reply_mid(struct conn *c, const struct request *r, uint64_t mid, int online)
{
    msgpack_packer pk;
    size_t start = reply_start(c, r, &pk, online >= 0 ? 2 : 1);
    pack_cstr(&pk, "mid");
    msgpack_pack_uint64(&pk, mid);
    if (online >= 0) {
        pack_cstr(&pk, "online");
        if (online) msgpack_pack_true(&pk);
        else msgpack_pack_false(&pk);
    }
    frame_finish(&c->out, start);
}

/* ---- requests ---- */

static int item_is(const struct msgread_item *it, const char *s)
{
    size_t n = strlen(s);
    return it->type == MSGREAD_STR && it->v.str.len == n && memcmp(it->v.str.ptr, s, n) == 0;
}

/* Reads the fields of one frame's map into R; -1 when it is not a map of string keys. */
static int parse_request(const uint8_t *body, size_t len, struct request *r)
{
    struct mpr rd;
    struct msgread_item map, key, value;
    memset(r, 0, sizeof *r);
    msgread_init(&rd, body, len);
    if (msgread_next(&rd, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return -1;
    for (uint32_t i = 0; i < map.v.count; i++) {
        if (msgread_next(&rd, &key) != MSGREAD_OK || key.type != MSGREAD_STR) return -1;
        const uint8_t *at = rd.pos;
        if (msgread_next(&rd, &value) != MSGREAD_OK) return -1;
        if (value.type == MSGREAD_ARRAY || value.type == MSGREAD_MAP) {
            rd.pos = at;
            if (msgread_skip(&rd, 32) != MSGREAD_OK) return -1;
        }
        if (item_is(&key, "type")) r->type = value;
        else if (item_is(&key, "to")) r->to = value;
        else if (item_is(&key, "user")) r->user = value;
        else if (item_is(&key, "body")) r->body = value;
        else if (item_is(&key, "id") && value.type == MSGREAD_UINT) {
            r->id = value.v.u;
            r->has_id = 1;
        }
    }
    return r->type.type == MSGREAD_STR ? 0 : -1;
}

static void on_login(struct conn *c, const struct request *r)
{
    if (r->user.type == MSGREAD_STR) user_take(c, &r->user);
    msgpack_packer pk;
    size_t start = reply_start(c, r, &pk, 2);
    pack_cstr(&pk, "token");
    pack_cstr(&pk, "t");
    pack_cstr(&pk, "users");
    msgpack_pack_array(&pk, 0);
    frame_finish(&c->out, start);
}

static void on_send(struct conn *c, const struct request *r)
{
    uint64_t mid = next_mid++;
    struct conn *to = NULL;
    if (r->to.type == MSGREAD_STR && r->to.v.str.len < USER_MAX) {
        char name[USER_MAX];
        memcpy(name, r->to.v.str.ptr, r->to.v.str.len);
        name[r->to.v.str.len] = '\0';
        to = user_find(name);
    }
    if (to && (r->body.type == MSGREAD_STR || r->body.type == MSGREAD_BIN)) {
        msgpack_packer pk;
        size_t start = frame_start(&to->out, &pk);
        pack_push(&pk, 2, "msg", mid, c->user, &r->body);
        pack_cstr(&pk, "to");
        pack_item_str(&pk, &r->to);
        pack_cstr(&pk, "offline");
        msgpack_pack_false(&pk);
        frame_finish(&to->out, start);
        mark_dirty(to);
    }
    reply_mid(c, r, mid, to != NULL);
}

/* One encode, then one copy per other logged-in connection. */
static void on_broadcast(struct conn *c, const struct request *r)
{
    static struct buf frame;
    uint64_t mid = next_mid++;
    frame.len = 0;
    msgpack_packer pk;
    size_t start = frame_start(&frame, &pk);
    pack_push(&pk, 0, "broadcast", mid, c->user, &r->body);
    frame_finish(&frame, start);
    for (int fd = 0; fd <= max_fd; fd++) {
        struct conn *o = conns[fd];
        if (o == NULL || o == c || !o->logged_in) continue;
        buf_append(&o->out, frame.data, frame.len);
        mark_dirty(o);
    }
    reply_mid(c, r, mid, -1);
}

static void handle_frame(struct conn *c, const uint8_t *body, size_t len)
{
    struct request r;
    if (parse_request(body, len, &r) != 0) return;
    if (item_is(&r.type, "login") || item_is(&r.type, "resume")) on_login(c, &r);
    else if (item_is(&r.type, "send")) on_send(c, &r);
    else if (item_is(&r.type, "broadcast")) on_broadcast(c, &r);
    else if (r.has_id) reply_ok(c, &r); /* register, ack, ping, ...: 200 */
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    user_forget(c);
    conns[c->fd] = NULL;
    close(c->fd);
    c->fd = -1; /* freed after the pass: events and the dirty list may still point to it */
    closed[closed_count++] = c;
}

static void conn_read(struct conn *c)
{
    buf_reserve(&c->in, READ_CHUNK);
    ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0) return;
    c->in.len += (size_t)n;
    size_t pos = 0;
    while (c->in.len - pos >= FRAME_HEADER_LEN) {
        uint32_t len = frame_read_length(c->in.data + pos);
        if (len == 0 || len > MAX_FRAME) {
            conn_close(c);
            return;
        }
        if (c->in.len - pos < FRAME_HEADER_LEN + len) break;
        handle_frame(c, c->in.data + pos + FRAME_HEADER_LEN, len);
        pos += FRAME_HEADER_LEN + len;
    }
    memmove(c->in.data, c->in.data + pos, c->in.len - pos);
    c->in.len -= pos;
}

static void set_want_out(struct conn *c, int want)
{
    if (c->want_out == want) return;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl");
    c->want_out = want;
}

static void conn_flush(struct conn *c)
{
    if (c->fd < 0 || c->out.len == 0) return;
    ssize_t n = write(c->fd, c->out.data, c->out.len);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_close(c);
        return;
    }
    if (n > 0) {
        memmove(c->out.data, c->out.data + n, c->out.len - (size_t)n);
        c->out.len -= (size_t)n;
    }
    set_want_out(c, c->out.len > 0);
}

static void conn_accept(int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (fd >= MAX_CONNS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) die("calloc");
        c->fd = fd;
        conns[fd] = c;
        if (fd > max_fd) max_fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    }
}

/* Writes every connection that got output this pass, then frees the ones closed in it. */
static void end_pass(void)
{
    for (size_t i = 0; i < dirty_count; i++) {
        struct conn *c = dirty[i];
        c->dirty = 0;
        conn_flush(c);
    }
    dirty_count = 0;
    for (size_t i = 0; i < closed_count; i++) {
        free(closed[i]->in.data);
        free(closed[i]->out.data);
        free(closed[i]);
    }
    closed_count = 0;
}

static int listen_on(const char *address, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        fprintf(stderr, "moonpost-forwarder: bad address %s\n", address);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) die("bind");
    if (listen(fd, 4096) != 0) die("listen");
    return fd;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1";
    int port = 8889, opt;
    while ((opt = getopt(argc, argv, "p:b:")) != -1) {
        char *end = NULL;
        if (opt == 'p') {
            long p = strtol(optarg, &end, 10);
            if (*end != '\0' || p < 1 || p > 65535) {
                fprintf(stderr, "moonpost-forwarder: -p %s is not a port\n", optarg);
                return 2;
            }
            port = (int)p;
        } else if (opt == 'b') {
            address = optarg;
        } else {
            fprintf(stderr, "usage: moonpost-forwarder [-p PORT] [-b ADDRESS]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int listener = listen_on(address, port);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) != 0) die("epoll_ctl");

    struct epoll_event events[1024];
    while (!stopping) {
        int n = epoll_wait(epfd, events, 1024, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                conn_accept(listener);
                continue;
            }
            if (c->fd < 0) continue; /* closed earlier in this pass */
            if (events[i].events & EPOLLOUT) conn_flush(c);
            if (c->fd >= 0 && events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_read(c);
        }
        end_pass();
    }
    return 0;
}
