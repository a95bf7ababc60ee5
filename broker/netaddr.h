/* netaddr: the network addresses of the configuration ("host:port", "[v6]:port", a host name
 * and a port): checked when the config is read, and resolved to a socket address to bind. */
#ifndef MOONPOST_NETADDR_H
#define MOONPOST_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Room for a reason like "cannot resolve 'host': Name or service not known". */
#define NETADDR_WHY_MAX 320

/* Splits ADDR into its host (brackets of "[v6]" removed) and its port, which must be 1..65535.
 * Returns 0, or -1 with WHY filled ("port 88890 out of range 1..65535"). */
int netaddr_split(const char *addr, char *host, size_t host_size, int *port, char *why,
                  size_t why_size);

/* Resolves ADDR for a listening socket: a numeric address as written, a host name through
 * getaddrinfo (its first address). Returns 0, or -1 with WHY filled. */
int netaddr_resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *why,
                    size_t why_size);

#endif
