/* tls: the broker's TLS (OpenSSL) in two parts. A context holds one certificate and key (TLS
 * 1.2 or later); a connection is a server-side TLS stream over a non-blocking socket that reads
 * into and writes from evbuffers, for an I/O path that owns its socket (session_io.c). A
 * bufferevent user (HTTPS) takes an SSL object from the context instead. Nothing here logs:
 * failures come back as text for the caller to log with what it knows (the client address). */
#ifndef MOONPOST_TLS_H
#define MOONPOST_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

struct tls_context;
struct tls_conn;

#define TLS_WHY_MAX 256

/* Loads the PEM certificate chain CERT and private key KEY into a server context. Returns it,
 * or NULL with WHY filled ("tls_cert /etc/x.pem: no certificate in it"). */
struct tls_context *tls_context_load(const char *cert, const char *key, char *why, size_t len);
/* Drops the caller's reference; connections made from CTX keep it alive until they end. */
void tls_context_free(struct tls_context *ctx);
/* A new server-side SSL object of CTX with the broker's modes (small idle buffers), for a
 * bufferevent_openssl user. NULL when out of memory. */
SSL *tls_context_new_ssl(struct tls_context *ctx);

/* A TLS server stream over the non-blocking socket FD (not owned). NULL when out of memory. */
struct tls_conn *tls_conn_new(struct tls_context *ctx, int fd);
/* A TLS stream that takes over SSL, a server connection whose handshake is done and whose
 * socket is already set (the HTTPS listener's, on a WebSocket upgrade). NULL when out of memory
 * (SSL is then freed). */
struct tls_conn *tls_conn_adopt(SSL *ssl);
/* Sends close_notify when the handshake is done (best effort, never waits), then frees. */
void tls_conn_free(struct tls_conn *t);
/* 1 once the handshake has completed. */
int tls_conn_ready(const struct tls_conn *t);

/* What tls_conn_read and tls_conn_write return besides a byte count. */
enum {
    TLS_IO_AGAIN = -1,  /* nothing now: wait for the socket (errno = EAGAIN) */
    TLS_IO_CLOSED = -2, /* the peer closed (close_notify or EOF) */
    TLS_IO_ERROR = -3,  /* a handshake or protocol failure: WHY says which */
};

/* Decrypts up to MAX bytes into IN (driving the handshake first). Returns the bytes added
 * (> 0) or a TLS_IO_ value. *MORE is set when decrypted bytes are still buffered inside TLS
 * (the socket will not wake the loop for them). */
ssize_t tls_conn_read(struct tls_conn *t, struct evbuffer *in, size_t max, int *more, char *why,
                      size_t len);
/* Decrypts up to LEN bytes into BUF, like recv. Returns the bytes (> 0) or a TLS_IO_ value. */
ssize_t tls_conn_recv(struct tls_conn *t, void *buf, size_t len, char *why, size_t wlen);
/* 1 when decrypted bytes wait inside TLS (no socket event will come for them). */
int tls_conn_pending(const struct tls_conn *t);
/* Encrypts and writes the head of OUT in records of up to 16 KiB, without draining it (the
 * caller drains what it is told was written). Returns the bytes consumed (> 0) or a TLS_IO_
 * value. Before the handshake is done nothing can be written: TLS_IO_ERROR. */
ssize_t tls_conn_write(struct tls_conn *t, struct evbuffer *out, char *why, size_t len);

#endif
