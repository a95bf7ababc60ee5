/* session: the table of connections, reading whole frames, bounded output, timeouts, closing. */
#include "session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker.h"
#include "frame.h"
#include "log.h"
#include "presence.h"
#include "reply.h"
#include "router.h"

#define CLOSE_GRACE_SECONDS 2

struct session_table {
    struct session **slots; /* NULL = free */
    uint32_t *generation;
    uint32_t *free_list;
    size_t free_count;
    size_t capacity;
    size_t live;
    size_t clients;
    struct event *reaper;        /* frees closed sessions outside of their own callbacks */
    struct session **doomed;
    size_t doomed_count;
};

static struct session_table table;
void (*session_on_free)(struct session *s);

static void reap_doomed(evutil_socket_t fd, short what, void *arg);

int session_table_init(size_t max)
{
    table.capacity = max;
    table.slots = calloc(max, sizeof *table.slots);
    table.generation = calloc(max, sizeof *table.generation);
    table.free_list = malloc(max * sizeof *table.free_list);
    table.doomed = malloc(max * sizeof *table.doomed);
    table.reaper = event_new(broker.base, -1, 0, reap_doomed, NULL);
    if (!table.slots || !table.generation || !table.free_list || !table.doomed || !table.reaper)
        return -1;
    for (size_t i = 0; i < max; i++) table.free_list[i] = (uint32_t)(max - 1 - i);
    table.free_count = max;
    return 0;
}

void session_table_free(void)
{
    for (size_t i = 0; i < table.capacity; i++) {
        struct session *s = table.slots[i];
        if (s == NULL) continue;
        if (s->login_timer) event_free(s->login_timer);
        bufferevent_free(s->bev);
        free(s);
    }
    if (table.reaper) event_free(table.reaper);
    free(table.slots);
    free(table.generation);
    free(table.free_list);
    free(table.doomed);
    memset(&table, 0, sizeof table);
}

size_t session_count(void)
{
    return table.live;
}

size_t session_client_count(void)
{
    return table.clients;
}

static uint32_t handle_slot(session_handle h)
{
    return (uint32_t)h;
}

struct session *session_get(session_handle handle)
{
    uint32_t slot = handle_slot(handle);
    if (slot >= table.capacity) return NULL;
    struct session *s = table.slots[slot];
    if (s == NULL || s->handle != handle || s->state == SESSION_CLOSING) return NULL;
    return s;
}

void session_foreach(void (*fn)(struct session *s, void *arg), void *arg)
{
    for (size_t i = 0; i < table.capacity; i++) {
        struct session *s = table.slots[i];
        if (s != NULL && s->state != SESSION_CLOSING) fn(s, arg);
    }
}

static void release(struct session *s)
{
    uint32_t slot = handle_slot(s->handle);
    if (session_on_free) session_on_free(s);
    bufferevent_free(s->bev);
    table.slots[slot] = NULL;
    table.free_list[table.free_count++] = slot;
    table.live--;
    if (s->kind == SESSION_CLIENT) table.clients--;
    if (s->login_timer) event_free(s->login_timer);
    free(s);
}

static void reap_doomed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (size_t i = 0; i < table.doomed_count; i++) release(table.doomed[i]);
    table.doomed_count = 0;
}

/* Frees S on the next loop pass, never inside a callback that may still touch it. */
static void doom(struct session *s)
{
    if (s->doomed) return;
    s->doomed = 1;
    bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
    table.doomed[table.doomed_count++] = s;
    event_active(table.reaper, 0, 0);
    s->state = SESSION_CLOSING;
}

static void set_read_timeout(struct session *s, double seconds)
{
    if (seconds <= 0) {
        bufferevent_set_timeouts(s->bev, NULL, NULL);
        return;
    }
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
    bufferevent_set_timeouts(s->bev, &tv, NULL);
}

static void write_bye(struct session *s, int code, const char *error)
{
    size_t n;
    const char *bye = reply_encode_bye(code, error, &n);
    evbuffer_add(bufferevent_get_output(s->bev), bye, n);
    broker.stats.frames_out_total++;
}

static void on_flushed(struct bufferevent *bev, void *arg)
{
    (void)bev;
    doom(arg);
}

