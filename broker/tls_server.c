/* tls_server: the TLS context of the client port and of HTTPS from tls_cert and tls_key (see tls_server.h). */
#include "tls_server.h"

#include <stdio.h>
#include <string.h>

static struct tls_context *current;

int tls_server_load(const struct conf *c, const char *path, struct tls_context **out,
                    struct conf_error *err)
{
    *out = NULL;
    if (c->tls_listen.count == 0 && !c->http_tls) return 0;
    char where[200];
    if (c->tls_cert == NULL || c->tls_key == NULL) {
        const char *user = c->tls_listen.count > 0 ? "tls_listen" : "http_tls";
        conf_key_origin(c, path, user, where, sizeof where);
        snprintf(err->text, sizeof err->text, "%s%s needs tls_cert and tls_key", where, user);
        return -1;
    }
    char why[TLS_WHY_MAX];
    *out = tls_context_load(c->tls_cert, c->tls_key, why, sizeof why);
    if (*out != NULL) return 0;
    /* the reason names the file it is about: point at that key's line */
    conf_key_origin(c, path, strncmp(why, "tls_key", 7) == 0 ? "tls_key" : "tls_cert", where, sizeof where);
    snprintf(err->text, sizeof err->text, "%s%s", where, why);
    return -1;
}

void tls_server_use(struct tls_context *ctx)
{
    tls_context_free(current);
    current = ctx;
}

struct tls_context *tls_server_context(void)
{
    return current;
}
