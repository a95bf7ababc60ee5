/* session_io: reading whole frames from a session's socket, and writing its output once per
 * loop pass (many pushes to one session in one pass leave in one write). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "frame.h"
#include "log.h"
#include "reply.h"
#include "session_internal.h"
#include "stats.h"
#include "websocket.h"

#define WRITE_IOVECS 128 /* chains of output handed to one writev */

static size_t out_total; /* bytes queued to every session and not yet written */
static size_t out_peak;  /* the highest out_total since session_output_peak_reset */

/* Sessions with output to write at the end of this loop pass, by handle (a session may be
 * freed before the flush runs). */
static struct {
    session_handle *handles;
    size_t count;
    struct event *flush; /* activated by the first write of a pass: runs after the callbacks
                            already queued in that pass */
} dirty;

static struct codec_buf reply_buf; /* session_reply's frames */

static void flush_dirty(evutil_socket_t fd, short what, void *arg);

int session_io_init(size_t max)
{
    codec_buf_init(&reply_buf);
    dirty.handles = malloc(max * sizeof *dirty.handles);
    dirty.flush = event_new(session_ctx.base, -1, 0, flush_dirty, NULL);
    return dirty.handles && dirty.flush ? session_budget_init() : -1;
}

void session_io_free(void)
{
    codec_buf_free(&reply_buf);
    free(dirty.handles);
    if (dirty.flush) event_free(dirty.flush);
    session_budget_free();
    memset(&dirty, 0, sizeof dirty);
}

void session_arm_read(struct session *s)
{
    double idle = session_ctx.limits.idle_timeout;
    if (s->kind == SESSION_CLIENT && idle > 0) {
        struct timeval tv = clock_timeval(idle);
        event_add(&s->read_ev, &tv);
    } else {
        event_add(&s->read_ev, NULL);
    }
}

size_t session_queued(const struct session *s)
{
    return evbuffer_get_length(s->out);
}

int session_wait_drain(struct session *s, size_t low_water, struct event *ev)
{
    if (s->drain_ev != NULL) return -1;
    s->drain_ev = ev;
    s->drain_low_water = (uint32_t)(low_water < UINT32_MAX ? low_water : UINT32_MAX);
    return 0;
}

void session_cancel_drain(struct session *s, const struct event *ev)
{
    if (s->drain_ev == ev) s->drain_ev = NULL;
}

/* The waiter runs from the loop, not from inside this write path (it may push and close). */
void session_wake_drain(struct session *s)
{
    if (s->drain_ev == NULL) return;
    event_active(s->drain_ev, EV_WRITE, 0);
    s->drain_ev = NULL;
}

size_t session_output_total(void)
{
    return out_total;
}

size_t session_output_peak(void)
{
    return out_peak;
}

void session_output_peak_reset(void)
{
    out_peak = out_total;
}

/* ---- writing ---- */

void session_mark_dirty(struct session *s)
{
    if (s->dirty) return;
    s->dirty = 1;
    dirty.handles[dirty.count++] = s->handle;
    if (dirty.count == 1) event_active(dirty.flush, 0, 0);
}

static void flush_dirty(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    /* writing can close a session, which never adds to this list: iterate a stable count */
    size_t n = dirty.count;
    for (size_t i = 0; i < n; i++) {
        struct session *s = session_get_any(dirty.handles[i]);
        if (s == NULL) continue;
        s->dirty = 0;
        session_write_out(s);
    }
    /* sessions marked during the loop (none today) stay for the next pass */
    memmove(dirty.handles, dirty.handles + n, (dirty.count - n) * sizeof *dirty.handles);
    dirty.count -= n;
    session_budget_enforce(); /* after the writes: who is still behind is a slow reader */
    if (dirty.count > 0) event_active(dirty.flush, 0, 0);
}

static int wait_writable(struct session *s)
{
    if (s->write_ev == NULL) {
        s->write_ev = event_new(session_ctx.base, s->fd, EV_WRITE | EV_PERSIST, session_on_writable, s);
        if (s->write_ev == NULL) return -1;
    }
    if (s->state == SESSION_CLOSING) {
        struct timeval grace = {SESSION_CLOSE_GRACE_SECONDS, 0};
        return event_add(s->write_ev, &grace);
    }
    return event_pending(s->write_ev, EV_WRITE, NULL) ? 0 : event_add(s->write_ev, NULL);
}

