/* tls: OpenSSL contexts and non-blocking server streams over evbuffers (see tls.h). Idle
 * connections keep no record buffers (SSL_MODE_RELEASE_BUFFERS): an idle TLS session costs its
 * SSL object, not 2 x 16 KiB more. */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define TLS_RECORD_MAX 16384 /* plaintext bytes of one TLS record */
#define WRITE_CHAINS 16      /* evbuffer chains looked at per peek when writing */

struct tls_context {
    SSL_CTX *ssl;
};

struct tls_conn {
    SSL *ssl;
    int closed; /* the peer closed after the bytes last returned: report it next time */
};

/* WHY = PREFIX and the reason of the last OpenSSL error (the queue is emptied). */
static void ssl_reason(char *why, size_t len, const char *prefix)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (reason == NULL) reason = errno != 0 ? strerror(errno) : "connection closed";
    snprintf(why, len, "%s%s", prefix, reason);
    ERR_clear_error();
}

/* Whether PATH can be opened for reading; WHY says why not. */
static int readable(const char *key, const char *path, char *why, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(why, len, "%s %s: cannot open: %s", key, path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

static int use_files(SSL_CTX *ssl, const char *cert, const char *key, char *why, size_t len)
{
    char prefix[TLS_WHY_MAX];
    if (!readable("tls_cert", cert, why, len) || !readable("tls_key", key, why, len)) return -1;
    if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1) {
        snprintf(prefix, sizeof prefix, "tls_cert %.200s: not a PEM certificate chain: ", cert);
        ssl_reason(why, len, prefix);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1) {
        int mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        snprintf(prefix, sizeof prefix,
                 mismatch ? "tls_key %.200s does not match tls_cert: "
                          : "tls_key %.200s: not a PEM private key: ",
                 key);
        ssl_reason(why, len, prefix);
        return -1;
    }
    if (SSL_CTX_check_private_key(ssl) != 1) {
        snprintf(prefix, sizeof prefix, "tls_key %.200s does not match tls_cert: ", key);
        ssl_reason(why, len, prefix);
        return -1;
    }
    return 0;
}

struct tls_context *tls_context_load(const char *cert, const char *key, char *why, size_t len)
{
    struct tls_context *ctx = calloc(1, sizeof *ctx);
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || ssl == NULL) {
        ssl_reason(why, len, "cannot create a TLS context: ");
        free(ctx);
        SSL_CTX_free(ssl);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    /* a client that drops the connection without close_notify (a phone losing its network)
     * has simply gone: frames are length-prefixed, so a cut stream cannot be misread */
    SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* partial writes and a moving buffer: the output evbuffer is written chain by chain, and
     * a retried write may find its bytes moved (evbuffer_add realigns a chain) */
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* resumption by tickets only: a server-side cache would hold memory per past handshake */
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ssl, 1);
    if (use_files(ssl, cert, key, why, len) != 0) {
        SSL_CTX_free(ssl);
        free(ctx);
        return NULL;
    }
    ctx->ssl = ssl;
    return ctx;
}

void tls_context_free(struct tls_context *ctx)
{
    if (ctx == NULL) return;
    SSL_CTX_free(ctx->ssl); /* reference counted: live connections keep it */
    free(ctx);
}

SSL *tls_context_new_ssl(struct tls_context *ctx)
{
    SSL *ssl = SSL_new(ctx->ssl);
    if (ssl != NULL) SSL_set_accept_state(ssl);
    return ssl;
}

struct tls_conn *tls_conn_new(struct tls_context *ctx, int fd)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->ssl = tls_context_new_ssl(ctx);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, fd) != 1) {
        ERR_clear_error();
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    return t;
}

struct tls_conn *tls_conn_adopt(SSL *ssl)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (t == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    t->ssl = ssl;
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (t == NULL) return;
    if (SSL_is_init_finished(t->ssl)) SSL_shutdown(t->ssl); /* close_notify, never waits */
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t);
}

int tls_conn_ready(const struct tls_conn *t)
{
    return SSL_is_init_finished(t->ssl);
}

/* What a failed SSL call RC on T means, as a TLS_IO_ value (WHY filled for TLS_IO_ERROR). */
static ssize_t failure(struct tls_conn *t, int rc, char *why, size_t len)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return TLS_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_IO_CLOSED;
    case SSL_ERROR_SYSCALL: /* EOF without close_notify, or a socket error (reset) */
        ERR_clear_error();
        snprintf(why, len, "%s", errno != 0 ? strerror(errno) : "connection closed");
        return TLS_IO_CLOSED;
    default:
        ssl_reason(why, len, "");
        return TLS_IO_ERROR;
    }
}

