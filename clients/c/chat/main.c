/* moonpost-chat: a terminal chat client on libmoonpost. Options, then one poll loop over stdin
 * and the broker's socket, so messages print while the user types. */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "term.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: moonpost-chat [--host HOST] [--port PORT] [--user USER --password PASSWORD\n"
            "                     [--register]] [--timeout SECONDS] [--tls [--ca FILE]]\n"
            "A terminal chat client for the moonpost broker.\n"
            "  -H, --host HOST        broker host (default 127.0.0.1)\n"
            "  -p, --port PORT        broker port (default %d)\n"
            "  -u, --user USER        log in as USER at start (skips the first menu)\n"
            "  -P, --password PW      password for --user (or set MOONPOST_PASSWORD)\n"
            "  -r, --register         register USER first (an existing account is fine)\n"
            "  -t, --timeout SECONDS  how long to wait for the broker (default 10)\n"
            "      --tls              speak TLS (to the broker's tls_listen port); the broker's\n"
            "                         certificate must be trusted and name HOST\n"
            "      --ca FILE          trust the CAs of FILE (PEM) instead of the system's\n"
            "  -d, --download-dir DIR where /get saves files (default: the current directory)\n"
            "  -h, --help             this text\n"
            "After login type a menu number, or /msg USER TEXT, /all TEXT, /users, /quit,\n"
            "/join ROOM (then type to talk there), /rooms, /history [N], /leave, /help\n"
            "(/quit, end of input and Ctrl-C log out and leave).\n"
            "Exit status: 0 after /quit or end of input, 1 when the --user login fails,\n"
            "2 for bad options.\n",
            MP_DEFAULT_PORT);
}

struct options {
    const char *user, *password;
    int register_first;
    int tls;
    const char *ca_file; /* NULL: the system's trusted CAs */
};

enum { OPT_TLS = 256, OPT_CA };

static int parse(int argc, char **argv, struct chat *ch, struct options *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"user", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'P'},
        {"register", no_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"tls", no_argument, NULL, OPT_TLS},
        {"ca", required_argument, NULL, OPT_CA},
        {"download-dir", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "H:p:u:P:rt:hd:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            ch->host = optarg;
            break;
        case 'p': {
            long port = strtol(optarg, NULL, 10);
            if (port < 1 || port > 65535) {
                fprintf(stderr, "moonpost-chat: bad port %s\n", optarg);
                return -1;
            }
            ch->port = (uint16_t)port;
            break;
        }
        case 'u':
            o->user = optarg;
            break;
        case 'P':
            o->password = optarg;
            break;
        case 'r':
            o->register_first = 1;
            break;
        case 't':
            ch->timeout_ms = (int)(strtod(optarg, NULL) * 1000);
            break;
        case OPT_TLS:
            o->tls = 1;
            break;
        case OPT_CA:
            o->ca_file = optarg;
            break;
        case 'd':
            ch->download_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (o->password == NULL) o->password = getenv("MOONPOST_PASSWORD");
    if (optind != argc || ch->timeout_ms <= 0 || (o->user && !o->password) ||
        (o->ca_file && !o->tls)) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int poll_timeout(struct chat *ch)
{
    int64_t now = chat_now_ms();
    int64_t wait = CHAT_KEEPALIVE_MS;
    if (ch->reconnecting) wait = ch->next_retry_ms - now;
    int lib = mp_client_next_timeout(ch->client);
    if (lib >= 0 && lib < wait) wait = lib;
    return wait < 0 ? 0 : (int)wait;
}

static void run(struct chat *ch)
{
    char line[TERM_LINE_MAX];
    while (!ch->quit && !interrupted) {
        struct pollfd pfd[2] = {{.fd = 0, .events = POLLIN}, {.fd = -1}};
        int events = mp_client_events(ch->client);
        if (events) {
            pfd[1].fd = mp_client_fd(ch->client);
            pfd[1].events =
                (short)((events & MP_EV_READ ? POLLIN : 0) | (events & MP_EV_WRITE ? POLLOUT : 0));
        }
        if (poll(pfd, 2, poll_timeout(ch)) < 0) continue; /* EINTR: a signal */
        if (pfd[0].revents) {
            int eof = term_feed() < 0;
            while (!ch->quit && term_next_line(line, sizeof line))
                chat_handle_line(ch, line);
            if (eof) break;
        }
        if (mp_client_is_connected(ch->client)) {
            mp_err err = mp_client_process(ch->client);
            if (err != MP_OK) chat_connection_lost(ch, err);
        }
        chat_tick(ch);
    }
}

int main(int argc, char **argv)
{
    struct chat ch = {
        .host = "127.0.0.1", .port = MP_DEFAULT_PORT, .timeout_ms = 10000, .download_dir = "."};
    struct options o = {0};
    if (parse(argc, argv, &ch, &o) != 0) return 2;

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll wakes up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ch.client = mp_client_new();
    if (ch.client == NULL) return 1;
    mp_client_set_callbacks(ch.client, &chat_callbacks, &ch);
    mp_client_set_timeout(ch.client, ch.timeout_ms);
    if (o.tls && mp_client_use_tls(ch.client, o.ca_file, NULL) != MP_OK) {
        fprintf(stderr, "moonpost-chat: %s\n", mp_client_errmsg(ch.client));
        mp_client_free(ch.client);
        return 2;
    }
    term_init();

    int status = 0;
    if (o.user) {
        if (o.register_first && chat_connect(&ch)) {
            mp_err err = mp_register(ch.client, o.user, o.password, NULL);
            if (err != MP_OK && mp_client_code(ch.client) != 409) chat_report(&ch, "register", err);
        }
        if (!chat_login(&ch, o.user, o.password)) {
            status = 1;
            ch.quit = 1;
        } else {
            chat_set_state(&ch, ST_CHAT);
            chat_show_menu(&ch);
        }
    } else {
        chat_set_state(&ch, ST_MAIN);
        chat_show_menu(&ch);
    }
    if (!ch.quit) run(&ch);
    /* leaving logs out: the broker revokes the token and tells the others at once */
    if (ch.state >= ST_CHAT && mp_client_is_connected(ch.client)) mp_logout(ch.client);

    term_restore();
    if (status == 0) printf("\nbye\n");
    mp_client_free(ch.client);
    chat_inbox_free(&ch);
    return status;
}
