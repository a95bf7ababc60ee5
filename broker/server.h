/* server: the listening sockets (client TCP, admin Unix socket) and accepting connections. */
#ifndef MOONPOST_SERVER_H
#define MOONPOST_SERVER_H

/* Opens every configured listener. Returns 0, or -1 after logging which address failed. */
int server_listen(void);
/* Stops accepting (shutdown), keeping the sockets for server_close. */
void server_stop_accepting(void);
void server_close(void);

#endif