/* Bytes of the frame of S's output starting at P: the transport's own framing. */
static size_t frame_size_at(const struct session *s, struct evbuffer *out, struct evbuffer_ptr *p)
{
    if (s->ws != NULL) return websocket_frame_size(out, p);
    uint8_t header[FRAME_HEADER_LEN];
    if (evbuffer_copyout_from(out, p, header, sizeof header) != (ev_ssize_t)sizeof header)
        return 0; /* cannot happen: OUT holds whole frames */
    return FRAME_HEADER_LEN + frame_read_length(header);
}

/* How many bytes at the head of S's output, once WRITTEN bytes of it are gone, still belong to
 * a frame the socket has the start of; FROM is where the first whole frame starts. Only
 * called when a write leaves output behind, so a reader that keeps up costs nothing. */
static uint32_t frame_rest(const struct session *s, size_t from, size_t written)
{
    if (from >= written) return (uint32_t)(from - written);
    struct evbuffer *out = s->out;
    struct evbuffer_ptr p;
    evbuffer_ptr_set(out, &p, from, EVBUFFER_PTR_SET);
    for (size_t pos = from;;) {
        size_t step = frame_size_at(s, out, &p);
        if (step == 0) return 0;
        pos += step;
        if (pos >= written) return (uint32_t)(pos - written);
        evbuffer_ptr_set(out, &p, step, EVBUFFER_PTR_ADD);
    }
}

/* One writev of what S has queued. Returns bytes written or -1 (errno set). */
static ssize_t write_plain(struct session *s)
{
    struct evbuffer_iovec chains[WRITE_IOVECS];
    struct iovec iov[WRITE_IOVECS];
    int n = evbuffer_peek(s->out, -1, NULL, chains, WRITE_IOVECS);
    if (n > WRITE_IOVECS) n = WRITE_IOVECS;
    for (int i = 0; i < n; i++)
        iov[i] = (struct iovec){chains[i].iov_base, chains[i].iov_len};
    return writev(s->fd, iov, n);
}

/* Writes what S has queued (in clear, or through its TLS stream), keeping out_partial right.
 * Returns bytes written or -1. */
static ssize_t write_some(struct session *s)
{
    ssize_t w = s->tls == NULL ? write_plain(s) : session_tls_write(s);
    if (w <= 0) return w;
    size_t left = evbuffer_get_length(s->out) - (size_t)w;
    s->out_partial = left == 0 ? 0 : frame_rest(s, s->out_partial, (size_t)w);
    evbuffer_drain(s->out, (size_t)w);
    out_total -= (size_t)w;
    stats.bytes_out_total += (uint64_t)w;
    return w;
}

void session_write_out(struct session *s)
{
    struct evbuffer *out = s->out;
    if (evbuffer_get_length(out) > 0 && write_some(s) < 0 && errno != EAGAIN &&
        errno != EWOULDBLOCK && errno != EINTR) {
        session_doom(s); /* the peer is gone: nothing more can be written */
        return;
    }
    if (s->drain_ev != NULL && evbuffer_get_length(out) <= s->drain_low_water)
        session_wake_drain(s);
    if (evbuffer_get_length(out) > 0) {
        if (wait_writable(s) != 0) session_doom(s);
        return;
    }
    if (s->write_ev) event_del(s->write_ev);
    if (s->state == SESSION_CLOSING) session_doom(s); /* the bye is out */
}

void session_queue_wire(struct session *s, const void *data, size_t len)
{
    if (evbuffer_add(s->out, data, len) != 0) return;
    out_total += len;
    if (out_total > out_peak) out_peak = out_total;
}

void session_queue(struct session *s, const void *data, size_t len)
{
    if (s->ws != NULL)
        websocket_queue(s, data, len); /* one message per frame, through session_queue_wire */
    else
        session_queue_wire(s, data, len);
    stats.frames_out_total++;
}

void session_discard_output(struct session *s)
{
    size_t len = evbuffer_get_length(s->out);
    if (len <= s->out_partial) return;
    struct evbuffer *kept = evbuffer_new();
    if (kept == NULL) return;
    /* a new buffer gives every chain back at once; draining the tail is not in libevent's API */
    evbuffer_remove_buffer(s->out, kept, s->out_partial);
    evbuffer_free(s->out);
    s->out = kept;
    out_total -= len - s->out_partial;
}

void session_release_output(struct session *s)
{
    out_total -= evbuffer_get_length(s->out);
}

void session_on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct session *s = arg;
    if (what & EV_TIMEOUT) {
        session_doom(s); /* a closing session that did not read its bye in time */
        return;
    }
    session_write_out(s);
}

