/* netaddr: splits, checks and resolves "host:port" / "[v6]:port" addresses of the config. */
#include "netaddr.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PORT_MAX 65535

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return -1;
}

/* Digits only, at most 9 of them (so that the value fits an int and a range error can name it). */
static int parse_port(const char *text, int *port, char *why, size_t why_size)
{
    size_t n = strlen(text);
    if (n == 0) return fail(why, why_size, "missing port after ':' (HOST:PORT, port 1..65535)");
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)text[i]))
            return fail(why, why_size, "port '%s' is not a number", text);
    long value = n > 9 ? PORT_MAX + 1L : strtol(text, NULL, 10);
    if (value < 1 || value > PORT_MAX)
        return fail(why, why_size, "port %s out of range 1..%d", text, PORT_MAX);
    *port = (int)value;
    return 0;
}

int netaddr_split(const char *addr, char *host, size_t host_size, int *port, char *why,
                  size_t why_size)
{
    const char *host_start = addr, *host_end, *rest;
    if (addr[0] == '[') {
        host_start = addr + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL) return fail(why, why_size, "'[' without ']' in '%s'", addr);
        rest = host_end + 1;
        if (*rest != ':')
            return fail(why, why_size, "missing port in '%s' (write [IPV6]:PORT)", addr);
    } else {
        host_end = strrchr(addr, ':');
        if (host_end == NULL)
            return fail(why, why_size, "missing port in '%s' (write HOST:PORT)", addr);
        if (memchr(addr, ':', (size_t)(host_end - addr)) != NULL)
            return fail(why, why_size, "an IPv6 address is written in brackets: [ADDR]:PORT");
        rest = host_end;
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len == 0) return fail(why, why_size, "missing host in '%s' (write HOST:PORT)", addr);
    if (host_len >= host_size) return fail(why, why_size, "host name too long in '%s'", addr);
    if (parse_port(rest + 1, port, why, why_size) != 0) return -1;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    return 0;
}

int netaddr_resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *why,
                    size_t why_size)
{
    char host[NI_MAXHOST], service[8];
    int port = 0;
    if (netaddr_split(addr, host, sizeof host, &port, why, why_size) != 0) return -1;
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int rc = getaddrinfo(host, service, &hints, &found);
    if (rc != 0)
        return fail(why, why_size, "cannot resolve '%s': %s", host,
                    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    memcpy(ss, found->ai_addr, found->ai_addrlen);
    *len = found->ai_addrlen;
    freeaddrinfo(found);
    return 0;
}
