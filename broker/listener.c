/* listener: evconnlistener plus a back-off timer. libevent calls the error callback for each
 * failed accept and leaves the socket armed: with no descriptor left, the loop would call
 * accept again at once, for ever. */
#include "listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define LISTEN_BACKLOG 4096

struct listener {
    struct evconnlistener *ev;
    struct event *resume;
    evconnlistener_cb cb;
    void *arg;
    int backoff_ms; /* next pause; doubles while accept keeps failing, reset by a success */
    int stopped;
    struct log_every log;
    char name[64];
};

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg)
{
    struct listener *l = arg;
    l->backoff_ms = BACKOFF_MIN_MS;
    l->cb(ev, fd, addr, len, l->arg);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct listener *l = arg;
    if (!l->stopped) evconnlistener_enable(l->ev);
}

static int out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void on_error(struct evconnlistener *ev, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (!out_of_resources(err)) {
        log_every(&l->log, LOG_LEVEL_ERROR, "accept on %s failed: %s", l->name, strerror(err));
        return;
    }
    struct timeval tv = {l->backoff_ms / 1000, (suseconds_t)(l->backoff_ms % 1000) * 1000};
    log_every(&l->log, LOG_LEVEL_ERROR, "accept on %s failed: %s; pausing accepts for %d ms",
              l->name, strerror(err), l->backoff_ms);
    evconnlistener_disable(ev);
    evtimer_add(l->resume, &tv);
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

struct listener *listener_new(struct event_base *base, struct sockaddr *sa, int len,
                              unsigned flags, evconnlistener_cb cb, void *arg, const char *name)
{
    struct listener *l = calloc(1, sizeof *l);
    if (l == NULL) return NULL;
    l->cb = cb;
    l->arg = arg;
    l->backoff_ms = BACKOFF_MIN_MS;
    l->log = (struct log_every)LOG_EVERY(10);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->resume = evtimer_new(base, on_resume, l);
    l->ev = evconnlistener_new_bind(base, on_accept, l, flags, LISTEN_BACKLOG, sa, len);
    if (l->resume == NULL || l->ev == NULL) {
        int saved = errno;
        listener_free(l);
        errno = saved;
        return NULL;
    }
    evconnlistener_set_error_cb(l->ev, on_error);
    return l;
}

void listener_stop(struct listener *l)
{
    l->stopped = 1;
    evtimer_del(l->resume);
    evconnlistener_disable(l->ev);
}

void listener_free(struct listener *l)
{
    if (l == NULL) return;
    if (l->ev) evconnlistener_free(l->ev);
    if (l->resume) event_free(l->resume);
    free(l);
}
