/* http: a small HTTP/1.1 server for GET requests, answered by a route function (the broker's
 * metrics.c, or the supervisor's), at once or later. It faces the network like the client
 * port, so it has the same guards: a connection cap, a deadline for each request head, a
 * keep-alive idle timeout and a head size limit (431). Request bodies are not read: a request
 * with one is answered and the connection closed. With http_tls each connection is HTTPS
 * (bufferevent_openssl); an upgrade hands its SSL object on with the socket. */
#include "http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "broker.h"
#include "clock.h"
#include "listener.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"
#include "tls_server.h"

#define HTTP_OUTPUT_PAUSE 65536 /* reading stops while this much of a reply is unsent */

struct http_conn {
    struct bufferevent *bev;
    SSL *ssl;               /* over HTTPS: owned here (the bufferevent neither frees it nor closes
                               the socket, so that an upgrade can take both) */
    struct event *deadline; /* the head must arrive before it; also the keep-alive idle limit */
    int closing;            /* close once the reply is written */
    int waiting;            /* kept alive, no byte of the next request yet */
    int answering;          /* a request is being answered: read no other until then */
    int keep_alive;         /* of the request being answered */
    void (*cancel)(void *); /* called if the connection closes before its answer */
    void *cancel_arg;
    const char *head;       /* the request head, while the route function runs */
    http_upgraded_fn upgraded; /* set by http_upgrade: takes the socket once the 101 is out */
    struct http_conn *prev, *next;
};

static struct {
    http_serve_fn serve;
    struct listener *listener;
    struct http_conn *conns; /* every open connection, for http_stop */
    size_t count;
    int tls; /* connections speak HTTPS */
} http;

static void conn_free(struct http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        http.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    http.count--;
    if (c->answering && c->cancel) c->cancel(c->cancel_arg);
    evutil_socket_t fd = c->ssl != NULL ? bufferevent_getfd(c->bev) : -1;
    bufferevent_free(c->bev);
    if (c->ssl != NULL) {
        if (SSL_is_init_finished(c->ssl)) SSL_shutdown(c->ssl); /* close_notify, never waits */
        SSL_free(c->ssl);
        evutil_closesocket(fd);
    }
    event_free(c->deadline);
    free(c);
}

static void arm_deadline(struct http_conn *c, double seconds)
{
    struct timeval tv = clock_timeval(seconds);
    evtimer_add(c->deadline, &tv);
}

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void reply(struct http_conn *c, int code, const char *type, struct evbuffer *body,
                  int keep_alive)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = body ? evbuffer_get_length(body) : 0;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                        code, reason(code), type, len, keep_alive ? "" : "Connection: close\r\n");
    if (body) evbuffer_add_buffer(out, body);
    if (!keep_alive) {
        c->closing = 1;
        bufferevent_disable(c->bev, EV_READ);
    } else {
        c->waiting = 1;
        arm_deadline(c, broker.conf.http_idle_timeout);
    }
}

static void reply_text(struct http_conn *c, int code, const char *text, int keep_alive)
{
    struct evbuffer *body = evbuffer_new();
    if (body) evbuffer_add_printf(body, "%s\n", text);
    reply(c, code, "text/plain", body, keep_alive);
    if (body) evbuffer_free(body);
}

void http_reply(struct http_conn *c, int code, const char *type, struct evbuffer *body)
{
    c->answering = 0;
    c->cancel = NULL;
    reply(c, code, type, body, c->keep_alive && !c->closing);
}

void http_reply_text(struct http_conn *c, int code, const char *text)
{
    c->answering = 0;
    c->cancel = NULL;
    reply_text(c, code, text, c->keep_alive && !c->closing);
}

void http_answer_later(struct http_conn *c, void (*cancel)(void *), void *arg)
{
    c->cancel = cancel;
    c->cancel_arg = arg;
}

static void serve(struct http_conn *c, const char *method, const char *path, const char *head,
                  int keep_alive)
{
    if (strcmp(method, "GET") != 0) return reply_text(c, 405, "only GET", keep_alive);
    c->answering = 1;
    c->keep_alive = keep_alive;
    c->head = head;
    http.serve(c, path);
    c->head = NULL;
}

/* The value of header NAME in HEAD (lines after the request line), or NULL. */
static const char *header_value(const char *head, const char *name, const char **end)
{
    size_t n = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ' || *p == '\t')
                p++;
            *end = strstr(p, "\r\n");
            return p;
        }
    }
    return NULL;
}

static int header_is(const char *head, const char *name, const char *value)
{
    const char *end;
    const char *v = header_value(head, name, &end);
    return v != NULL && (size_t)(end - v) == strlen(value) && strncasecmp(v, value, end - v) == 0;
}

const char *http_request_header(const struct http_conn *c, const char *name, size_t *len)
{
    const char *end;
    const char *v = c->head ? header_value(c->head, name, &end) : NULL;
    if (v == NULL) return NULL;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *len = (size_t)(end - v);
    return v;
}

void http_upgrade(struct http_conn *c, const char *headers, http_upgraded_fn upgraded)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->answering = 0;
    c->cancel = NULL;
    c->upgraded = upgraded;
    evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n%s\r\n", headers);
    bufferevent_disable(c->bev, EV_READ); /* the next bytes are the new protocol's */
    arm_deadline(c, broker.conf.http_header_timeout); /* for a client that does not read it */
}

