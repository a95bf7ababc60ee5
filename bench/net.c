/* net: resolving the target, source addresses, non-blocking connects. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static int is_loopback(const struct sockaddr_in *a)
{
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
}

int net_resolve(const char *host, int port, int allow_remote, struct sockaddr_in *out)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        fprintf(stderr, "moonpost-bench: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, sizeof *out);
    freeaddrinfo(res);
    out->sin_port = htons((uint16_t)port);
    if (!is_loopback(out) && !allow_remote) {
        fprintf(stderr,
                "moonpost-bench: %s is not a loopback address; a load generator aims at "
                "127.0.0.0/8 unless --allow-remote is given\n",
                host);
        return -1;
    }
    return 0;
}

int net_resolve_list(const char *list, int default_port, int allow_remote, struct sockaddr_in *out,
                     int max)
{
    char item[256];
    int n = 0;
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item || n == max) {
            fprintf(stderr, "moonpost-bench: --connect %s: 1 to %d addresses HOST[:PORT]\n", list,
                    max);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        int port = default_port;
        char *colon = strrchr(item, ':');
        if (colon != NULL) {
            char *end;
            long v = strtol(colon + 1, &end, 10);
            if (end == colon + 1 || *end != '\0' || v < 1 || v > 65535) {
                fprintf(stderr, "moonpost-bench: --connect: bad port in '%s'\n", item);
                return -1;
            }
            port = (int)v;
            *colon = '\0';
        }
        if (net_resolve(item, port, allow_remote, &out[n++]) != 0) return -1;
        p += len + (p[len] == ',');
    }
    if (n == 0) fprintf(stderr, "moonpost-bench: --connect: no address\n");
    return n ? n : -1;
}

int net_parse_source(const char *text, uint32_t *out)
{
    struct in_addr a;
    if (inet_pton(AF_INET, text, &a) != 1) {
        fprintf(stderr, "moonpost-bench: --src-base %s: not an IPv4 address\n", text);
        return -1;
    }
    *out = ntohl(a.s_addr);
    return 0;
}

int net_source_addrs(const struct sockaddr_in *target, int total)
{
    if (!is_loopback(target) || total <= BENCH_PORTS_PER_ADDR) return 0;
    return (total + BENCH_PORTS_PER_ADDR - 1) / BENCH_PORTS_PER_ADDR;
}

static int bind_source(int fd, uint32_t base, unsigned index)
{
    int one = 1;
    /* the port is picked at connect() time, per destination, not reserved at bind() */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(base + index / BENCH_PORTS_PER_ADDR);
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

int net_connect(const struct sockaddr_in *target, int src_addrs, uint32_t src_base,
                unsigned index)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (src_addrs > 0 && bind_source(fd, src_base, index) != 0) {
        close(fd);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)target, sizeof *target) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

int net_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}
