/* server: evconnlistener per configured address, plus the admin socket (mode 0600). */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "listener.h"
#include "log.h"
#include "netaddr.h"
#include "reply.h"
#include "session.h"
#include "tls_server.h"

#define MAX_LISTENERS 16

static struct listener *listeners[MAX_LISTENERS];
static size_t listener_count;
static char admin_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* What a listener's connections are. */
struct port {
    enum session_kind kind;
    int tls; /* the client port over TLS (tls_listen) */
};

static const struct port client_port = {SESSION_CLIENT, 0};
static const struct port tls_port = {SESSION_CLIENT, 1};
static const struct port admin_port = {SESSION_ADMIN, 0};

/* Refuses a connection we cannot take: a best-effort `bye` 503, except on a TLS port, which
 * just closes (a `bye` in clear would mean nothing to a TLS client). */
static void refuse(evutil_socket_t fd, const struct port *port, const char *why)
{
    static struct log_every refused_log = LOG_EVERY(10);
    log_every(&refused_log, LOG_LEVEL_WARN, "refused a connection: %s", why);
    size_t n;
    const char *bye = reply_encode_bye(503, why, &n);
    if (!port->tls && send(fd, bye, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* the client is gone */
    }
    evutil_closesocket(fd);
    stats.connections_rejected_total++;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int len, void *arg)
{
    (void)l;
    const struct port *port = arg;
    if (broker.shutting_down) return refuse(fd, port, "shutting down");
    if (port->kind == SESSION_CLIENT &&
        session_client_count() >= (size_t)broker.conf.max_connections)
        return refuse(fd, port, "too many connections");
    struct session *s = session_open(fd, addr, len, port->kind);
    if (s == NULL) return refuse(fd, port, "out of sessions");
    stats.connections_total++;
    if (port->tls) session_start_tls(s, tls_server_context());
}

static int add_client_listener(struct sockaddr *sa, int len, const char *name,
                               const struct port *port)
{
    if (listener_count == MAX_LISTENERS) {
        log_error("listen %s: at most %d listeners", name, MAX_LISTENERS);
        return -1;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
    if (broker.conf.reuseport) flags |= LEV_OPT_REUSEABLE_PORT;
    struct listener *l = listener_new(broker.base, sa, len, flags, on_accept, (void *)port, name);
    if (l == NULL) {
        log_error("cannot listen on %s: %s", name, strerror(errno));
        return -1;
    }
    listeners[listener_count++] = l;
    log_info("listening on %s%s", name, port->tls ? " (TLS)" : "");
    return 0;
}

/* Makes way for our admin socket at SUN's path: a socket no one answers on (left by a broker
 * that died) is removed; a live broker's socket is left alone, or it would lose its console.
 * Returns 0, SERVER_IN_USE, or -1 (the path is something else or cannot be checked). */
static int clear_stale_admin_socket(const struct sockaddr_un *sun)
{
    const char *path = sun->sun_path;
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        log_error("admin_socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("admin_socket %s: exists and is not a socket; refusing to replace it", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("admin_socket %s: socket: %s", path, strerror(errno));
        return -1;
    }
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    int err = errno;
    close(fd);
    if (rc == 0) {
        log_error("admin_socket %s: another broker is running and answers on it; stop it, or "
                  "give this one its own admin_socket",
                  path);
        return SERVER_IN_USE;
    }
    if (err != ECONNREFUSED) {
        log_error("admin_socket %s: cannot tell whether a broker answers on it: %s", path,
                  strerror(err));
        return -1;
    }
    log_info("admin_socket %s: removing a stale socket (no broker answers on it)", path);
    if (unlink(path) != 0 && errno != ENOENT) {
        log_error("admin_socket %s: cannot remove the stale socket: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

struct listener *server_listen_admin(struct event_base *base, const char *path,
                                     evconnlistener_cb cb, void *arg, int *rc)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    *rc = -1;
    if (strlen(path) >= sizeof sun.sun_path) {
        log_error("admin_socket %s: path too long", path);
        return NULL;
    }
    strcpy(sun.sun_path, path);
    int cleared = clear_stale_admin_socket(&sun);
    if (cleared != 0) {
        *rc = cleared;
        return NULL;
    }
    mode_t old = umask(0177);
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    struct listener *l = listener_new(base, (struct sockaddr *)&sun, sizeof sun, flags, cb, arg,
                                      path);
    umask(old);
    if (l == NULL) {
        log_error("cannot listen on %s: %s", path, strerror(errno));
        return NULL;
    }
    chmod(path, 0600);
    log_info("listening on %s (admin)", path);
    *rc = 0;
    return l;
}

static int listen_admin(const char *path)
{
    if (listener_count == MAX_LISTENERS) {
        log_error("admin_socket %s: at most %d listeners", path, MAX_LISTENERS);
        return -1;
    }
    int rc;
    struct listener *l =
        server_listen_admin(broker.base, path, on_accept, (void *)&admin_port, &rc);
    if (l == NULL) return rc;
    listeners[listener_count++] = l;
    snprintf(admin_path, sizeof admin_path, "%s", path);
    return 0;
}

/* A client listener on each address of ADDRS (the config key KEY). */
static int listen_all(const char *key, const struct conf_list *addrs, const struct port *port)
{
    for (size_t i = 0; i < addrs->count; i++) {
        const char *addr = addrs->items[i];
        struct sockaddr_storage ss;
        socklen_t len;
        char why[NETADDR_WHY_MAX];
        if (netaddr_resolve(addr, &ss, &len, why, sizeof why) != 0) {
            log_error("%s %s: %s", key, addr, why);
            return -1;
        }
        if (add_client_listener((struct sockaddr *)&ss, (int)len, addr, port) != 0) return -1;
    }
    return 0;
}

int server_listen(void)
{
    /* the admin socket first: a second broker with the same config is then refused for what
     * it is (SERVER_IN_USE), not for the client port it would also find taken */
    if (broker.conf.admin_socket != NULL) {
        int rc = listen_admin(broker.conf.admin_socket);
        if (rc != 0) return rc;
    }
    if (listen_all("listen", &broker.conf.listen, &client_port) != 0) return -1;
    return listen_all("tls_listen", &broker.conf.tls_listen, &tls_port);
}

void server_stop_accepting(void)
{
    for (size_t i = 0; i < listener_count; i++) listener_stop(listeners[i]);
}

void server_close(void)
{
    for (size_t i = 0; i < listener_count; i++) listener_free(listeners[i]);
    listener_count = 0;
    if (admin_path[0] != '\0') unlink(admin_path);
    admin_path[0] = '\0';
}
