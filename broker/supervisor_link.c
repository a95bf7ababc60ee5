/* supervisor_link: one admin connection per worker, and calls forwarded over them. A worker
 * counts as up once it has answered a ping on a fresh connection: its admin socket opens
 * before its client listeners, and it answers only once its loop runs, after all of them. */
#include "supervisor_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/bufferevent.h>

#include "clock.h"
#include "frame.h"
#include "log.h"
#include "msgread.h"
#include "reply.h"

#define LINK_RETRY_MS 100
#define LINK_MAX_FRAME (64u << 20) /* a worker's replies (admin.users, admin.metrics) are big */
#define LINK_MAX_DEPTH 32

struct link {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct bufferevent *bev; /* NULL while not connected */
    struct event *retry;
    int wanted;        /* the worker runs: keep a connection to it */
    int up;            /* it answered the ping of this connection */
    uint64_t hello_id; /* the id of that ping */
};

struct link_call {
    link_done_fn done;
    void *arg;
    struct event *timer;
    int waiting;                /* workers asked that have not answered yet */
    uint64_t *ids;              /* per worker: the id of the request it owes, 0 = none */
    struct link_reply *replies; /* per worker */
    struct link_call *prev, *next;
};

static struct {
    struct event_base *base;
    int count;
    struct link *links;
    uint64_t next_id;
    struct link_call *calls; /* every call not ended */
    struct codec_buf buf;
} links;

/* ---- frames ---- */

int frame_pull(struct evbuffer *in, uint32_t max, uint8_t **body, uint32_t *len)
{
    size_t have = evbuffer_get_length(in);
    if (have < FRAME_HEADER_LEN) return 0;
    uint32_t n = frame_read_length(evbuffer_pullup(in, FRAME_HEADER_LEN));
    if (n == 0) return FRAME_PULL_EMPTY;
    if (n > max) return FRAME_PULL_TOO_LARGE;
    if (have < FRAME_HEADER_LEN + (size_t)n) return 0;
    *body = evbuffer_pullup(in, FRAME_HEADER_LEN + (ssize_t)n) + FRAME_HEADER_LEN;
    *len = n;
    return 1;
}

static int is_id_key(const struct msgread_item *key)
{
    return key->type == MSGREAD_STR && key->v.str.len == 2 && memcmp(key->v.str.ptr, "id", 2) == 0;
}

/* Copies the pairs of the map at R (COUNT pairs) but `id` into OUT when OUT is not NULL;
 * returns how many there are, or -1. */
static long copy_pairs(struct mpr r, uint32_t count, struct codec_buf *out)
{
    long kept = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *start = r.pos;
        struct msgread_item key;
        if (msgread_next(&r, &key) != MSGREAD_OK || msgread_skip(&r, LINK_MAX_DEPTH) != MSGREAD_OK)
            return -1;
        if (is_id_key(&key)) continue;
        kept++;
        if (out) msgpack_sbuffer_write(&out->sb, (const char *)start, (size_t)(r.pos - start));
    }
    return kept;
}

int frame_with_id(const uint8_t *body, size_t len, int has_id, uint64_t id, struct codec_buf *out)
{
    struct mpr r;
    msgread_init(&r, body, len);
    struct msgread_item map;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return -1;
    long kept = copy_pairs(r, map.v.count, NULL);
    if (kept < 0) return -1;
    codec_frame_begin(out);
    msgpack_pack_map(&out->pk, (size_t)kept + (has_id ? 1 : 0));
    copy_pairs(r, map.v.count, out);
    if (has_id) {
        reply_pack_str(&out->pk, "id");
        msgpack_pack_uint64(&out->pk, id);
    }
    codec_frame_end(out);
    return 0;
}

/* ---- calls ---- */

static void call_free(struct link_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        links.calls = c->next;
    if (c->next) c->next->prev = c->prev;
    for (int i = 0; i < links.count; i++)
        free((void *)c->replies[i].body);
    event_free(c->timer);
    free(c->ids);
    free(c->replies);
    free(c);
}

static void on_call_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct link_call *c = arg;
    c->done(c->arg, c->replies, links.count);
    call_free(c);
}

/* Every worker asked has answered or gone: end the call from the loop. */
static void call_settled(struct link_call *c)
{
    static const struct timeval now = {0, 0};
    evtimer_add(c->timer, &now);
}

/* The request of C to worker I is answered (BODY) or lost (BODY NULL). */
static void call_resolve(struct link_call *c, int i, const uint8_t *body, size_t len)
{
    c->ids[i] = 0;
    if (body != NULL) {
        uint8_t *copy = malloc(len);
        struct msgread_item code;
        if (copy != NULL) {
            memcpy(copy, body, len);
            c->replies[i].body = copy;
            c->replies[i].len = len;
            c->replies[i].code =
                frame_get(body, len, "code", &code) && code.type == MSGREAD_UINT && code.v.u < 1000
                    ? (int)code.v.u
                    : 500;
        }
    }
    if (--c->waiting == 0) call_settled(c);
}

static int send_to(int i, const uint8_t *body, size_t len, uint64_t id)
{
    struct link *l = &links.links[i];
    if (l->bev == NULL || frame_with_id(body, len, 1, id, &links.buf) != 0) return -1;
    return bufferevent_write(l->bev, links.buf.sb.data, links.buf.sb.size);
}

