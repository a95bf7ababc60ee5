/* tls_server: the TLS context of the client port (tls_listen), made from the config at start and
 * at every reload: a renewed certificate is taken by new connections, and the sessions already
 * open keep the context they were made with. */
#ifndef MOONPOST_TLS_SERVER_H
#define MOONPOST_TLS_SERVER_H

#include "conf.h"
#include "tls.h"

/* Loads the context config C (read from PATH) asks for into *OUT: NULL when it has no
 * tls_listen. Returns 0, or -1 with ERR filled ("PATH:LINE: tls_cert FILE: reason"). */
int tls_server_load(const struct conf *c, const char *path, struct tls_context **out,
                    struct conf_error *err);
/* Makes CTX (owned from now on) the context of new TLS connections; the previous one is
 * released (its connections keep it until they end). NULL at exit. */
void tls_server_use(struct tls_context *ctx);
/* The context of new TLS connections, NULL when none is configured. */
struct tls_context *tls_server_context(void);

#endif
