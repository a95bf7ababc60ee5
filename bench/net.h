/* net: the sockets of the load generator: where to connect, from which source address,
 * and the loopback-only rule. */
#ifndef MOONPOST_BENCH_NET_H
#define MOONPOST_BENCH_NET_H

#include <netinet/in.h>
#include <stdint.h>

/* Resolves HOST:PORT to an IPv4 address. Refuses anything outside 127.0.0.0/8 unless
 * ALLOW_REMOTE. Returns 0, or -1 with a message on stderr. */
int net_resolve(const char *host, int port, int allow_remote, struct sockaddr_in *out);

/* Resolves LIST, "HOST[:PORT][,HOST[:PORT]...]" (PORT defaults to DEFAULT_PORT), into at most
 * MAX addresses with net_resolve. Returns how many, or -1 with a message on stderr. */
int net_resolve_list(const char *list, int default_port, int allow_remote, struct sockaddr_in *out,
                     int max);

/* Parses the IPv4 address TEXT into host byte order. Returns 0, or -1 with a message. */
int net_parse_source(const char *text, uint32_t *out);

/* How many loopback source addresses TOTAL connections need so that ephemeral ports do not run
 * out (one per BENCH_PORTS_PER_ADDR connections); 0 means "let the kernel choose". */
int net_source_addrs(const struct sockaddr_in *target, int total);

/* Starts a non-blocking connect of client INDEX to TARGET with TCP_NODELAY set; with SRC_ADDRS
 * > 0 the socket is bound to SRC_BASE + index / BENCH_PORTS_PER_ADDR first (host byte order).
 * Returns the fd (the connect may still be in progress), or -1. */
int net_connect(const struct sockaddr_in *target, int src_addrs, uint32_t src_base,
                unsigned index);

/* After the socket became writable: 0 when connected, else the errno of the failure. */
int net_connect_result(int fd);

#endif
