/* session_tls: a client session over TLS (tls_listen). The handshake runs inside the first
 * reads; after it the session is the TCP one, with OpenSSL between its buffers and its socket.
 * A handshake that fails is logged and closed; one still unfinished when the login deadline
 * (or shutdown) closes the session is logged and closed without a `bye` (no TLS to send it). */
#include <errno.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "session_internal.h"
#include "tls.h"

static struct log_every tls_log = LOG_EVERY(10);

static void log_failure(const struct session *s, const char *what, const char *why)
{
    char addr[64];
    log_every(&tls_log, LOG_LEVEL_INFO, "TLS %s from %s: %s", what,
              session_addr_text(s, addr, sizeof addr), why);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct session *s = arg;
    if (what & EV_TIMEOUT) {
        session_read_timed_out(s);
        return;
    }
    int was_ready = tls_conn_ready(s->tls), more = 0;
    char why[TLS_WHY_MAX];
    ssize_t n = tls_conn_read(s->tls, s->in, SESSION_READ_CHUNK, &more, why, sizeof why);
    if (n == TLS_IO_ERROR || (n == TLS_IO_CLOSED && !was_ready))
        log_failure(s, was_ready ? "error" : "handshake failed",
                    n == TLS_IO_CLOSED ? "closed by the client" : why);
    session_handle_frames(s); /* frames that came before the end still count */
    if (n == TLS_IO_ERROR || n == TLS_IO_CLOSED) {
        session_doom(s);
        return;
    }
    /* bytes TLS decrypted but kept (past the read chunk) wake no socket event: come back */
    if (more && !s->read_paused && s->state != SESSION_CLOSING)
        event_active(&s->read_ev, EV_READ, 0);
}

int session_start_tls(struct session *s, struct tls_context *ctx)
{
    if (s->in == NULL) s->in = evbuffer_new();
    s->tls = s->in != NULL ? tls_conn_new(ctx, s->fd) : NULL;
    if (s->tls == NULL) {
        session_close(s, 0, NULL);
        return -1;
    }
    event_del(&s->read_ev);
    event_assign(&s->read_ev, session_ctx.base, s->fd, EV_READ | EV_PERSIST, on_readable, s);
    session_arm_read(s);
    return 0;
}

ssize_t session_tls_write(struct session *s)
{
    char why[TLS_WHY_MAX];
    ssize_t n = tls_conn_write(s->tls, s->out, why, sizeof why);
    if (n >= 0) return n;
    if (n == TLS_IO_AGAIN) {
        errno = EAGAIN;
        return -1;
    }
    if (!tls_conn_ready(s->tls))
        log_failure(s, "handshake not finished",
                    s->state == SESSION_CLOSING ? "closed (login timeout or shutdown)" : why);
    else if (n == TLS_IO_ERROR)
        log_failure(s, "error", why);
    errno = EPIPE;
    return -1;
}
