/* http: a small HTTP/1.1 server on `http_listen` for GET requests (the broker's /metrics and
 * /healthz, or the supervisor's for the whole host). */
#ifndef MOONPOST_HTTP_H
#define MOONPOST_HTTP_H

#include <stddef.h>

#include <event2/buffer.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#define HTTP_METRICS_TYPE "text/plain; version=0.0.4"

struct http_conn;

/* Answers GET PATH on C with http_reply or http_reply_text, at once or later (after
 * http_answer_later); the connection reads no other request until then. */
typedef void (*http_serve_fn)(struct http_conn *c, const char *path);

/* Listens on ADDR ("host:port"; NULL: nothing to do) on broker.base; SERVE answers. With TLS
 * set every connection is HTTPS, with the context of tls_server_context() when it is accepted. */
int http_start(const char *addr, http_serve_fn serve, int tls);
void http_stop(void);

/* The answer to C's request: CODE with BODY (drained; may be NULL) of content TYPE. */
void http_reply(struct http_conn *c, int code, const char *type, struct evbuffer *body);
void http_reply_text(struct http_conn *c, int code, const char *text);

/* The value of request header NAME (its first line, trimmed; LEN bytes, not NUL-terminated), or
 * NULL; only while the route function runs. */
const char *http_request_header(const struct http_conn *c, const char *name, size_t *len);

/* Takes the socket once an upgrade has been answered: FD, its TLS connection SSL (handshake
 * done) over HTTPS or NULL, and REST, what the client sent after the request head (decrypted).
 * The callee owns all three. */
typedef void (*http_upgraded_fn)(evutil_socket_t fd, SSL *ssl, struct evbuffer *rest);

/* Answers C's request with 101 Switching Protocols and HEADERS (each line ending in CRLF);
 * once it is written, the socket leaves the HTTP server and goes to UPGRADED. */
void http_upgrade(struct http_conn *c, const char *headers, http_upgraded_fn upgraded);

/* C will be answered later; if it closes first (the client left, a deadline, http_stop),
 * CANCEL(ARG) runs instead, and C must not be used after. */
void http_answer_later(struct http_conn *c, void (*cancel)(void *), void *arg);

#endif