ssize_t tls_conn_read(struct tls_conn *t, struct evbuffer *in, size_t max, int *more, char *why,
                      size_t len)
{
    size_t total = 0;
    *more = 0;
    if (t->closed) return TLS_IO_CLOSED;
    while (total < max) {
        struct evbuffer_iovec v;
        size_t want = max - total < TLS_RECORD_MAX ? max - total : TLS_RECORD_MAX;
        if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1) {
            snprintf(why, len, "out of memory");
            return TLS_IO_ERROR;
        }
        size_t got = 0;
        errno = 0;
        int rc = SSL_read_ex(t->ssl, v.iov_base, v.iov_len < want ? v.iov_len : want, &got);
        if (rc == 1) {
            v.iov_len = got;
            evbuffer_commit_space(in, &v, 1);
            total += got;
            /* TLS reads one record at a time: with none begun inside it, the next one is still
             * in the socket, whose (level-triggered) event comes back for it; asking now would
             * cost a recv that says EAGAIN on every callback of a chat-sized exchange */
            if (!SSL_has_pending(t->ssl)) return (ssize_t)total;
            continue;
        }
        ssize_t f = failure(t, rc, why, len);
        if (total == 0) return f;
        if (f != TLS_IO_AGAIN) {
            t->closed = 1; /* the bytes first, the end on the next call */
            *more = 1;
        }
        return (ssize_t)total;
    }
    *more = SSL_has_pending(t->ssl);
    return (ssize_t)total;
}

ssize_t tls_conn_recv(struct tls_conn *t, void *buf, size_t len, char *why, size_t wlen)
{
    if (t->closed) return TLS_IO_CLOSED;
    size_t got = 0;
    errno = 0;
    int rc = SSL_read_ex(t->ssl, buf, len, &got);
    return rc == 1 ? (ssize_t)got : failure(t, rc, why, wlen);
}

int tls_conn_pending(const struct tls_conn *t)
{
    return SSL_has_pending(t->ssl);
}

/* Writes BUF (one evbuffer chain) record by record until it is all written or the socket is
 * full. Returns the bytes written, or a TLS_IO_ value when none could be. */
static ssize_t write_chain(struct tls_conn *t, const char *buf, size_t n, char *why, size_t len)
{
    size_t total = 0;
    while (total < n) {
        size_t done = 0;
        errno = 0;
        int rc = SSL_write_ex(t->ssl, buf + total, n - total, &done); /* one record at most */
        if (rc == 1) {
            total += done;
            continue;
        }
        if (SSL_get_error(t->ssl, rc) == SSL_ERROR_WANT_READ) {
            snprintf(why, len, "renegotiation is not supported");
            return TLS_IO_ERROR; /* never after the handshake: do not wait for it */
        }
        ssize_t f = failure(t, rc, why, len);
        return total > 0 ? (ssize_t)total : f;
    }
    return (ssize_t)total;
}

ssize_t tls_conn_write(struct tls_conn *t, struct evbuffer *out, char *why, size_t len)
{
    if (!SSL_is_init_finished(t->ssl)) {
        snprintf(why, len, "handshake not finished");
        return TLS_IO_ERROR;
    }
    size_t total = 0;
    struct evbuffer_ptr at;
    evbuffer_ptr_set(out, &at, 0, EVBUFFER_PTR_SET);
    for (;;) {
        struct evbuffer_iovec v[WRITE_CHAINS];
        int n = evbuffer_peek(out, -1, &at, v, WRITE_CHAINS);
        if (n <= 0) return (ssize_t)total;
        if (n > WRITE_CHAINS) n = WRITE_CHAINS;
        for (int i = 0; i < n; i++) {
            ssize_t w = write_chain(t, v[i].iov_base, v[i].iov_len, why, len);
            if (w < 0) return total > 0 ? (ssize_t)total : w;
            total += (size_t)w;
            if ((size_t)w < v[i].iov_len) return (ssize_t)total; /* the socket is full */
        }
        evbuffer_ptr_set(out, &at, total, EVBUFFER_PTR_SET);
    }
}
