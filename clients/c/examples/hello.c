/* hello: the smallest complete libmoonpost program. Copy it to start your own.
 *
 * It connects, registers the account (an existing one is fine), logs in, sends itself a
 * message, waits until the message comes back through the on_msg callback, and logs out.
 *
 * Build against the installed library:
 *     cc hello.c $(pkg-config --cflags --libs moonpost) -o hello
 * Run (broker on 127.0.0.1:8889):
 *     ./hello [HOST [PORT [USER [PASSWORD]]]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonpost.h>

static void on_msg(mp_client *c, const mp_message *m, void *ud)
{
    int *received = ud;
    printf("message %llu from %s: %.*s\n", (unsigned long long)m->mid, m->from, (int)m->body_len,
           (const char *)m->body);
    *received = 1;
    mp_client_stop(c); /* makes mp_client_run return */
}

static int fail(mp_client *c, const char *what, mp_err err)
{
    fprintf(stderr, "hello: %s: %s (%s)\n", what, mp_strerror(err), mp_client_errmsg(c));
    mp_client_free(c);
    return 1;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    long port = argc > 2 ? strtol(argv[2], NULL, 10) : MP_DEFAULT_PORT;
    const char *user = argc > 3 ? argv[3] : "100";
    const char *password = argc > 4 ? argv[4] : "123456";

    mp_client *c = mp_client_new();
    if (c == NULL) return 1;
    int received = 0;
    mp_callbacks cb = {.on_msg = on_msg};
    mp_client_set_callbacks(c, &cb, &received);

    mp_err err = mp_client_connect(c, host, (uint16_t)port, 5000);
    if (err != MP_OK) return fail(c, "connect", err);

    err = mp_register(c, user, password, NULL);
    if (err != MP_OK && mp_client_code(c) != 409) return fail(c, "register", err);

    mp_userlist *online = NULL;
    err = mp_login(c, user, password, &online);
    if (err != MP_OK) return fail(c, "login", err);
    printf("logged in as %s; %llu user(s) online\n", user, (unsigned long long)online->total);
    mp_userlist_free(online); /* lists are the caller's to free */

    const char *text = "hello, moonpost";
    err = mp_send(c, user, text, strlen(text), MP_BODY_STR, NULL, NULL);
    if (err != MP_OK) return fail(c, "send", err);

    /* Let the library dispatch pushes until on_msg stops it, 5 s at most. */
    err = mp_client_run(c, 5000);
    if (err != MP_OK) return fail(c, "run", err);
    if (!received) {
        fprintf(stderr, "hello: the message did not come back\n");
        mp_client_free(c);
        return 1;
    }

    err = mp_logout(c);
    if (err != MP_OK) return fail(c, "logout", err);
    mp_client_free(c);
    return 0;
}
