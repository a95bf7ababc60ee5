/* reconnect: back to the last address, resuming the session with its token. */
#include <poll.h>

#include "mp_internal.h"

#define FIRST_PAUSE_MS 100
#define MAX_PAUSE_MS 2000

/* Worth another try: the broker is away (restarting, overloaded) rather than saying no. */
static int transient(mp_client *c, mp_err err)
{
    switch (err) {
    case MP_ERR_REFUSED:
    case MP_ERR_TIMEOUT:
    case MP_ERR_CLOSED:
    case MP_ERR_IO:
    case MP_ERR_RESOLVE:
        return 1;
    case MP_ERR_SERVER:
        return c->code == 503;
    default:
        return 0;
    }
}

static mp_err attempt(mp_client *c, int64_t left, mp_userlist **online)
{
    mp_err err = mp_conn_open(c, left < c->timeout_ms ? (int)left : c->timeout_ms);
    if (err != MP_OK || c->token[0] == '\0') return err;
    char user[MP_NAME_MAX + 1], token[MP_NAME_MAX + 1];
    mp_copy_name(user, c->user);
    mp_copy_name(token, c->token);
    return mp_resume(c, user, token, online);
}

mp_err mp_client_reconnect(mp_client *c, int timeout_ms, mp_userlist **online)
{
    if (online) *online = NULL;
    if (c == NULL) return MP_ERR_INVAL;
    mp_clear_error(c);
    if (timeout_ms <= 0) return mp_fail(c, MP_ERR_INVAL, 0, "reconnect needs a timeout > 0");
    if (c->depth > 0) return mp_fail(c, MP_ERR_STATE, 0, "cannot reconnect inside a callback");
    if (c->addr.host == NULL) return mp_fail(c, MP_ERR_STATE, 0, "never connected");
    int64_t deadline = mp_now_ms() + timeout_ms;
    int pause = FIRST_PAUSE_MS;
    for (;;) {
        mp_err err = attempt(c, deadline - mp_now_ms(), online);
        if (err == MP_OK || !transient(c, err)) return err; /* a 401 leaves it open for login */
        mp_conn_close(c, err);
        int64_t left = deadline - mp_now_ms();
        if (left <= 0) return err;
        poll(NULL, 0, left < pause ? (int)left : pause);
        if (pause < MAX_PAUSE_MS) pause = pause * 2 < MAX_PAUSE_MS ? pause * 2 : MAX_PAUSE_MS;
        if (deadline - mp_now_ms() <= 0) return err;
    }
}
