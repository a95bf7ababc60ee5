/* websocket: the WebSocket codec of a session. Incoming messages are unmasked and reassembled
 * by wslay's frame layer and handed to the session as the length-prefixed frames the TCP path
 * reads; outgoing frames are rewrapped as one binary message each. */
#include "websocket.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <wslay/wslay.h>

#include "frame.h"
#include "log.h"
#include "session_internal.h"
#include "stats.h"
#include "tls.h"

#define CLOSE_NORMAL 1000
#define CLOSE_PROTOCOL_ERROR 1002
#define CLOSE_UNSUPPORTED_DATA 1003
#define CLOSE_MESSAGE_TOO_BIG 1009
#define CLOSE_INTERNAL_ERROR 1011
#define CONTROL_MAX 125 /* bytes of a control frame's payload (RFC 6455 5.5) */

struct websocket {
    wslay_frame_context_ptr rx; /* the receiving state machine, only while it holds something:
                                   it carries a 4 KiB buffer, too much for an idle session */
    uint64_t fed;               /* bytes handed to rx since it was made */
    uint64_t parsed;            /* of those, the bytes of the frames it returned (headers at their
                                   shortest: never more than it really took) */
    struct evbuffer *preread;   /* bytes read with the HTTP request: taken before the socket's */
    struct evbuffer *fragments; /* the message being reassembled, while it comes in pieces */
    evutil_socket_t fd;
    struct tls_conn *tls; /* the session's TLS stream (WSS), NULL in clear: not owned */
    size_t budget;        /* bytes this read may still take from the socket */
    size_t got;           /* bytes this read took */
    int read_errno;       /* of the last failed recv, 0 = none */
    uint8_t eof;          /* the peer shut its side */
    uint8_t in_message;   /* a message has begun and its last frame has not come */
    uint8_t stopped;      /* nothing more is decoded: a failure waits, or a message too big */
    uint16_t fail_code;   /* the close code of the failure that waits, 0 = none */
    const char *fail_why; /* its reason (static); NULL: the peer closed, no `bye` */
    uint16_t close_code;  /* what the close frame carries, 0 = from the `bye` code */
    uint64_t frame_got;   /* payload bytes of the current frame received so far */
    uint64_t message_len; /* body bytes of the current message so far */
    uint8_t control_len;
    uint8_t control[CONTROL_MAX];
};

static void send_frame(struct session *s, uint8_t opcode, const uint8_t *payload, size_t len);

/* ---- receiving ---- */

/* recv through TLS: the same results (bytes, 0 at the end, -1 with errno). */
static ssize_t recv_tls(struct websocket *ws, uint8_t *buf, size_t len)
{
    char why[TLS_WHY_MAX];
    ssize_t n = tls_conn_recv(ws->tls, buf, len, why, sizeof why);
    if (n >= 0) return n;
    if (n == TLS_IO_AGAIN) {
        errno = EAGAIN;
        return -1;
    }
    if (n == TLS_IO_CLOSED) return 0;
    errno = EPROTO; /* a TLS failure: the session ends like on a reset */
    return -1;
}

static ssize_t on_recv(uint8_t *buf, size_t len, int flags, void *arg)
{
    (void)flags;
    struct websocket *ws = arg;
    if (ws->preread != NULL) {
        int n = evbuffer_remove(ws->preread, buf, len);
        if (n > 0) ws->fed += (uint64_t)n;
        if (evbuffer_get_length(ws->preread) == 0) {
            evbuffer_free(ws->preread);
            ws->preread = NULL;
        }
        if (n > 0) return n;
    }
    if (ws->budget == 0) return 0; /* wslay: "want read"; the rest waits for the next pass */
    ssize_t n = ws->tls != NULL ? recv_tls(ws, buf, len < ws->budget ? len : ws->budget)
                                : recv(ws->fd, buf, len < ws->budget ? len : ws->budget, 0);
    if (n > 0) {
        ws->budget -= (size_t)n;
        ws->got += (size_t)n;
        ws->fed += (uint64_t)n;
    } else if (n == 0) {
        ws->eof = 1;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        ws->read_errno = errno;
    }
    return n > 0 ? n : 0;
}

