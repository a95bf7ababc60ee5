/* listener: a listening socket that backs off when accept runs out of descriptors (EMFILE,
 * ENFILE) or memory, instead of retrying at once in a loop that spins and floods the log. */
#ifndef MOONPOST_LISTENER_H
#define MOONPOST_LISTENER_H

#include <event2/listener.h>

struct listener;

/* Listens on SA with evconnlistener FLAGS on BASE; CB gets each accepted socket. NAME is used
 * in log lines. Returns NULL (errno set) when the socket cannot be bound. */
struct listener *listener_new(struct event_base *base, struct sockaddr *sa, int len,
                              unsigned flags, evconnlistener_cb cb, void *arg, const char *name);
/* Stops accepting for good (shutdown); a pending back-off does not resume it. */
void listener_stop(struct listener *l);
void listener_free(struct listener *l);

#endif
