/* websocket: the codec of a session whose bytes travel in WebSocket messages (RFC 6455; the
 * framing is wslay's) instead of length-prefixed frames: each binary message carries one frame
 * body. The session module calls it from its read and write paths when s->ws is set, so
 * routing, limits and timeouts see an ordinary session. */
#ifndef MOONPOST_WEBSOCKET_H
#define MOONPOST_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/util.h>

struct session;
struct tls_conn;
struct websocket;

/* Opens a client session on FD, whose upgrade was answered; TLS is the connection's TLS stream
 * (HTTPS) or NULL; PREREAD holds what the client sent after its request head (decrypted). All
 * three are taken over. Returns NULL (FD closed) when it cannot. */
struct session *websocket_open(evutil_socket_t fd, struct tls_conn *tls, struct evbuffer *preread);

/* Reads at most MAX bytes from S's socket and appends every whole message's body to s->in as a
 * length-prefixed frame, so that the usual framing checks run on it (a message over max_frame
 * becomes a frame header over it). Returns like evbuffer_read: bytes read, 0 at end of file, or
 * -1 with errno. */
int websocket_read(struct session *s, size_t max);

/* Queues DATA, whole length-prefixed frames, as one binary message per frame. */
void websocket_queue(struct session *s, const void *data, size_t len);

/* Queues the close frame that ends S (after its `bye CODE`, when CODE is not 0): 1009 after a
 * frame too large, the codec's own code after a WebSocket protocol error, else 1000. */
void websocket_queue_close(struct session *s, int code);

/* Bytes of the (unmasked, server) WebSocket frame that starts at P in OUT; 0 if incomplete. */
size_t websocket_frame_size(struct evbuffer *out, const struct evbuffer_ptr *p);

void websocket_free(struct websocket *ws);

#endif
