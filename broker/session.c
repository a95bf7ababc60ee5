/* session: the table of connections (handle = slot + generation), opening, logging in,
 * closing, timeouts and freeing. Reading and writing are in session_io.c. */
#include "session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "presence.h"
#include "reply.h"
#include "session_internal.h"
#include "stats.h"
#include "tls.h"
#include "websocket.h"

struct session_table {
    struct session **slots; /* NULL = free */
    uint32_t *generation;
    uint32_t *free_list;
    size_t free_count;
    size_t capacity;
    size_t live;
    size_t clients;
    struct event *reaper; /* frees doomed sessions outside of their own callbacks */
    struct session **doomed;
    size_t doomed_count;
};

static struct session_table table;
struct session_context session_ctx;

static void reap_doomed(evutil_socket_t fd, short what, void *arg);

int session_table_init(struct event_base *base, size_t max, session_frame_fn on_frame)
{
    session_ctx.base = base;
    session_ctx.on_frame = on_frame;
    table.capacity = max;
    table.slots = calloc(max, sizeof *table.slots);
    table.generation = calloc(max, sizeof *table.generation);
    table.free_list = malloc(max * sizeof *table.free_list);
    table.doomed = malloc(max * sizeof *table.doomed);
    table.reaper = event_new(session_ctx.base, -1, 0, reap_doomed, NULL);
    if (!table.slots || !table.generation || !table.free_list || !table.doomed || !table.reaper)
        return -1;
    for (size_t i = 0; i < max; i++) table.free_list[i] = (uint32_t)(max - 1 - i);
    table.free_count = max;
    return session_io_init(max);
}

/* Gives back everything S holds; the slot and the hooks are the caller's business. */
static void destroy(struct session *s)
{
    event_del(&s->read_ev);
    if (s->write_ev) event_free(s->write_ev);
    if (s->login_timer) event_free(s->login_timer);
    if (s->in) evbuffer_free(s->in);
    session_release_output(s);
    evbuffer_free(s->out);
    if (s->tls) tls_conn_free(s->tls); /* close_notify before the socket goes */
    evutil_closesocket(s->fd);
    if (s->ws) websocket_free(s->ws);
    free(s);
}

void session_table_free(void)
{
    for (size_t i = 0; i < table.capacity; i++)
        if (table.slots[i] != NULL) destroy(table.slots[i]);
    if (table.reaper) event_free(table.reaper);
    free(table.slots);
    free(table.generation);
    free(table.free_list);
    free(table.doomed);
    memset(&table, 0, sizeof table);
    session_io_free();
}

void session_set_limits(const struct session_limits *limits)
{
    session_ctx.limits = *limits;
}

size_t session_count(void)
{
    return table.live;
}

size_t session_client_count(void)
{
    return table.clients;
}

struct session *session_get_any(session_handle handle)
{
    uint32_t slot = (uint32_t)handle;
    if (slot >= table.capacity) return NULL;
    struct session *s = table.slots[slot];
    if (s == NULL || s->handle != handle || s->doomed) return NULL;
    return s;
}

struct session *session_get(session_handle handle)
{
    struct session *s = session_get_any(handle);
    return s != NULL && s->state != SESSION_CLOSING ? s : NULL;
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
    uint32_t slot = (uint32_t)s->handle;
    session_emit(s, SESSION_CLOSED);
    table.slots[slot] = NULL;
    table.free_list[table.free_count++] = slot;
    table.live--;
    if (s->kind == SESSION_CLIENT) table.clients--;
    destroy(s);
}

static void reap_doomed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    for (size_t i = 0; i < table.doomed_count; i++) release(table.doomed[i]);
    table.doomed_count = 0;
}

void session_doom(struct session *s)
{
    if (s->doomed) return;
    session_wake_drain(s);
    s->doomed = 1;
    s->state = SESSION_CLOSING;
    presence_remove(s);
    event_del(&s->read_ev);
    if (s->write_ev) event_del(s->write_ev);
    table.doomed[table.doomed_count++] = s;
    event_active(table.reaper, 0, 0);
}