struct link_call *link_call(int worker, const uint8_t *body, size_t len, double timeout,
                            link_done_fn done, void *arg)
{
    struct link_call *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->ids = calloc((size_t)links.count, sizeof *c->ids);
    c->replies = calloc((size_t)links.count, sizeof *c->replies);
    c->timer = evtimer_new(links.base, on_call_end, c);
    if (c->ids == NULL || c->replies == NULL || c->timer == NULL) {
        event_free(c->timer);
        free(c->ids);
        free(c->replies);
        free(c);
        return NULL;
    }
    c->done = done;
    c->arg = arg;
    c->next = links.calls;
    if (links.calls) links.calls->prev = c;
    links.calls = c;
    for (int i = 0; i < links.count; i++) {
        if ((worker >= 0 && i != worker) || !links.links[i].up) continue;
        uint64_t id = ++links.next_id;
        if (send_to(i, body, len, id) != 0) continue;
        c->ids[i] = id;
        c->waiting++;
    }
    if (c->waiting == 0) {
        call_settled(c);
    } else {
        struct timeval tv = clock_timeval(timeout);
        evtimer_add(c->timer, &tv);
    }
    return c;
}

void link_call_cancel(struct link_call *c)
{
    if (c != NULL) call_free(c);
}

/* ---- connections ---- */

static int link_index(const struct link *l)
{
    return (int)(l - links.links);
}

static void schedule_retry(struct link *l)
{
    struct timeval tv = clock_timeval(LINK_RETRY_MS / 1000.0);
    if (l->wanted) evtimer_add(l->retry, &tv);
}

/* Closes worker I's connection; the calls that wait for it count it as not answering. */
static void link_close(int i)
{
    struct link *l = &links.links[i];
    if (l->bev == NULL) return;
    bufferevent_free(l->bev);
    l->bev = NULL;
    if (l->up) log_info("supervisor: lost the admin connection to worker %d", i + 1);
    l->up = 0;
    for (struct link_call *c = links.calls; c != NULL; c = c->next)
        if (c->ids[i] != 0) call_resolve(c, i, NULL, 0);
}

static void on_frame(struct link *l, const uint8_t *body, size_t len)
{
    struct frame_info info;
    if (frame_check(body, len, &info) != FRAME_OK || !info.has_id || info.type_len != 3 ||
        memcmp(info.type, "res", 3) != 0)
        return; /* a `bye` before the worker closes, or nothing of ours */
    int i = link_index(l);
    if (info.id == l->hello_id) {
        l->up = 1;
        log_debug("supervisor: worker %d answers on %s", i + 1, l->path);
        return;
    }
    for (struct link_call *c = links.calls; c != NULL; c = c->next) {
        if (c->ids[i] == info.id) return call_resolve(c, i, body, len);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct link *l = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint8_t *body;
    uint32_t len;
    int rc;
    while ((rc = frame_pull(in, LINK_MAX_FRAME, &body, &len)) == 1) {
        on_frame(l, body, len);
        evbuffer_drain(in, FRAME_HEADER_LEN + (size_t)len);
    }
    if (rc < 0) {
        link_close(link_index(l));
        schedule_retry(l);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct link *l = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
    link_close(link_index(l));
    schedule_retry(l);
}

static int say_hello(struct link *l)
{
    static const uint8_t ping[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa4, 'p', 'i', 'n', 'g'};
    l->hello_id = ++links.next_id;
    return send_to(link_index(l), ping, sizeof ping, l->hello_id);
}

/* A Unix socket connects at once or fails at once (ECONNREFUSED while the worker starts). */
static void try_connect(struct link *l)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, l->path, sizeof sun.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        if (fd >= 0) close(fd);
        return schedule_retry(l);
    }
    l->bev = bufferevent_socket_new(links.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (l->bev == NULL) {
        close(fd);
        return schedule_retry(l);
    }
    bufferevent_setcb(l->bev, on_read, NULL, on_event, l);
    bufferevent_enable(l->bev, EV_READ);
    if (say_hello(l) != 0) {
        link_close(link_index(l));
        schedule_retry(l);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct link *l = arg;
    if (l->wanted && l->bev == NULL) try_connect(l);
}

void link_connect(int i)
{
    if (i >= links.count) return; /* no admin_socket: no links */
    struct link *l = &links.links[i];
    l->wanted = 1;
    if (l->bev == NULL) schedule_retry(l);
}

void link_disconnect(int i)
{
    if (i >= links.count) return;
    struct link *l = &links.links[i];
    l->wanted = 0;
    evtimer_del(l->retry);
    link_close(i);
}

int link_is_up(int i)
{
    return links.links[i].up;
}

int link_first_up(void)
{
    for (int i = 0; i < links.count; i++)
        if (links.links[i].up) return i;
    return -1;
}

int links_init(struct event_base *base, int count, const char *admin_socket)
{
    links.base = base;
    links.links = calloc((size_t)count, sizeof *links.links);
    if (links.links == NULL) return -1;
    links.count = count;
    codec_buf_init(&links.buf);
    for (int i = 0; i < count; i++) {
        struct link *l = &links.links[i];
        int n = snprintf(l->path, sizeof l->path, "%s.%d", admin_socket, i + 1);
        if (n < 0 || (size_t)n >= sizeof l->path) {
            log_error("admin_socket %s: too long for the workers' sockets (%s.%d)", admin_socket,
                      admin_socket, i + 1);
            return -1;
        }
        l->retry = evtimer_new(base, on_retry, l);
        if (l->retry == NULL) return -1;
    }
    return 0;
}

void links_free(void)
{
    for (struct link_call *c = links.calls, *next; c != NULL; c = next) {
        next = c->next;
        call_free(c);
    }
    for (int i = 0; i < links.count; i++) {
        struct link *l = &links.links[i];
        if (l->bev) bufferevent_free(l->bev);
        if (l->retry) event_free(l->retry);
    }
    free(links.links);
    links.links = NULL;
    links.count = 0;
    codec_buf_free(&links.buf);
}