static const struct wslay_frame_callbacks rx_callbacks = {NULL, on_recv, NULL};

/* Stops decoding; S closes with CODE (and `bye` 400 WHY, unless WHY is NULL) once the frames
 * decoded before are handled, as a malformed TCP stream would. */
static void fail(struct session *s, uint16_t code, const char *why)
{
    struct websocket *ws = s->ws;
    ws->stopped = 1;
    ws->fail_code = code;
    ws->fail_why = why;
    if (why != NULL) {
        char addr[64];
        stats.malformed_frames_total++;
        log_debug("websocket from %s: %s", session_addr_text(s, addr, sizeof addr), why);
    }
}

static void fail_now(struct session *s)
{
    struct websocket *ws = s->ws;
    ws->close_code = ws->fail_code;
    session_close(s, ws->fail_why ? 400 : 0, ws->fail_why);
}

static void add_frame_header(struct evbuffer *in, uint64_t len)
{
    uint8_t header[FRAME_HEADER_LEN];
    frame_write_length(header, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
    evbuffer_add(in, header, sizeof header);
}

/* A message over max_frame goes on as a frame header over it: the session's framing check
 * answers it exactly as on TCP (`bye` 413), and the close frame says 1009. */
static void hand_on_too_big(struct session *s, uint64_t len)
{
    struct websocket *ws = s->ws;
    add_frame_header(s->in, len);
    ws->stopped = 1;
    if (ws->fragments != NULL) {
        evbuffer_free(ws->fragments);
        ws->fragments = NULL;
    }
}

static void on_control(struct session *s, uint8_t opcode)
{
    struct websocket *ws = s->ws;
    switch (opcode) {
    case WSLAY_PING: {
        /* a client that pings without reading gets no pong past output_limit: its pings then
         * cost it its own bandwidth only */
        if (session_queued(s) >= session_ctx.limits.output_limit) break;
        send_frame(s, WSLAY_PONG, ws->control, ws->control_len);
        session_mark_dirty(s);
        break;
    }
    case WSLAY_PONG:
        break;
    case WSLAY_CONNECTION_CLOSE:
        fail(s, CLOSE_NORMAL, NULL);
        break;
    default:
        fail(s, CLOSE_PROTOCOL_ERROR, "websocket: unknown control frame");
        break;
    }
}

/* The first chunk of a data frame: checks where it stands in a message and its size. Returns
 * 0 to take its payload, -1 when decoding stopped. */
static int begin_data_frame(struct session *s, const struct wslay_frame_iocb *io)
{
    struct websocket *ws = s->ws;
    if (io->opcode == WSLAY_TEXT_FRAME && !ws->in_message) {
        fail(s, CLOSE_UNSUPPORTED_DATA, "websocket: text messages are not accepted, send binary");
        return -1;
    }
    int starts = io->opcode == WSLAY_BINARY_FRAME,
        continues = io->opcode == WSLAY_CONTINUATION_FRAME;
    if (!(starts && !ws->in_message) && !(continues && ws->in_message)) {
        fail(s, CLOSE_PROTOCOL_ERROR, "websocket: frame out of its message");
        return -1;
    }
    uint64_t total = ws->message_len + io->payload_length;
    if (total > session_ctx.limits.max_frame || total < ws->message_len) {
        hand_on_too_big(s, total < ws->message_len ? UINT64_MAX : total);
        return -1;
    }
    if (starts && io->fin) {
        add_frame_header(s->in, io->payload_length); /* whole at once: its body streams to in */
    } else if (starts) {
        ws->fragments = evbuffer_new();
        if (ws->fragments == NULL) {
            fail(s, CLOSE_INTERNAL_ERROR, "websocket: no memory for a fragmented message");
            return -1;
        }
    }
    ws->in_message = 1;
    ws->message_len = total;
    return 0;
}

static void end_message(struct session *s)
{
    struct websocket *ws = s->ws;
    if (ws->fragments != NULL) {
        add_frame_header(s->in, ws->message_len);
        evbuffer_add_buffer(s->in, ws->fragments);
        evbuffer_free(ws->fragments);
        ws->fragments = NULL;
    }
    ws->in_message = 0;
    ws->message_len = 0;
}

/* One piece of a frame, as wslay returns it. */
static void on_chunk(struct session *s, const struct wslay_frame_iocb *io)
{
    struct websocket *ws = s->ws;
    int control = wslay_is_ctrl_frame(io->opcode);
    if (ws->frame_got == 0) { /* the frame's first piece */
        uint64_t n = io->payload_length;
        ws->parsed += 2 + (n >= 65536 ? 8 : n >= 126 ? 2 : 0) + (io->mask ? 4 : 0) + n;
        if (io->rsv != 0 || !io->mask) {
            fail(s, CLOSE_PROTOCOL_ERROR, "websocket: unmasked frame or reserved bits set");
            return;
        }
        if (control)
            ws->control_len = 0;
        else if (begin_data_frame(s, io) != 0)
            return;
    }
    ws->frame_got += io->data_length;
    if (control) {
        memcpy(ws->control + ws->control_len, io->data, io->data_length); /* wslay: <= 125 */
        ws->control_len = (uint8_t)(ws->control_len + io->data_length);
    } else if (io->data_length > 0) {
        evbuffer_add(ws->fragments ? ws->fragments : s->in, io->data, io->data_length);
    }
    if (ws->frame_got < io->payload_length) return;
    ws->frame_got = 0;
    if (control)
        on_control(s, io->opcode);
    else if (io->fin)
        end_message(s);
}

/* Frees the receiving state machine when it holds no byte and no partial frame. */
static void release_rx_when_empty(struct websocket *ws)
{
    if (ws->rx == NULL || ws->frame_got != 0 || ws->fed != ws->parsed) return;
    wslay_frame_context_free(ws->rx);
    ws->rx = NULL;
    ws->fed = ws->parsed = 0;
}

int websocket_read(struct session *s, size_t max)
{
    struct websocket *ws = s->ws;
    if (ws->rx == NULL && wslay_frame_context_init(&ws->rx, &rx_callbacks, ws) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (ws->fail_code != 0 && evbuffer_get_length(s->in) == 0) {
        fail_now(s); /* the frames before the failure are handled: close */
        errno = EAGAIN;
        return -1;
    }
    ws->budget = max;
    ws->got = 0;
    ws->read_errno = 0;
    while (!ws->stopped) {
        struct wslay_frame_iocb io;
        ssize_t r = wslay_frame_recv(ws->rx, &io);
        if (r == WSLAY_ERR_WANT_READ) break;
        if (r < 0) {
            fail(s, CLOSE_PROTOCOL_ERROR, "websocket: malformed frame");
            break;
        }
        on_chunk(s, &io);
    }
    /* come back without the socket's help: to close after the frames before a failure, or for
     * bytes wslay holds when the budget ran out */
    if (ws->fail_code != 0 || (ws->budget == 0 && !ws->stopped) ||
        (ws->tls != NULL && !ws->stopped && !ws->eof && tls_conn_pending(ws->tls)))
        event_active(&s->read_ev, EV_READ, 0); /* TLS-held bytes wake no socket event either */
    if (!ws->stopped) release_rx_when_empty(ws);
    if (ws->got > 0) return (int)ws->got;
    if (ws->eof) return 0;
    errno = ws->read_errno ? ws->read_errno : EAGAIN;
    return -1;
}

/* ---- sending ---- */

/* One frame layer for sending serves every session: it writes to an evbuffer, so each send
 * completes at once and leaves no state behind. */
static wslay_frame_context_ptr tx;
static struct session *tx_session;

static ssize_t on_send(const uint8_t *data, size_t len, int flags, void *arg)
{
    (void)flags, (void)arg;
    session_queue_wire(tx_session, data, len);
    return (ssize_t)len;
}

static const struct wslay_frame_callbacks tx_callbacks = {on_send, NULL, NULL};

/* Queues one whole, unmasked frame to S. */
static void send_frame(struct session *s, uint8_t opcode, const uint8_t *payload, size_t len)
{
    struct wslay_frame_iocb io = {
        .fin = 1, .opcode = opcode, .payload_length = len, .data = payload, .data_length = len};
    if (tx == NULL && wslay_frame_context_init(&tx, &tx_callbacks, NULL) != 0) return;
    tx_session = s;
    if (wslay_frame_send(tx, &io) < 0) log_error("websocket: cannot frame a message");
    tx_session = NULL;
}

void websocket_queue(struct session *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len >= FRAME_HEADER_LEN) {
        size_t body = frame_read_length(p);
        if (body > len - FRAME_HEADER_LEN) break; /* cannot happen: callers queue whole frames */
        send_frame(s, WSLAY_BINARY_FRAME, p + FRAME_HEADER_LEN, body);
        p += FRAME_HEADER_LEN + body;
        len -= FRAME_HEADER_LEN + body;
    }
}

void websocket_queue_close(struct session *s, int code)
{
    struct websocket *ws = s->ws;
    uint16_t close = ws->close_code ? ws->close_code
                     : code == 413  ? CLOSE_MESSAGE_TOO_BIG
                                    : CLOSE_NORMAL;
    uint8_t payload[2] = {(uint8_t)(close >> 8), (uint8_t)close};
    send_frame(s, WSLAY_CONNECTION_CLOSE, payload, sizeof payload);
}

size_t websocket_frame_size(struct evbuffer *out, const struct evbuffer_ptr *p)
{
    uint8_t h[10];
    struct evbuffer_ptr at = *p;
    ev_ssize_t n = evbuffer_copyout_from(out, &at, h, sizeof h);
    if (n < 2) return 0;
    uint64_t len = h[1] & 0x7f;
    size_t header = 2;
    if (len == 126) {
        if (n < 4) return 0;
        len = (uint64_t)h[2] << 8 | h[3];
        header = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | h[i];
        header = 10;
    }
    return header + (size_t)len;
}

/* ---- lifecycle ---- */

void websocket_free(struct websocket *ws)
{
    if (ws->rx) wslay_frame_context_free(ws->rx);
    if (ws->preread) evbuffer_free(ws->preread);
    if (ws->fragments) evbuffer_free(ws->fragments);
    free(ws);
}

struct session *websocket_open(evutil_socket_t fd, struct tls_conn *tls, struct evbuffer *preread)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    struct websocket *ws = calloc(1, sizeof *ws);
    if (ws == NULL || getpeername(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
        if (ws) websocket_free(ws);
        evbuffer_free(preread);
        if (tls) tls_conn_free(tls);
        evutil_closesocket(fd);
        return NULL;
    }
    ws->fd = fd;
    ws->tls = tls;
    if (evbuffer_get_length(preread) > 0)
        ws->preread = preread;
    else
        evbuffer_free(preread);
    struct session *s = session_open_websocket(fd, (struct sockaddr *)&addr, (int)addr_len, ws, tls);
    if (s == NULL) {
        websocket_free(ws);
        if (tls) tls_conn_free(tls);
        evutil_closesocket(fd);
        return NULL;
    }
    if ((ws->preread != NULL || (tls != NULL && tls_conn_pending(tls))) &&
        s->state != SESSION_CLOSING)
        event_active(&s->read_ev, EV_READ, 0);
    return s;
}
