/* server: the listening sockets (client TCP, admin Unix socket) and accepting connections. */
#ifndef MOONPOST_SERVER_H
#define MOONPOST_SERVER_H

/* server_listen's answer when a live broker already answers on the configured admin_socket
 * (the broker then exits with the configuration-error code). */
#define SERVER_IN_USE (-2)

#include <event2/listener.h>

struct listener;

/* Listens on the Unix socket PATH (mode 0600) for an admin console, after removing a stale
 * socket there (nothing answers on it); CB(ARG) gets each connection. Returns the listener, or
 * NULL with *RC = SERVER_IN_USE or -1 (logged). */
struct listener *server_listen_admin(struct event_base *base, const char *path,
                                     evconnlistener_cb cb, void *arg, int *rc);

/* Opens the admin socket, then every client listener. Returns 0, SERVER_IN_USE, or -1 after
 * logging which address failed and why (errno text). A stale admin socket (nothing answers on
 * it) is replaced. */
int server_listen(void);
/* Stops accepting (shutdown), keeping the sockets for server_close. */
void server_stop_accepting(void);
void server_close(void);

#endif
