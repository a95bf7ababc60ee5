/* server: the listening sockets (client TCP, admin Unix socket) and accepting connections. */
#ifndef MOONPOST_SERVER_H
#define MOONPOST_SERVER_H

/* server_listen's answer when a live broker already answers on the configured admin_socket
 * (the broker then exits with the configuration-error code). */
#define SERVER_IN_USE (-2)

/* Opens the admin socket, then every client listener. Returns 0, SERVER_IN_USE, or -1 after
 * logging which address failed and why (errno text). A stale admin socket (nothing answers on
 * it) is replaced. */
int server_listen(void);
/* Stops accepting (shutdown), keeping the sockets for server_close. */
void server_stop_accepting(void);
void server_close(void);

#endif