static void on_close_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev, (void)what;
    doom(arg); /* EOF, error or the grace period ran out while flushing */
}

void session_close(struct session *s, int code, const char *error)
{
    if (s->state == SESSION_CLOSING) return;
    if (code != 0) write_bye(s, code, error);
    s->state = SESSION_CLOSING;
    presence_remove(s);
    bufferevent_disable(s->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        doom(s);
        return;
    }
    struct timeval grace = {CLOSE_GRACE_SECONDS, 0};
    bufferevent_set_timeouts(s->bev, NULL, &grace);
    bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(s->bev, NULL, on_flushed, on_close_event, s);
}

void session_send_bytes(struct session *s, const void *data, size_t len)
{
    if (s->state == SESSION_CLOSING) return;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    evbuffer_add(out, data, len);
    broker.stats.frames_out_total++;
    if (evbuffer_get_length(out) > (size_t)broker.conf.output_limit) {
        broker.stats.slow_consumers_total++;
        char addr[64];
        log_warn("session %s (%s): output buffer over %d bytes, dropped as a slow reader",
                 s->user_len ? s->user : "-", session_addr_text(s, addr, sizeof addr),
                 broker.conf.output_limit);
        session_close(s, 429, "slow reader: output buffer full");
    }
}

void session_reply(struct session *s, int has_id, uint64_t id, int code, const char *error)
{
    stats_count_reply(&broker.stats, code);
    if (code == 200 && !has_id) return;
    struct codec_buf *b = &broker.scratch;
    codec_frame_begin(b);
    msgpack_pack_map(&b->pk, 2 + (has_id ? 1 : 0) + (code != 200 ? 1 : 0));
    msgpack_pack_str_with_body(&b->pk, "type", 4);
    msgpack_pack_str_with_body(&b->pk, "res", 3);
    if (has_id) {
        msgpack_pack_str_with_body(&b->pk, "id", 2);
        msgpack_pack_uint64(&b->pk, id);
    }
    msgpack_pack_str_with_body(&b->pk, "code", 4);
    msgpack_pack_int(&b->pk, code);
    if (code != 200) {
        msgpack_pack_str_with_body(&b->pk, "error", 5);
        msgpack_pack_str_with_body(&b->pk, error, strlen(error));
    }
    size_t n = codec_frame_end(b);
    session_send_bytes(s, b->sb.data, n);
}

void session_set_user(struct session *s, const char *user, size_t len)
{
    if (len > SESSION_USER_MAX) len = SESSION_USER_MAX;
    memcpy(s->user, user, len);
    s->user[len] = '\0';
    s->user_len = (uint8_t)len;
    s->state = SESSION_AUTHENTICATED;
    if (s->login_timer) {
        event_free(s->login_timer);
        s->login_timer = NULL;
    }
    set_read_timeout(s, broker.conf.idle_timeout);
}

const char *session_addr_text(const struct session *s, char *buf, size_t len)
{
    if (s->addr_family == AF_INET || s->addr_family == AF_INET6) {
        if (inet_ntop(s->addr_family, s->addr, buf, (socklen_t)len) != NULL) return buf;
    }
    snprintf(buf, len, "%s", s->addr_family == AF_UNIX ? "unix" : "?");
    return buf;
}

/* ---- reading frames ---- */

static void malformed(struct session *s, const struct frame_info *info, const char *why)
{
    broker.stats.malformed_frames_total++;
    char addr[64];
    log_debug("malformed frame from %s: %s", session_addr_text(s, addr, sizeof addr), why);
    session_reply(s, info->has_id, info->id, 400, why);
    if (++s->malformed >= SESSION_MAX_MALFORMED) session_close(s, 400, "too many malformed frames");
}

