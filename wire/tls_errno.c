/* tls_errno: see tls_errno.h. */
#include "tls_errno.h"

#include <errno.h>

#include <openssl/err.h>

ssize_t tls_io_failure(SSL *ssl, int rc)
{
    int err = SSL_get_error(ssl, rc);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    errno = err == SSL_ERROR_SYSCALL && errno != 0 ? errno : ECONNRESET;
    return -1;
}