/* Answers the request whose head (NUL-terminated, ending in an empty line) is HEAD. */
static void handle_head(struct http_conn *c, char *head)
{
    char method[16], path[256], version[16];
    if (sscanf(head, "%15s %255s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return reply_text(c, 400, "bad request line", 0);
    const char *end;
    const char *length = header_value(head, "Content-Length", &end);
    if ((length != NULL && strtol(length, NULL, 10) != 0) ||
        header_value(head, "Transfer-Encoding", &end) != NULL)
        return reply_text(c, 413, "no request body is accepted", 0);
    int keep_alive = strcmp(version, "HTTP/1.1") == 0 ? !header_is(head, "Connection", "close")
                                                      : header_is(head, "Connection", "keep-alive");
    serve(c, method, path, head, keep_alive);
}

/* Answers every whole request head buffered, one at a time: the next waits for the reply. */
static void process(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t max = (size_t)broker.conf.http_max_header;
    while (!c->closing && !c->answering && !c->upgraded && evbuffer_get_length(in) > 0) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= HTTP_OUTPUT_PAUSE) {
            bufferevent_disable(c->bev, EV_READ); /* resumed once the reply is written */
            return;
        }
        if (c->waiting) {
            c->waiting = 0;
            arm_deadline(c, broker.conf.http_header_timeout);
        }
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (evbuffer_get_length(in) > max)
                reply_text(c, 431, "request head too large", 0);
            return;
        }
        size_t len = (size_t)end.pos + 4;
        if (len > max)
            return reply_text(c, 431, "request head too large", 0);
        char *head = malloc(len + 1);
        if (head == NULL) return reply_text(c, 500, "no memory", 0);
        evbuffer_remove(in, head, len);
        head[len] = '\0';
        handle_head(c, head);
        free(head);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

/* The 101 is out: the socket, its TLS connection and what was read after the request head go
 * to c->upgraded. */
static void hand_over(struct http_conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    SSL *ssl = c->ssl;
    struct evbuffer *rest = evbuffer_new();
    if (rest != NULL) evbuffer_add_buffer(rest, bufferevent_get_input(c->bev));
    if (ssl != NULL)
        c->ssl = NULL; /* conn_free must neither free it nor close the socket */
    else
        bufferevent_setfd(c->bev, -1); /* conn_free must not close it */
    http_upgraded_fn upgraded = c->upgraded;
    conn_free(c);
    if (rest == NULL) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    upgraded(fd, ssl, rest);
}

static void on_written(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    if (c->upgraded) return hand_over(c);
    if (c->closing) return conn_free(c);
    bufferevent_enable(bev, EV_READ);
    process(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;
    /* a client that sent its request and shut its side down still gets the reply */
    if (!(what & BEV_EVENT_ERROR) &&
        (c->answering || evbuffer_get_length(bufferevent_get_output(bev)) > 0)) {
        c->closing = 1;
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(c);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_free(arg);
}

static void refuse(evutil_socket_t fd)
{
    static struct log_every refused_log = LOG_EVERY(10);
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
    stats.http_rejected_total++;
    log_every(&refused_log, LOG_LEVEL_WARN,
              "HTTP: http_max_connections (%d) reached, refused a "
              "connection",
              broker.conf.http_max_connections);
    if (send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* the client is gone */
    }
    evutil_closesocket(fd);
}

/* A bufferevent that does C's TLS handshake on FD and then its HTTP, with c->ssl; NULL (and
 * c->ssl NULL) when out of memory. A peer that closes without close_notify has just closed. */
static struct bufferevent *https_bufferevent(struct http_conn *c, evutil_socket_t fd)
{
    c->ssl = tls_context_new_ssl(tls_server_context());
    if (c->ssl == NULL) return NULL;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(broker.base, fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
    if (bev == NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg)
{
    (void)l, (void)addr, (void)len, (void)arg;
    if (http.count >= (size_t)broker.conf.http_max_connections) return refuse(fd);
    struct http_conn *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->bev = http.tls ? https_bufferevent(c, fd)
                          : bufferevent_socket_new(broker.base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->deadline = evtimer_new(broker.base, on_deadline, c);
    }
    if (c == NULL || c->bev == NULL || c->deadline == NULL) {
        if (c && c->bev) bufferevent_free(c->bev);
        if (c == NULL || c->bev == NULL || c->ssl != NULL) evutil_closesocket(fd);
        if (c) SSL_free(c->ssl);
        if (c && c->deadline) event_free(c->deadline);
        free(c);
        return;
    }
    c->next = http.conns;
    if (http.conns) http.conns->prev = c;
    http.conns = c;
    http.count++;
    bufferevent_setcb(c->bev, on_read, on_written, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    arm_deadline(c, broker.conf.http_header_timeout);
}

int http_start(const char *addr, http_serve_fn serve, int tls)
{
    if (addr == NULL) return 0;
    http.serve = serve;
    http.tls = tls;
    struct sockaddr_storage ss;
    socklen_t len;
    char why[NETADDR_WHY_MAX];
    if (netaddr_resolve(addr, &ss, &len, why, sizeof why) != 0) {
        log_error("http_listen %s: %s", addr, why);
        return -1;
    }
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
    http.listener = listener_new(broker.base, (struct sockaddr *)&ss, (int)len, flags, on_accept,
                                 NULL, addr);
    if (http.listener == NULL) {
        log_error("cannot listen for HTTP on %s: %s", addr, strerror(errno));
        return -1;
    }
    log_info("metrics on %s://%s/metrics", tls ? "https" : "http", addr);
    return 0;
}

void http_stop(void)
{
    listener_free(http.listener);
    http.listener = NULL;
    for (struct http_conn *c = http.conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_free(c);
    }
}
