/* shutdown: the graceful stop, for a signal and admin.shutdown alike: stop accepting, `bye` 503
 * to every session, leave the loop once they are flushed or shutdown_timeout passed. */
#include "shutdown.h"

#include "broker.h"
#include "clock.h"
#include "cluster.h"
#include "log.h"
#include "server.h"
#include "session.h"

static struct event *shutdown_poll;
static struct event *shutdown_deadline;

static void on_shutdown_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    if (session_count() == 0) event_base_loopbreak(broker.base);
}

static void on_shutdown_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    log_warn("shutdown_timeout reached with %zu session(s) still flushing", session_count());
    event_base_loopbreak(broker.base);
}

static void close_with_bye(struct session *s, void *arg)
{
    (void)arg;
    session_close(s, 503, "shutting down");
}

void broker_shutdown(const char *why)
{
    if (broker.shutting_down) return;
    broker.shutting_down = 1;
    log_info("shutting down (%s), %zu session(s)", why, session_count());
    server_stop_accepting();
    cluster_leave();
    session_foreach(close_with_bye, NULL);
    struct timeval poll = {0, 20000};
    shutdown_poll = event_new(broker.base, -1, EV_PERSIST, on_shutdown_poll, NULL);
    event_add(shutdown_poll, &poll);
    struct timeval deadline = clock_timeval(broker.conf.shutdown_timeout);
    shutdown_deadline = evtimer_new(broker.base, on_shutdown_deadline, NULL);
    evtimer_add(shutdown_deadline, &deadline);
}

void broker_shutdown_free(void)
{
    if (shutdown_poll) event_free(shutdown_poll);
    if (shutdown_deadline) event_free(shutdown_deadline);
    shutdown_poll = shutdown_deadline = NULL;
}
