/* tls: the benchmark's clients over TLS (see tls.h). */
#include "tls.h"

#include <errno.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"
#include "tls_errno.h"

static SSL_CTX *ctx;

int bench_tls_init(void)
{
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        fprintf(stderr, "moonpost-bench: cannot create a TLS context\n");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

void bench_tls_free(void)
{
    SSL_CTX_free(ctx);
    ctx = NULL;
}

int bench_tls_start(struct client *c)
{
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        ERR_clear_error();
        return -1;
    }
    SSL_set_connect_state(c->ssl);
    return 0;
}

int bench_tls_handshake(struct client *c, int *want_write)
{
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) return 1;
    int err = SSL_get_error(c->ssl, rc);
    ERR_clear_error();
    *want_write = err == SSL_ERROR_WANT_WRITE;
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

ssize_t bench_tls_read(struct client *c, void *buf, size_t len)
{
    size_t n = 0;
    int rc = SSL_read_ex(c->ssl, buf, len, &n);
    return rc == 1 ? (ssize_t)n : tls_io_failure(c->ssl, rc);
}

ssize_t bench_tls_write(struct client *c, const void *buf, size_t len)
{
    size_t n = 0;
    int rc = SSL_write_ex(c->ssl, buf, len, &n);
    return rc == 1 ? (ssize_t)n : tls_io_failure(c->ssl, rc);
}

void bench_tls_close(struct client *c)
{
    SSL_free(c->ssl); /* no close_notify: the socket closes right after */
    c->ssl = NULL;
}
