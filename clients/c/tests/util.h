/* util: helpers shared by the libmoonpost tests (broker address, fresh users, waiting). */
#ifndef MOONPOST_TEST_UTIL_H
#define MOONPOST_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "moonpost.h"

#define TEST_PASSWORD "secret-pw"

/* Broker address from MOONPOST_HOST / MOONPOST_PORT (set by run_with_broker.py). */
const char *test_host(void);
uint16_t test_port(void);
const char *test_admin_socket(void);

/* A user name no other test used: PREFIX, the pid and a counter. */
void test_user(char *buf, size_t len, const char *prefix);

/* A connected client (fails the test otherwise). */
mp_client *test_connect(void);
/* A connected client logged in as a new user registered with TEST_PASSWORD; name in USER. */
mp_client *test_login_new(char *user, size_t len, const char *prefix);

/* Runs C until *FLAG reaches AT_LEAST or TIMEOUT_MS passes; returns the final *FLAG. */
int test_run_until(mp_client *c, const int *flag, int at_least, int timeout_ms);

/* Packs {type: TYPE} or {type: TYPE, KEY: VALUE} into BUF; returns the length. */
size_t test_map(uint8_t *buf, size_t cap, const char *type, const char *key, const char *value);

/* A TCP port on 127.0.0.1 where nothing listens (bound, then closed). */
uint16_t test_dead_port(void);

#endif
