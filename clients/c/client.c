/* client: the client object, its settings, and the session it remembers for reconnecting. */
#include <stdlib.h>
#include <string.h>

#include "mp_internal.h"

mp_client *mp_client_new(void)
{
    mp_client *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->fd = -1;
    c->timeout_ms = MP_DEFAULT_TIMEOUT_MS;
    c->auto_ack = 1;
    return c;
}

void mp_client_free(mp_client *c)
{
    if (c == NULL) return;
    memset(&c->cb, 0, sizeof c->cb); /* pending async callbacks are dropped, not called */
    struct mp_pending_table *t = &c->pending;
    for (size_t i = t->head; i < t->len; i++)
        t->items[i].fn = NULL;
    mp_conn_close(c, MP_ERR_CLOSED);
    mp_pending_free(c);
    mp_buf_free(&c->in);
    mp_buf_free(&c->out);
    for (int i = 0; i < MP_MAX_DEPTH; i++)
        mp_buf_free(&c->scratch[i]);
    free(c->addr.host);
    mp_tls_free(c);
    free(c);
}

void mp_client_set_timeout(mp_client *c, int timeout_ms)
{
    if (c && timeout_ms > 0) c->timeout_ms = timeout_ms;
}

void mp_client_set_callbacks(mp_client *c, const mp_callbacks *cb, void *ud)
{
    if (c == NULL) return;
    if (cb)
        c->cb = *cb;
    else
        memset(&c->cb, 0, sizeof c->cb);
    c->ud = ud;
}

void mp_client_set_auto_ack(mp_client *c, int on)
{
    if (c) c->auto_ack = on != 0;
}

uint64_t mp_client_last_mid(const mp_client *c)
{
    return c ? c->last_mid : 0;
}

void mp_client_set_last_mid(mp_client *c, uint64_t mid)
{
    if (c == NULL) return;
    c->last_mid = c->done_mid = mid;
    c->held_mid = 0;
}

const char *mp_client_user(const mp_client *c)
{
    return c && c->user[0] ? c->user : NULL;
}

const char *mp_client_token(const mp_client *c)
{
    return c && c->token[0] ? c->token : NULL;
}

int mp_client_is_logged_in(const mp_client *c)
{
    return c != NULL && c->fd >= 0 && c->logged_in;
}

int mp_copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > MP_NAME_MAX) return -1;
    memmove(dst, src, n + 1); /* src may be dst: mp_resume(c, mp_client_user(c), ...) */
    return 0;
}

/* A login or resume of USER succeeded. Mids count per user: another user starts over, unless
 * the program set last_mid before its first login. */
void mp_set_session(mp_client *c, const char *user, const char *token, size_t token_len)
{
    if (c->last_user[0] != '\0' && strcmp(c->last_user, user) != 0) {
        c->last_mid = c->done_mid = c->held_mid = 0;
    }
    mp_copy_name(c->last_user, user);
    mp_copy_name(c->user, user);
    memcpy(c->token, token, token_len);
    c->token[token_len] = '\0';
    c->logged_in = 1;
}

void mp_forget_session(mp_client *c)
{
    c->user[0] = '\0';
    c->token[0] = '\0';
    c->logged_in = 0;
}
