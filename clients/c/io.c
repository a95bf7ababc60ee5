/* io: the non-blocking socket loop of a client: read, dispatch, ack, expire, write; and the
 * blocking wait that every blocking request is built on. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "frame.h"
#include "mp_internal.h"

#define READ_BUDGET (1u << 20) /* bytes read per step before dispatching, for fairness */

int64_t mp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

mp_err mp_check_usable(mp_client *c)
{
    if (c->fd < 0) return mp_fail(c, MP_ERR_CLOSED, 0, "not connected");
    if (c->depth >= MP_MAX_DEPTH)
        return mp_fail(c, MP_ERR_STATE, 0, "requests nested too deeply inside callbacks");
    return MP_OK;
}

/* Reads what the socket has (up to READ_BUDGET). *EOF is set when the broker closed. */
static mp_err read_available(mp_client *c, int *eof)
{
    size_t total = 0;
    while (total < READ_BUDGET || mp_tls_pending(c)) { /* TLS's own buffer wakes no poll */
        if (c->in.off > 0 && c->in.off >= c->in.cap / 2) mp_buf_compact(&c->in);
        if (mp_buf_reserve(&c->in, MP_READ_CHUNK) != 0)
            return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory for input");
        void *to = c->in.data + c->in.len;
        size_t room = c->in.cap - c->in.len;
        ssize_t n = c->ssl ? mp_tls_read(c, to, room) : recv(c->fd, to, room, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            total += (size_t)n;
            continue;
        }
        if (n == 0) {
            *eof = 1;
            return MP_OK;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return MP_OK;
        if (errno == ECONNRESET) {
            *eof = 1;
            return MP_OK;
        }
        return mp_fail(c, MP_ERR_IO, 0, "read: %s", strerror(errno));
    }
    return MP_OK;
}

/* Dispatches every whole frame in the input. Each frame is consumed before its callbacks run
 * and dispatched from a private copy, so callbacks may read more input through blocking
 * calls without pulling the frame from under the outer dispatch. */
static mp_err dispatch_input(mp_client *c)
{
    while (c->fd >= 0 && c->depth < MP_MAX_DEPTH) {
        uint32_t n;
        enum frame_split st =
            frame_split(c->in.data + c->in.off, mp_buf_used(&c->in), MP_MAX_IN_FRAME, &n);
        if (st == FRAME_NEED_MORE) return MP_OK;
        if (st != FRAME_READY)
            return mp_fail(c, MP_ERR_PROTOCOL, 0, "the broker sent a frame of length %u", n);
        struct mp_buf *copy = &c->scratch[c->depth];
        mp_buf_reset(copy);
        if (mp_buf_reserve(copy, (size_t)n + 1) != 0)
            return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory for a frame of %u bytes", n);
        memcpy(copy->data, c->in.data + c->in.off + FRAME_HEADER_LEN, n);
        copy->data[n] = '\0';
        mp_buf_consume(&c->in, FRAME_HEADER_LEN + (size_t)n);
        mp_err err = mp_dispatch_frame(c, copy->data, n);
        if (err != MP_OK) return err;
    }
    return MP_OK;
}

static mp_err flush_output(mp_client *c)
{
    while (mp_buf_used(&c->out) > 0) {
        const void *from = c->out.data + c->out.off;
        size_t len = mp_buf_used(&c->out);
        ssize_t n = c->ssl ? mp_tls_write(c, from, len) : send(c->fd, from, len, MSG_NOSIGNAL);
        if (n >= 0) {
            mp_buf_consume(&c->out, (size_t)n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EPIPE || errno == ECONNRESET)
            return mp_fail(c, MP_ERR_CLOSED, 0, "connection closed by the broker");
        return mp_fail(c, MP_ERR_IO, 0, "write: %s", strerror(errno));
    }
    if (c->out.off >= (1u << 20)) mp_buf_compact(&c->out);
    return MP_OK;
}

/* Closes with ERR, unless a bye already closed (its message then stands). */
static mp_err closed_with(mp_client *c, mp_err err)
{
    if (c->fd >= 0) mp_conn_close(c, err);
    return err;
}

mp_err mp_io_step(mp_client *c, int can_read)
{
    if (c->fd < 0) return MP_ERR_CLOSED;
    int eof = 0;
    mp_err err = can_read ? read_available(c, &eof) : MP_OK;
    mp_err derr = dispatch_input(c);
    if (c->fd < 0) return MP_ERR_CLOSED; /* bye, or closed from a callback */
    if (derr != MP_OK) return closed_with(c, derr);
    if (err != MP_OK) return closed_with(c, err);
    if (eof) {
        mp_fail(c, MP_ERR_CLOSED, 0, "connection closed by the broker");
        return closed_with(c, MP_ERR_CLOSED);
    }
    mp_pending_expire(c, mp_now_ms());
    if (c->fd < 0) return MP_ERR_CLOSED;
    mp_queue_ack(c);
    err = flush_output(c);
    if (err == MP_OK) return MP_OK;
    /* the broker may have said why it hung up: read that before closing */
    eof = 0;
    if (read_available(c, &eof) == MP_OK) dispatch_input(c);
    if (c->fd < 0) return MP_ERR_CLOSED;
    return closed_with(c, err);
}

/* Waits for fd events for at most WAIT_MS; returns whether the socket is readable. */
static int wait_events(mp_client *c, int wait_ms)
{
    if (mp_tls_pending(c)) return 1;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (mp_buf_used(&c->out) > 0) pfd.events |= POLLOUT;
    int n = poll(&pfd, 1, wait_ms);
    if (n <= 0) return 0;
    return (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

static int clamp_wait(mp_client *c, int64_t wait_ms)
{
    int next = mp_client_next_timeout(c);
    if (next >= 0 && (wait_ms < 0 || next < wait_ms)) wait_ms = next;
    if (wait_ms > 60000) wait_ms = 60000;
    return (int)wait_ms;
}

mp_err mp_wait_reply(mp_client *c, uint64_t id, mp_reply **out)
{
    if (out) *out = NULL;
    int64_t deadline = mp_now_ms() + c->timeout_ms;
    struct mp_pending *p = mp_pending_add(c, id, deadline);
    if (p == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    p->blocking = 1;
    int can_read = 0;
    for (;;) {
        mp_io_step(c, can_read); /* the outcome, closing included, shows in the entry */
        p = mp_pending_find(c, id);
        if (p->done) break;
        if (c->fd < 0) { /* cannot happen: closing fails every entry; but never spin */
            mp_pending_remove(c, p);
            return MP_ERR_CLOSED;
        }
        int64_t left = deadline - mp_now_ms();
        if (left <= 0) {
            mp_pending_remove(c, p);
            return mp_fail(c, MP_ERR_TIMEOUT, 0, "no reply within %d ms", c->timeout_ms);
        }
        can_read = wait_events(c, clamp_wait(c, left));
    }
    mp_err err = p->err;
    struct mp_reply *r = p->reply;
    p->reply = NULL;
    mp_pending_remove(c, p);
    if (r == NULL) return err; /* the message was set when it happened */
    mp_err result = r->code == 200 ? MP_OK : MP_ERR_SERVER;
    if (result != MP_OK) mp_error_from_body(c, r->data, r->len, r->code);
    if (out)
        *out = r;
    else
        mp_reply_free(r);
    return result;
}

int mp_client_fd(const mp_client *c)
{
    return c ? c->fd : -1;
}

int mp_client_events(const mp_client *c)
{
    if (c == NULL || c->fd < 0) return 0;
    return MP_EV_READ | (mp_buf_used(&c->out) > 0 ? MP_EV_WRITE : 0);
}

int mp_client_next_timeout(const mp_client *c)
{
    if (c == NULL || c->pending.live == 0) return -1;
    int64_t left = c->pending.next_deadline_ms - mp_now_ms();
    if (left < 0) return 0;
    return left > 3600000 ? 3600000 : (int)left;
}

mp_err mp_client_process(mp_client *c)
{
    if (c == NULL) return MP_ERR_INVAL;
    if (c->fd < 0) {
        if (c->errmsg[0] == '\0') mp_fail(c, MP_ERR_CLOSED, 0, "not connected");
        return MP_ERR_CLOSED;
    }
    return mp_io_step(c, 1);
}

mp_err mp_client_flush(mp_client *c)
{
    if (c == NULL) return MP_ERR_INVAL;
    if (c->fd < 0) return mp_fail(c, MP_ERR_CLOSED, 0, "not connected");
    mp_err err = flush_output(c);
    return err == MP_OK ? MP_OK : closed_with(c, err);
}

mp_err mp_client_run(mp_client *c, int timeout_ms)
{
    if (c == NULL) return MP_ERR_INVAL;
    int64_t deadline = timeout_ms >= 0 ? mp_now_ms() + timeout_ms : -1;
    int can_read = 1;
    for (;;) {
        if (c->stop) { /* also a stop from a callback that ran inside a blocking call */
            c->stop = 0;
            return MP_OK;
        }
        if (c->fd < 0) return MP_ERR_CLOSED;
        mp_err err = mp_io_step(c, can_read);
        if (err != MP_OK) return err;
        int64_t left = deadline < 0 ? -1 : deadline - mp_now_ms();
        if (deadline >= 0 && left <= 0) return MP_OK;
        if (c->stop) continue; /* a callback of this step stopped the run: no wait first */
        can_read = wait_events(c, clamp_wait(c, left));
    }
}

void mp_client_stop(mp_client *c)
{
    if (c) c->stop = 1;
}
