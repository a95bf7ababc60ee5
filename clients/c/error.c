/* error: error values, their texts, and the per-client error message. */
#include <stdarg.h>
#include <stdio.h>

#include "mp_internal.h"

const char *mp_strerror(mp_err err)
{
    switch (err) {
    case MP_OK:
        return "ok";
    case MP_ERR_INVAL:
        return "invalid argument";
    case MP_ERR_NOMEM:
        return "out of memory";
    case MP_ERR_RESOLVE:
        return "host name not resolved";
    case MP_ERR_REFUSED:
        return "connection refused";
    case MP_ERR_TIMEOUT:
        return "timed out";
    case MP_ERR_CLOSED:
        return "connection closed";
    case MP_ERR_IO:
        return "socket error";
    case MP_ERR_PROTOCOL:
        return "protocol error";
    case MP_ERR_SERVER:
        return "the broker refused the request";
    case MP_ERR_STATE:
        return "not allowed in this state";
    case MP_ERR_BUSY:
        return "output queue full";
    case MP_ERR_TLS:
        return "TLS failed";
    }
    return "unknown error";
}

/* One row per code of docs/protocol.md. */
static const struct {
    int code;
    const char *text;
} code_texts[] = {
    {200, "ok"},
    {400, "bad request: a field is missing or invalid"},
    {401, "not logged in, or wrong user name or password"},
    {403, "forbidden"},
    {404, "no such user, or unknown request type"},
    {408, "timed out: idle for too long, or no login in time"},
    {409, "conflict: the user exists already, or is logged in elsewhere"},
    {413, "too large"},
    {429, "too many requests or failed logins: try again later"},
    {500, "internal error in the broker"},
    {503, "broker unavailable: storage down or shutting down"},
    {507, "the recipient's mailbox is full"},
};

const char *mp_code_text(int code)
{
    for (size_t i = 0; i < sizeof code_texts / sizeof code_texts[0]; i++)
        if (code_texts[i].code == code) return code_texts[i].text;
    return "unknown error";
}

mp_err mp_fail(mp_client *c, mp_err err, int code, const char *fmt, ...)
{
    c->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return err;
}

void mp_clear_error(mp_client *c)
{
    c->code = 0;
    c->errmsg[0] = '\0';
}

const char *mp_client_errmsg(const mp_client *c)
{
    return c ? c->errmsg : "no client";
}

int mp_client_code(const mp_client *c)
{
    return c ? c->code : 0;
}
