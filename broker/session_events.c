/* session_events: the lifecycle of a session as events (opened, logged in, closed) that other
 * modules subscribe to, and logging a session in: the login checks, the presence swap and the
 * `bye` 409 to the session the user had before. Only the session module fires the events. */
#include <string.h>

#include "presence.h"
#include "session.h"

#define SESSION_MAX_SUBSCRIBERS 8
#define SESSION_MAX_LOGIN_CHECKS 16

struct subscriber {
    session_event_fn fn;
    void *state;
};

struct login_check {
    session_login_check fn;
    void *state;
};

static struct subscriber subscribers[SESSION_MAX_SUBSCRIBERS];
static size_t subscriber_count;
static struct login_check login_checks[SESSION_MAX_LOGIN_CHECKS];
static size_t login_check_count;

int session_subscribe(session_event_fn fn, void *state)
{
    if (subscriber_count == SESSION_MAX_SUBSCRIBERS) return -1;
    subscribers[subscriber_count++] = (struct subscriber){fn, state};
    return 0;
}

int session_add_login_check(session_login_check fn, void *state)
{
    if (login_check_count == SESSION_MAX_LOGIN_CHECKS) return -1;
    login_checks[login_check_count++] = (struct login_check){fn, state};
    return 0;
}

void session_unsubscribe_all(void)
{
    subscriber_count = 0;
    login_check_count = 0;
}

void session_emit(struct session *s, enum session_event event)
{
    for (size_t i = 0; i < subscriber_count; i++) subscribers[i].fn(subscribers[i].state, s, event);
}

void session_supersede(struct session *s)
{
    s->superseded = 1;
    session_close(s, 409, "logged in elsewhere");
}

int session_login(struct session *s, const char *user, size_t len, const char **error)
{
    if (len == 0 || len > SESSION_USER_MAX || s->state == SESSION_CLOSING) {
        *error = "cannot log this session in";
        return 400;
    }
    for (size_t i = 0; i < login_check_count; i++) {
        const char *why = "login refused";
        int code = login_checks[i].fn(login_checks[i].state, s, user, len, &why);
        if (code != 0) {
            *error = why;
            return code;
        }
        if (s->state == SESSION_CLOSING) { /* the check closed it */
            *error = "session closed";
            return 503;
        }
    }
    presence_remove(s);
    session_set_user(s, user, len);
    s->last_mid = s->covered_mid = s->held_mid = 0;
    s->claim_seq = s->kicked_seq = 0;
    struct session *older = presence_add(s);
    if (older != NULL) session_supersede(older);
    session_emit(s, SESSION_LOGGED_IN);
    return 0;
}
