/* moonpostctl: the admin console. Connects to the broker's admin Unix socket (same framing as
 * the client port) through libmoonpost and runs one admin.* command. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "moonpost.h"
#include "print.h"

#define EXIT_BROKER 1 /* the broker answered with an error */
#define EXIT_USAGE 2
#define EXIT_CONNECT 3 /* no connection, or it broke */

typedef void (*printer)(FILE *out, const mp_reply *r, const char *arg);

/* Every command: its frame type, the field its argument goes to (NULL: none) and its table. */
static const struct command {
    const char *name;
    const char *type;
    const char *arg_key; /* required argument, sent as a str */
    const char *opt_key; /* optional argument, sent as an unsigned integer */
    printer print;
    const char *help;
} commands[] = {
    {"stats", "admin.stats", NULL, NULL, print_stats, "counters and state of the broker"},
    {"users", "admin.users", NULL, "limit", print_users, "[LIMIT]  users online (default 10000)"},
    {"kick", "admin.kick", "user", NULL, print_kick, "USER  disconnect USER (bye 403)"},
    {"nodes", "admin.nodes", NULL, NULL, print_nodes, "the live brokers of the cluster"},
    {"broadcast", "admin.broadcast", "body", NULL, print_broadcast,
     "TEXT  send TEXT to everyone online, as a system message"},
    {"reload", "admin.reload", NULL, NULL, print_reload, "reload the Lua scripts"},
    {"shutdown", "admin.shutdown", NULL, NULL, print_shutdown, "stop the broker gracefully"},
    {"plugins", "admin.plugins", NULL, NULL, print_plugins, "loaded plugins and handlers"},
    {"loglevel", "admin.loglevel", "level", NULL, print_loglevel,
     "LEVEL  debug, info, warn or error"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: moonpostctl [--socket PATH] [--json] [--timeout SECONDS] COMMAND [ARG]\n"
                 "Runs one command on a moonpost broker through its admin socket.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\noptions:\n"
                 "  -s, --socket PATH      admin socket (default " MP_DEFAULT_ADMIN_SOCKET ")\n"
                 "  -j, --json             print the reply as one JSON object\n"
                 "  -t, --timeout SECONDS  how long to wait for the broker (default 10)\n"
                 "  -h, --help             this text\n\n"
                 "exit status: 0 ok, 1 the broker answered an error, 2 bad usage,\n"
                 "3 no connection to the broker\n");
}

static const struct command *lookup(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* {type, [argument]} for CMD. Returns -1 for a bad optional argument. */
static int build(msgpack_sbuffer *sb, const struct command *cmd, const char *arg)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int with_arg = arg != NULL && (cmd->arg_key || cmd->opt_key);
    msgpack_pack_map(&pk, with_arg ? 2 : 1);
    pack_str(&pk, "type");
    pack_str(&pk, cmd->type);
    if (!with_arg) return 0;
    if (cmd->arg_key) {
        pack_str(&pk, cmd->arg_key);
        pack_str(&pk, arg);
        return 0;
    }
    char *end;
    unsigned long long n = strtoull(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || arg[0] == '-') return -1;
    pack_str(&pk, cmd->opt_key);
    msgpack_pack_unsigned_long_long(&pk, n);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *socket_path = MP_DEFAULT_ADMIN_SOCKET;
    int json = 0, timeout_ms = 10000, opt;
    while ((opt = getopt_long(argc, argv, "+s:jt:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket_path = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 't':
            timeout_ms = (int)(strtod(optarg, NULL) * 1000);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc || timeout_ms <= 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct command *cmd = lookup(argv[optind]);
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    int max_args = cmd && (cmd->arg_key || cmd->opt_key) ? 1 : 0;
    if (cmd == NULL || argc - optind - 1 > max_args || (cmd->arg_key && arg == NULL)) {
        if (cmd == NULL)
            fprintf(stderr, "moonpostctl: unknown command '%s'\n", argv[optind]);
        else if (cmd->arg_key && arg == NULL)
            fprintf(stderr, "moonpostctl: %s needs an argument\n", cmd->name);
        else
            fprintf(stderr, "moonpostctl: too many arguments for %s\n", cmd->name);
        usage(stderr);
        return EXIT_USAGE;
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (build(&sb, cmd, arg) != 0) {
        fprintf(stderr, "moonpostctl: %s: '%s' is not a number\n", cmd->name, arg);
        msgpack_sbuffer_destroy(&sb);
        return EXIT_USAGE;
    }

    mp_client *c = mp_client_new();
    if (c == NULL) {
        msgpack_sbuffer_destroy(&sb);
        return EXIT_CONNECT;
    }
    mp_client_set_timeout(c, timeout_ms);
    int status = 0;
    mp_reply *reply = NULL;
    mp_err err = mp_client_connect_unix(c, socket_path, timeout_ms);
    if (err == MP_OK) err = mp_call(c, sb.data, sb.size, &reply);
    if (err == MP_OK) {
        if (json)
            print_json(stdout, reply);
        else
            cmd->print(stdout, reply, arg);
    } else if (err == MP_ERR_SERVER) {
        fprintf(stderr, "moonpostctl: %s: %s (%d)\n", cmd->name, mp_client_errmsg(c),
                mp_client_code(c));
        if (json) print_json(stdout, reply);
        status = EXIT_BROKER;
    } else {
        fprintf(stderr, "moonpostctl: %s: %s\n", cmd->name, mp_client_errmsg(c));
        status = EXIT_CONNECT;
    }
    mp_reply_free(reply);
    mp_client_free(c);
    msgpack_sbuffer_destroy(&sb);
    return status;
}
