/* tls: libmoonpost over TLS. The settings (trusted CAs, the name to check) live in the client;
 * each connection makes a TLS stream over the non-blocking socket, whose handshake runs within
 * the connect timeout. The socket is read and written through a BIO of our own that sends with
 * MSG_NOSIGNAL, so that a broker that hung up gives an error, not a SIGPIPE in the program. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mp_internal.h"
#include "tls_errno.h"

struct mp_tls {
    SSL_CTX *ctx;
    char *server_name; /* NULL: the host given to connect */
};

/* ---- a socket BIO that never raises SIGPIPE ---- */

static int bio_write(BIO *b, const char *data, int len)
{
    BIO_clear_retry_flags(b);
    const mp_client *c = BIO_get_data(b);
    ssize_t n = send(c->fd, data, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    BIO_clear_retry_flags(b);
    const mp_client *c = BIO_get_data(b);
    ssize_t n = recv(c->fd, buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *bio_method(void)
{
    static BIO_METHOD *m; /* made once, never freed (like OpenSSL's own methods) */
    if (m != NULL) return m;
    BIO_METHOD *made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "moonpost");
    if (made == NULL || !BIO_meth_set_write(made, bio_write) ||
        !BIO_meth_set_read(made, bio_read) || !BIO_meth_set_ctrl(made, bio_ctrl)) {
        BIO_meth_free(made);
        return NULL;
    }
    return m = made;
}

/* A BIO on C's socket (C->fd when it is used: the BIO lives no longer than the connection). */
static BIO *socket_bio(mp_client *c)
{
    BIO_METHOD *m = bio_method();
    BIO *b = m ? BIO_new(m) : NULL;
    if (b == NULL) return NULL;
    BIO_set_data(b, c);
    BIO_set_init(b, 1);
    return b;
}

/* ---- settings ---- */

static void free_settings(struct mp_tls *t)
{
    if (t == NULL) return;
    SSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t);
}

void mp_tls_free(mp_client *c)
{
    free_settings(c->tls);
    c->tls = NULL;
}

/* The last OpenSSL error as text (the queue is emptied). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown TLS error";
}

mp_err mp_client_use_tls(mp_client *c, const char *ca_file, const char *server_name)
{
    if (c == NULL) return MP_ERR_INVAL;
    mp_clear_error(c);
    struct mp_tls *t = calloc(1, sizeof *t);
    if (t == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    t->ctx = SSL_CTX_new(TLS_client_method());
    t->server_name = server_name ? strdup(server_name) : NULL;
    if (t->ctx == NULL || (server_name && t->server_name == NULL)) {
        free_settings(t);
        return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ok = ca_file ? SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(t->ctx);
    if (ok != 1) {
        const char *why = ssl_reason();
        free_settings(t);
        return mp_fail(c, MP_ERR_TLS, 0, "cannot load the trusted CAs from %s: %s",
                       ca_file ? ca_file : "the system store", why);
    }
    mp_tls_free(c);
    c->tls = t;
    return MP_OK;
}

/* ---- one connection ---- */

/* Checks the certificate for NAME: a host name, or an IP address written as one. */
static int expect_name(SSL *ssl, const char *name)
{
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (is_ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    SSL_set_tlsext_host_name(ssl, name); /* SNI */
    return SSL_set1_host(ssl, name);
}

static mp_err handshake_failed(mp_client *c, SSL *ssl, int rc, const char *where)
{
    long verify = SSL_get_verify_result(ssl);
    int err = SSL_get_error(ssl, rc);
    if (verify != X509_V_OK) {
        ERR_clear_error();
        return mp_fail(c, MP_ERR_TLS, 0, "TLS with %s: certificate verify failed: %s", where,
                       X509_verify_cert_error_string(verify));
    }
    if (err == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        return mp_fail(c, MP_ERR_TLS, 0,
                       "TLS with %s: connection closed during the handshake "
                       "(is this a TLS port?)",
                       where);
    }
    return mp_fail(c, MP_ERR_TLS, 0, "TLS handshake with %s failed: %s", where, ssl_reason());
}

mp_err mp_tls_connect(mp_client *c, int64_t deadline, const char *where)
{
    SSL *ssl = SSL_new(c->tls->ctx);
    BIO *bio = socket_bio(c);
    if (ssl == NULL || bio == NULL) {
        SSL_free(ssl);
        BIO_free(bio);
        ERR_clear_error();
        return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    }
    SSL_set_bio(ssl, bio, bio);
    SSL_set_connect_state(ssl);
    if (expect_name(ssl, c->tls->server_name ? c->tls->server_name : c->addr.host) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return mp_fail(c, MP_ERR_INVAL, 0, "cannot check the broker's name %s", c->addr.host);
    }
    for (;;) {
        int rc = SSL_do_handshake(ssl);
        if (rc == 1) break;
        int err = SSL_get_error(ssl, rc);
        int64_t left = deadline - mp_now_ms();
        if ((err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) || left <= 0) {
            mp_err e = left <= 0 && (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                           ? mp_fail(c, MP_ERR_TIMEOUT, 0, "TLS handshake with %s timed out", where)
                           : handshake_failed(c, ssl, rc, where);
            SSL_free(ssl);
            return e;
        }
        struct pollfd pfd = {c->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
        poll(&pfd, 1, (int)left);
    }
    c->ssl = ssl;
    return MP_OK;
}

void mp_tls_close(mp_client *c)
{
    if (c->ssl == NULL) return;
    SSL_shutdown(c->ssl); /* close_notify, best effort: the socket closes right after */
    ERR_clear_error();
    SSL_free(c->ssl);
    c->ssl = NULL;
}

ssize_t mp_tls_read(mp_client *c, void *buf, size_t len)
{
    size_t n = 0;
    errno = 0;
    int rc = SSL_read_ex(c->ssl, buf, len, &n);
    return rc == 1 ? (ssize_t)n : tls_io_failure(c->ssl, rc);
}

ssize_t mp_tls_write(mp_client *c, const void *buf, size_t len)
{
    size_t n = 0;
    errno = 0;
    int rc = SSL_write_ex(c->ssl, buf, len, &n);
    return rc == 1 ? (ssize_t)n : tls_io_failure(c->ssl, rc);
}

int mp_tls_pending(const mp_client *c)
{
    return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}