static void handle_body(struct session *s, const uint8_t *body, size_t len)
{
    struct frame_info info;
    enum frame_error err = frame_check(body, len, &info);
    broker.stats.frames_in_total++;
    if (err != FRAME_OK) {
        malformed(s, &info, frame_error_text(err));
        return;
    }
    router_dispatch(s, &info, body, len);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (s->state != SESSION_CLOSING) {
        if (s->inflight >= SESSION_MAX_INFLIGHT) {
            s->read_paused = 1;
            bufferevent_disable(bev, EV_READ); /* resumed by session_handler_done */
            return;
        }
        size_t have = evbuffer_get_length(in);
        uint8_t header[FRAME_HEADER_LEN];
        if (evbuffer_copyout(in, header, sizeof header) < (ev_ssize_t)sizeof header) return;
        uint32_t len;
        switch (frame_split(header, sizeof header, (uint32_t)broker.conf.max_frame, &len)) {
        case FRAME_EMPTY: session_close(s, 400, "empty frame"); return;
        case FRAME_OVERSIZE: session_close(s, 413, "frame too large"); return;
        default: break;
        }
        if (have < FRAME_HEADER_LEN + (size_t)len) {
            /* ask libevent to wake us only when the whole frame is there */
            bufferevent_setwatermark(bev, EV_READ, FRAME_HEADER_LEN + (size_t)len, 0);
            s->wants_bytes = 1;
            return;
        }
        if (s->wants_bytes) {
            bufferevent_setwatermark(bev, EV_READ, 0, 0);
            s->wants_bytes = 0;
        }
        const uint8_t *frame = evbuffer_pullup(in, FRAME_HEADER_LEN + (ssize_t)len);
        broker.stats.bytes_in_total += FRAME_HEADER_LEN + len;
        handle_body(s, frame + FRAME_HEADER_LEN, len);
        evbuffer_drain(in, FRAME_HEADER_LEN + (size_t)len);
    }
}

void session_handler_done(struct session *s)
{
    if (s->inflight > 0) s->inflight--;
    if (s->read_paused && s->state != SESSION_CLOSING && s->inflight < SESSION_MAX_INFLIGHT) {
        s->read_paused = 0;
        bufferevent_enable(s->bev, EV_READ);
        /* frames may already be buffered: read them from the loop, never from inside a handler
         * (which may itself run inside on_read, before its frame is drained) */
        bufferevent_trigger(s->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct session *s = arg;
    if (what & BEV_EVENT_TIMEOUT) {
        int anonymous = s->state == SESSION_ANONYMOUS;
        broker.stats.idle_timeouts_total++;
        session_close(s, 408, anonymous ? "login timeout" : "idle timeout");
        return;
    }
    s->state = SESSION_CLOSING; /* EOF or error: nothing more can be written */
    presence_remove(s);
    doom(s);
}

/* The login deadline is a timer of its own: a read timeout would move with every byte, and a
 * client trickling a frame could hold its slot for ever. */
static void on_login_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct session *s = arg;
    broker.stats.idle_timeouts_total++;
    session_close(s, 408, "login timeout");
}

static int start_login_timer(struct session *s)
{
    double t = broker.conf.login_timeout;
    if (t <= 0) return 0;
    s->login_timer = evtimer_new(broker.base, on_login_timeout, s);
    if (s->login_timer == NULL) return -1;
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (time_t)t) * 1e6)};
    return evtimer_add(s->login_timer, &tv);
}

static void copy_address(struct session *s, const struct sockaddr *addr)
{
    s->addr_family = (uint8_t)addr->sa_family;
    if (addr->sa_family == AF_INET)
        memcpy(s->addr, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    else if (addr->sa_family == AF_INET6)
        memcpy(s->addr, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
}

struct session *session_open(int fd, const struct sockaddr *addr, int addr_len,
                             enum session_kind kind)
{
    (void)addr_len;
    if (table.free_count == 0) return NULL;
    struct session *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->bev = bufferevent_socket_new(broker.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->bev == NULL) {
        free(s);
        return NULL;
    }
    uint32_t slot = table.free_list[--table.free_count];
    uint32_t gen = ++table.generation[slot];
    if (gen == 0) gen = ++table.generation[slot];
    s->handle = (uint64_t)gen << 32 | slot;
    s->kind = (uint8_t)kind;
    s->state = SESSION_ANONYMOUS;
    copy_address(s, addr);
    table.slots[slot] = s;
    table.live++;
    if (kind == SESSION_CLIENT) table.clients++;

    if (addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
    if (kind == SESSION_CLIENT) {
        set_read_timeout(s, broker.conf.idle_timeout);
        if (start_login_timer(s) != 0) log_warn("cannot arm a login timer");
    }
    bufferevent_enable(s->bev, EV_READ);
    return s;
}
