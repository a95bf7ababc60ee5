/* http: a small HTTP/1.1 server on `http_listen` for GET requests (the broker's /metrics and
 * /healthz, or the supervisor's for the whole host). */
#ifndef MOONPOST_HTTP_H
#define MOONPOST_HTTP_H

#include <event2/buffer.h>

#define HTTP_METRICS_TYPE "text/plain; version=0.0.4"

struct http_conn;

/* Answers GET PATH on C with http_reply or http_reply_text, at once or later (after
 * http_answer_later); the connection reads no other request until then. */
typedef void (*http_serve_fn)(struct http_conn *c, const char *path);

/* Listens on ADDR ("host:port"; NULL: nothing to do) on broker.base; SERVE answers. */
int http_start(const char *addr, http_serve_fn serve);
void http_stop(void);

/* The answer to C's request: CODE with BODY (drained; may be NULL) of content TYPE. */
void http_reply(struct http_conn *c, int code, const char *type, struct evbuffer *body);
void http_reply_text(struct http_conn *c, int code, const char *text);

/* C will be answered later; if it closes first (the client left, a deadline, http_stop),
 * CANCEL(ARG) runs instead, and C must not be used after. */
void http_answer_later(struct http_conn *c, void (*cancel)(void *), void *arg);

#endif