void session_send_bytes(struct session *s, const void *data, size_t len)
{
    if (s->state == SESSION_CLOSING) return;
    session_queue(s, data, len);
    size_t queued = evbuffer_get_length(s->out);
    if (queued > session_ctx.limits.output_limit) {
        static struct log_every slow_log = LOG_EVERY(10);
        char addr[64];
        log_every(&slow_log, LOG_LEVEL_WARN,
                  "session %s (%s): output buffer over %zu bytes, dropped as a slow reader",
                  s->user_len ? s->user : "-", session_addr_text(s, addr, sizeof addr),
                  session_ctx.limits.output_limit);
        session_drop_slow(s, "slow reader: output buffer full");
        return;
    }
    size_t budget = session_ctx.limits.output_budget;
    if (budget > 0 && out_total > budget && session_budget_victim(s, queued)) return;
    session_mark_dirty(s);
}

void session_reply(struct session *s, int has_id, uint64_t id, int code, const char *error)
{
    stats_count_reply(&stats, code);
    if (code == 200 && !has_id) return;
    msgpack_packer *pk = reply_begin_in(&reply_buf, has_id, id, code, code != 200);
    if (code != 200) {
        reply_pack_str(pk, "error");
        reply_pack_str(pk, error);
    }
    size_t n = codec_frame_end(&reply_buf);
    session_send_bytes(s, reply_buf.sb.data, n);
}

/* ---- reading ---- */

static void malformed(struct session *s, const struct frame_info *info, const char *why)
{
    stats.malformed_frames_total++;
    char addr[64];
    log_debug("malformed frame from %s: %s", session_addr_text(s, addr, sizeof addr), why);
    session_reply(s, info->has_id, info->id, 400, why);
    if (++s->malformed >= SESSION_MAX_MALFORMED) session_close(s, 400, "too many malformed frames");
}

/* request_rate as a GCRA (a token bucket kept in one timestamp): a request is due every
 * 1/request_rate s, and may come up to request_burst - 1 intervals early. */
static int within_request_rate(struct session *s)
{
    int rate = session_ctx.limits.request_rate;
    if (rate == 0 || s->kind != SESSION_CLIENT) return 1;
    int64_t now = clock_monotonic_us(), interval = 1000000 / rate;
    if (s->rate_tat_us <= now) {
        s->rate_tat_us = now;
        s->rate_refused = 0; /* the whole burst is back: the client slowed down */
    }
    if (s->rate_tat_us - now > (int64_t)(session_ctx.limits.request_burst - 1) * interval) return 0;
    s->rate_tat_us += interval;
    return 1;
}

/* Over request_rate: 429 for this request. A client that has request_burst requests refused
 * before its budget has filled up again is not slowing down, and is closed. */
static void refuse_over_rate(struct session *s, const struct frame_info *info)
{
    stats.rate_limited_total++;
    if (++s->rate_refused > (uint32_t)session_ctx.limits.request_burst) {
        session_close(s, 429, "request rate exceeded");
        return;
    }
    session_reply(s, info->has_id, info->id, 429, "request rate exceeded");
}

static void handle_body(struct session *s, const uint8_t *body, size_t len)
{
    struct frame_info info;
    enum frame_error err = frame_check(body, len, &info);
    stats.frames_in_total++;
    if (err != FRAME_OK) {
        malformed(s, &info, frame_error_text(err));
        return;
    }
    if (!within_request_rate(s)) {
        refuse_over_rate(s, &info);
        return;
    }
    session_ctx.on_frame(s, &info, body, len);
}

/* Handlers one session may have running at once (each holds its decoded frame). */
static unsigned max_inflight(const struct session *s)
{
    return s->state == SESSION_ANONYMOUS && s->kind == SESSION_CLIENT
               ? SESSION_MAX_INFLIGHT_ANONYMOUS
               : SESSION_MAX_INFLIGHT;
}

/* A header over max_frame: `bye` 413. One that is the start of a TLS handshake record (0x16
 * 0x03) is a TLS client on a clear port: said in the log, for whoever set that client up. */
static void close_oversize(struct session *s, const uint8_t *header)
{
    if (header[0] == 0x16 && header[1] == 0x03 && s->tls == NULL) {
        static struct log_every tls_hello_log = LOG_EVERY(10);
        char addr[64];
        log_every(&tls_hello_log, LOG_LEVEL_INFO,
                  "TLS handshake on a plain TCP port from %s: closed (TLS clients connect to "
                  "tls_listen)",
                  session_addr_text(s, addr, sizeof addr));
    }
    session_close(s, 413, "frame too large");
}

/* May S take another frame now? Not once closing, nor with its handlers in flight at the
 * limit: reading pauses then, and session_handler_done resumes it. */