void session_close(struct session *s, int code, const char *error)
{
    if (s->state == SESSION_CLOSING) return;
    if (code != 0) {
        size_t n;
        const char *bye = reply_encode_bye(code, error, &n);
        session_queue(s, bye, n);
    }
    if (s->ws) websocket_queue_close(s, code);
    s->state = SESSION_CLOSING;
    session_wake_drain(s);
    presence_remove(s);
    event_del(&s->read_ev);
    if (evbuffer_get_length(s->out) == 0) {
        session_doom(s);
        return;
    }
    session_mark_dirty(s); /* the flush dooms it once written, or after the grace period */
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
}

const char *session_addr_text(const struct session *s, char *buf, size_t len)
{
    if (s->addr_family == AF_INET || s->addr_family == AF_INET6) {
        if (inet_ntop(s->addr_family, s->addr, buf, (socklen_t)len) != NULL) return buf;
    }
    snprintf(buf, len, "%s", s->addr_family == AF_UNIX ? "unix" : "?");
    return buf;
}

const char *session_addr_key(const struct session *s, char *buf, size_t len)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (s->addr_family != AF_INET6) return session_addr_text(s, buf, len);
    if (memcmp(s->addr, v4_mapped, sizeof v4_mapped) == 0) {
        if (inet_ntop(AF_INET, s->addr + 12, buf, (socklen_t)len) == NULL) snprintf(buf, len, "?");
        return buf;
    }
    uint8_t prefix[16] = {0};
    memcpy(prefix, s->addr, 8);
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, prefix, text, sizeof text) == NULL) snprintf(text, sizeof text, "?");
    snprintf(buf, len, "%s/64", text);
    return buf;
}

/* The login deadline is a timer of its own: a read timeout would move with every byte, and a
 * client trickling a frame could hold its slot for ever. */
static void on_login_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct session *s = arg;
    stats.idle_timeouts_total++;
    session_close(s, 408, "login timeout");
}

static int start_login_timer(struct session *s)
{
    double t = session_ctx.limits.login_timeout;
    if (t <= 0) return 0;
    s->login_timer = evtimer_new(session_ctx.base, on_login_timeout, s);
    if (s->login_timer == NULL) return -1;
    struct timeval tv = clock_timeval(t);
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

static struct session *open_session(int fd, const struct sockaddr *addr, enum session_kind kind,
                                    struct websocket *ws, struct tls_conn *tls)
{
    if (table.free_count == 0) return NULL;
    struct session *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    /* plain TCP makes its input buffer when bytes wait (session_io.c), TLS when it starts */
    s->in = ws != NULL || tls != NULL ? evbuffer_new() : NULL;
    s->out = evbuffer_new();
    if ((s->in == NULL && (ws != NULL || tls != NULL)) || s->out == NULL ||
        event_assign(&s->read_ev, session_ctx.base, fd, EV_READ | EV_PERSIST, session_on_readable, s)) {
        if (s->in) evbuffer_free(s->in);
        if (s->out) evbuffer_free(s->out);
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->ws = ws;
    s->tls = tls;
    evutil_make_socket_nonblocking(fd);
    uint32_t slot = table.free_list[--table.free_count];
    uint32_t gen = ++table.generation[slot];
    if (gen == 0) gen = ++table.generation[slot];
    s->handle = (uint64_t)gen << 32 | slot;
    s->kind = (uint8_t)kind;
    s->state = kind == SESSION_ADMIN ? SESSION_AUTHENTICATED : SESSION_ANONYMOUS; /* the socket
                                                                   is the admin's authorization */
    copy_address(s, addr);
    table.slots[slot] = s;
    table.live++;
    if (kind == SESSION_CLIENT) table.clients++;

    if (addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (kind == SESSION_CLIENT && start_login_timer(s) != 0) log_warn("cannot arm a login timer");
    session_arm_read(s);
    session_emit(s, SESSION_OPENED);
    return s;
}

struct session *session_open(int fd, const struct sockaddr *addr, int addr_len,
                             enum session_kind kind)
{
    (void)addr_len;
    return open_session(fd, addr, kind, NULL, NULL);
}

struct session *session_open_websocket(int fd, const struct sockaddr *addr, int addr_len,
                                       struct websocket *ws, struct tls_conn *tls)
{
    (void)addr_len;
    return open_session(fd, addr, SESSION_CLIENT, ws, tls);
}
