/* tls: --tls, the benchmark's clients over TLS (OpenSSL). The broker's certificate is not
 * verified: the run measures the broker, and the clients may connect by address. */
#ifndef MOONPOST_BENCH_TLS_H
#define MOONPOST_BENCH_TLS_H

#include <sys/types.h>

struct client;

/* The client context, once before the workers start. Returns 0 or -1 (message printed). */
int bench_tls_init(void);
void bench_tls_free(void);

/* Starts C's handshake on its connected socket. Returns 0, or -1 (out of memory). */
int bench_tls_start(struct client *c);
/* Drives the handshake: 1 done, 0 waiting (*WANT_WRITE says for what), -1 failed. */
int bench_tls_handshake(struct client *c, int *want_write);
/* Like read and write: a count, 0 at the end, or -1 with errno (EAGAIN to wait). */
ssize_t bench_tls_read(struct client *c, void *buf, size_t len);
ssize_t bench_tls_write(struct client *c, const void *buf, size_t len);
void bench_tls_close(struct client *c);

#endif