static int may_take_frame(struct session *s)
{
    if (s->state == SESSION_CLOSING) return 0;
    if (s->inflight >= max_inflight(s)) {
        s->read_paused = 1;
        event_del(&s->read_ev);
        return 0;
    }
    return 1;
}

/* The whole length (header included) of the frame at the start of DATA (AVAIL bytes, at least
 * its header): 0 after closing S for a header no frame may have. */
static size_t frame_length(struct session *s, const uint8_t *data, size_t avail)
{
    uint32_t len;
    switch (frame_split(data, avail, session_ctx.limits.max_frame, &len)) {
    case FRAME_EMPTY: session_close(s, 400, "empty frame"); return 0;
    case FRAME_OVERSIZE: close_oversize(s, data); return 0;
    default: return FRAME_HEADER_LEN + (size_t)len;
    }
}

static void take_frame(struct session *s, const uint8_t *frame, size_t whole)
{
    stats.bytes_in_total += whole;
    handle_body(s, frame + FRAME_HEADER_LEN, whole - FRAME_HEADER_LEN);
}

/* Runs the whole frames at the start of DATA (N bytes just read, with nothing buffered before
 * them) where they lie: the bytes taken. What is left (a partial frame, or frames waiting for
 * the in-flight limit) goes to s->in. */
static size_t handle_unbuffered(struct session *s, const uint8_t *data, size_t n)
{
    size_t at = 0;
    while (n - at >= FRAME_HEADER_LEN && may_take_frame(s)) {
        size_t whole = frame_length(s, data + at, n - at);
        if (whole == 0 || n - at < whole) break;
        take_frame(s, data + at, whole);
        at += whole;
    }
    return s->state == SESSION_CLOSING ? n : at;
}

/* Runs every whole frame buffered in s->in, until the session closes or has too many
 * requests in flight. */
static void handle_buffered(struct session *s)
{
    struct evbuffer *in = s->in;
    while (may_take_frame(s)) {
        uint8_t header[FRAME_HEADER_LEN];
        if (evbuffer_copyout(in, header, sizeof header) < (ev_ssize_t)sizeof header) return;
        size_t whole = frame_length(s, header, sizeof header);
        if (whole == 0 || evbuffer_get_length(in) < whole) return;
        const uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)whole);
        if (frame == NULL) return; /* out of memory: the frame waits for the next read */
        take_frame(s, frame, whole);
        evbuffer_drain(in, whole);
    }
}

void session_handle_frames(struct session *s)
{
    if (s->in == NULL) return;
    handle_buffered(s);
    /* a plain TCP session holds an input buffer only while bytes wait in it */
    if (s->tls == NULL && s->ws == NULL && evbuffer_get_length(s->in) == 0) {
        evbuffer_free(s->in);
        s->in = NULL;
    }
}

/* Reads what FD has (at most SESSION_READ_CHUNK bytes) for S, a plain TCP session, into one
 * scratch buffer: one syscall (evbuffer_read first asks the socket how much it holds, an ioctl
 * per read), and the frames read whole while nothing was buffered run from there, without a
 * copy into s->in. */
static int read_plain(struct session *s, evutil_socket_t fd)
{
    static uint8_t scratch[SESSION_READ_CHUNK];
    ssize_t n = read(fd, scratch, sizeof scratch);
    if (n <= 0) return (int)n;
    size_t taken = 0;
    if (s->in == NULL || evbuffer_get_length(s->in) == 0)
        taken = handle_unbuffered(s, scratch, (size_t)n);
    if (taken < (size_t)n) {
        if (s->in == NULL) s->in = evbuffer_new();
        if (s->in == NULL || evbuffer_add(s->in, scratch + taken, (size_t)n - taken) != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    return (int)n;
}

void session_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    if (what & EV_TIMEOUT) {
        session_read_timed_out(s);
        return;
    }
    int n = s->ws != NULL ? websocket_read(s, SESSION_READ_CHUNK) : read_plain(s, fd);
    int gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    session_handle_frames(s); /* frames that arrived before an EOF still count */
    if (gone) session_doom(s);
}

void session_read_timed_out(struct session *s)
{
    stats.idle_timeouts_total++;
    session_close(s, 408, s->state == SESSION_ANONYMOUS ? "login timeout" : "idle timeout");
}

void session_handler_done(struct session *s)
{
    if (s->inflight > 0) s->inflight--;
    if (s->read_paused && s->state != SESSION_CLOSING && s->inflight < max_inflight(s)) {
        s->read_paused = 0;
        session_arm_read(s);
        /* frames may already be buffered: handle them from the loop, never from inside a
         * handler (which may itself run inside handle_frames, before its frame is drained) */
        event_active(&s->read_ev, EV_READ, 0);
    }
}
