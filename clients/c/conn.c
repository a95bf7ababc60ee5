/* conn: opening the socket (TCP with a connect timeout, or a Unix socket) and closing it. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mp_internal.h"

static void describe(const mp_client *c, char *buf, size_t len)
{
    if (c->addr.is_unix)
        snprintf(buf, len, "%s", c->addr.host);
    else
        snprintf(buf, len, "%s:%u", c->addr.host, c->addr.port);
}

static mp_err connect_error(mp_client *c, int err, int timeout_ms)
{
    char where[300];
    describe(c, where, sizeof where);
    switch (err) {
    case ECONNREFUSED:
        return mp_fail(c, MP_ERR_REFUSED, 0, "connection to %s refused", where);
    case ENOENT:
        return mp_fail(c, MP_ERR_REFUSED, 0, "no socket at %s", where);
    case ETIMEDOUT:
        return mp_fail(c, MP_ERR_TIMEOUT, 0, "connection to %s timed out after %d ms", where,
                       timeout_ms);
    case EACCES:
    case EPERM:
        return mp_fail(c, MP_ERR_IO, 0, "permission denied on %s", where);
    default:
        return mp_fail(c, MP_ERR_IO, 0, "connect to %s: %s", where, strerror(err));
    }
}

/* Connects FD to SA, waiting at most until DEADLINE. Returns 0 or an errno value. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int rc;
    /* A Unix socket with a full backlog says EAGAIN and is not connecting: try again. */
    while ((rc = connect(fd, sa, len)) != 0 && errno == EAGAIN) {
        if (mp_now_ms() >= deadline) return ETIMEDOUT;
        poll(NULL, 0, 10);
    }
    if (rc == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) return errno;
    for (;;) {
        int64_t left = deadline - mp_now_ms();
        if (left <= 0) return ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return ETIMEDOUT;
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) return errno;
        return err;
    }
}

static void adopt(mp_client *c, int fd)
{
    c->fd = fd;
    mp_buf_reset(&c->in);
    mp_buf_reset(&c->out);
    c->logged_in = 0;
    c->acked_mid = 0;
}

/* The TLS handshake on the socket just connected, within what is left of the timeout. */
static mp_err start_tls(mp_client *c, int64_t deadline)
{
    char where[300];
    describe(c, where, sizeof where);
    mp_err err = mp_tls_connect(c, deadline, where);
    if (err != MP_OK) {
        close(c->fd);
        c->fd = -1;
    }
    return err;
}

static mp_err open_tcp(mp_client *c, int timeout_ms)
{
    char port[8];
    snprintf(port, sizeof port, "%u", c->addr.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list;
    int rc = getaddrinfo(c->addr.host, port, &hints, &list);
    if (rc != 0)
        return mp_fail(c, MP_ERR_RESOLVE, 0, "cannot resolve %s: %s", c->addr.host,
                       gai_strerror(rc));
    int64_t deadline = mp_now_ms() + timeout_ms;
    int err = ECONNREFUSED;
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect_within(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (err == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            freeaddrinfo(list);
            adopt(c, fd);
            return c->tls ? start_tls(c, deadline) : MP_OK;
        }
        close(fd);
        if (err == ETIMEDOUT) break;
    }
    freeaddrinfo(list);
    return connect_error(c, err, timeout_ms);
}

static mp_err open_unix(mp_client *c, int timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(c->addr.host) >= sizeof sa.sun_path)
        return mp_fail(c, MP_ERR_INVAL, 0, "socket path too long: %s", c->addr.host);
    strcpy(sa.sun_path, c->addr.host);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return mp_fail(c, MP_ERR_IO, 0, "socket: %s", strerror(errno));
    int err = connect_within(fd, (struct sockaddr *)&sa, sizeof sa, mp_now_ms() + timeout_ms);
    if (err != 0) {
        close(fd);
        return connect_error(c, err, timeout_ms);
    }
    adopt(c, fd);
    return MP_OK;
}

mp_err mp_conn_open(mp_client *c, int timeout_ms)
{
    if (c->fd >= 0) mp_conn_close(c, MP_ERR_CLOSED);
    return c->addr.is_unix ? open_unix(c, timeout_ms) : open_tcp(c, timeout_ms);
}

void mp_conn_close(mp_client *c, mp_err why)
{
    if (c->fd < 0) return;
    mp_tls_close(c);
    close(c->fd);
    c->fd = -1;
    mp_buf_reset(&c->in);
    mp_buf_reset(&c->out);
    c->logged_in = 0;
    c->acked_mid = 0;
    mp_pending_fail_all(c, why);
}

static mp_err remember(mp_client *c, int is_unix, const char *where, uint16_t port)
{
    char *copy = strdup(where);
    if (copy == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    free(c->addr.host);
    c->addr.host = copy;
    c->addr.is_unix = is_unix;
    c->addr.port = port;
    return MP_OK;
}

static mp_err connect_to(mp_client *c, int is_unix, const char *where, uint16_t port,
                         int timeout_ms)
{
    if (c == NULL) return MP_ERR_INVAL;
    mp_clear_error(c);
    if (where == NULL || where[0] == '\0' || timeout_ms <= 0)
        return mp_fail(c, MP_ERR_INVAL, 0, "connect needs an address and a timeout > 0");
    if (c->depth > 0) return mp_fail(c, MP_ERR_STATE, 0, "cannot connect inside a callback");
    mp_conn_close(c, MP_ERR_CLOSED);
    mp_err err = remember(c, is_unix, where, port);
    if (err != MP_OK) return err;
    return mp_conn_open(c, timeout_ms);
}

mp_err mp_client_connect(mp_client *c, const char *host, uint16_t port, int timeout_ms)
{
    return connect_to(c, 0, host, port, timeout_ms);
}

mp_err mp_client_connect_unix(mp_client *c, const char *path, int timeout_ms)
{
    return connect_to(c, 1, path, 0, timeout_ms);
}

void mp_client_close(mp_client *c)
{
    if (c == NULL || c->fd < 0) return;
    mp_fail(c, MP_ERR_CLOSED, 0, "connection closed by the program");
    mp_conn_close(c, MP_ERR_CLOSED);
}

int mp_client_is_connected(const mp_client *c)
{
    return c != NULL && c->fd >= 0;
}
