/* tls_errno: what a failed SSL_read or SSL_write means to a caller that speaks errno, for the
 * TLS clients (libmoonpost and the load generator). */
#ifndef MOONPOST_TLS_ERRNO_H
#define MOONPOST_TLS_ERRNO_H

#include <sys/types.h>

#include <openssl/ssl.h>

/* For RC, the failed result of an SSL_read or SSL_write on SSL: 0 when the peer closed the
 * stream (close_notify), else -1 with errno EAGAIN (wait for the socket and call again), the
 * socket's own error, or ECONNRESET. Clears OpenSSL's error queue. */
ssize_t tls_io_failure(SSL *ssl, int rc);

#endif
