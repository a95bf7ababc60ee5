/* util: helpers shared by the libmoonpost tests. */
#include "util.h"

#include <netinet/in.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

const char *test_host(void)
{
    const char *h = getenv("MOONPOST_HOST");
    return h ? h : "127.0.0.1";
}

uint16_t test_port(void)
{
    const char *p = getenv("MOONPOST_PORT");
    return p ? (uint16_t)strtol(p, NULL, 10) : MP_DEFAULT_PORT;
}

const char *test_admin_socket(void)
{
    const char *p = getenv("MOONPOST_ADMIN_SOCKET");
    return p ? p : MP_DEFAULT_ADMIN_SOCKET;
}

void test_user(char *buf, size_t len, const char *prefix)
{
    static unsigned counter;
    snprintf(buf, len, "%s%d_%u", prefix, (int)getpid() % 100000, ++counter);
}

mp_client *test_connect(void)
{
    mp_client *c = mp_client_new();
    assert_non_null(c);
    mp_err err = mp_client_connect(c, test_host(), test_port(), 5000);
    if (err != MP_OK) fail_msg("connect: %s", mp_client_errmsg(c));
    return c;
}

mp_client *test_login_new(char *user, size_t len, const char *prefix)
{
    test_user(user, len, prefix);
    mp_client *c = test_connect();
    mp_err err = mp_register(c, user, TEST_PASSWORD, NULL);
    if (err != MP_OK) fail_msg("register %s: %s", user, mp_client_errmsg(c));
    err = mp_login(c, user, TEST_PASSWORD, NULL);
    if (err != MP_OK) fail_msg("login %s: %s", user, mp_client_errmsg(c));
    return c;
}

int test_run_until(mp_client *c, const int *flag, int at_least, int timeout_ms)
{
    for (int waited = 0; *flag < at_least && waited < timeout_ms; waited += 20) {
        if (mp_client_run(c, 20) != MP_OK) break;
    }
    return *flag;
}

size_t test_map(uint8_t *buf, size_t cap, const char *type, const char *key, const char *value)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, key ? 2 : 1);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, type, strlen(type));
    if (key) {
        msgpack_pack_str_with_body(&pk, key, strlen(key));
        msgpack_pack_str_with_body(&pk, value, strlen(value));
    }
    size_t n = sb.size;
    assert_true(n <= cap);
    memcpy(buf, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

uint16_t test_dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}
