/* conf: the broker's configuration, read from a `key value` file and `--set` overrides. */
#ifndef MOONPOST_CONF_H
#define MOONPOST_CONF_H

#include <stddef.h>

/* A growable list of strings, for the repeatable keys (listen, script, plugin). */
struct conf_list {
    char **items;
    size_t count;
};

/* A key the table of conf.c does not know: an option of a script or a plugin. It is kept as
 * written and checked once the scripts and plugins have declared their options (options.c). */
struct conf_option {
    char *key;
    char *value;
    char *origin; /* "FILE:LINE" or "--set KEY=VALUE": what an error about it names */
    int from_set; /* given by --set: wins over the file's, whatever the order */
};

struct conf_options {
    struct conf_option *items;
    size_t count;
};

#define CONF_MAX_KEYS 64 /* keys of conf.c's table at most */
#define REDIS_ADDRESS_SEPARATORS " \t," /* between the addresses of redis */
/* The longest redis_prefix: the node channels' names (prefix, "node:", a node id) must fit. */
#define REDIS_PREFIX_MAX 64

enum conf_log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

struct conf {
    /* network */
    struct conf_list listen;  /* "host:port" or "[v6]:port"; default 127.0.0.1:8889 */
    int max_connections;      /* default 10000 */
    int reuseport;            /* bool, default 0 */
    struct conf_list tls_listen; /* addresses that speak TLS (same protocol inside), default none */
    char *tls_cert;           /* PEM certificate chain for tls_listen, NULL = none */
    char *tls_key;            /* PEM private key of tls_cert, NULL = none */
    /* protocol limits */
    int max_frame;            /* bytes of one frame body, default 65536 */
    int max_body;             /* bytes of a message body, default 16384 */
    int output_limit;         /* bytes queued to one session before it is dropped, default 4 MiB */
    double idle_timeout;      /* seconds, default 300 */
    double login_timeout;     /* seconds, default 10 */
    double shutdown_timeout;  /* seconds, default 5 */
    /* network limits */
    int output_budget;        /* bytes queued to all sessions before the slowest are dropped, default 1 GiB, 0 = none */
    int request_rate;         /* requests per second per connection, default 200, 0 = none */
    int request_burst;        /* requests a connection may send at once above the rate, default 400 */
    int http_max_connections; /* HTTP connections open at once, default 64 */
    double http_header_timeout; /* seconds to send a whole request head, default 10 */
    double http_idle_timeout; /* seconds a kept-alive HTTP connection may wait for a request, default 60 */
    int http_max_header;      /* bytes of an HTTP request head, default 8192 */
    /* logging and process */
    enum conf_log_level log_level; /* debug|info|warn|error, default info */
    char *log_file;           /* path, NULL = stderr */
    char *pid_file;           /* path, NULL = none */
    /* scripting and plugins */
    struct conf_list script;  /* paths of Lua scripts, in load order */
    char *script_path;        /* directory searched by require() for helper modules; default dir of first script */
    struct conf_list plugin;  /* "PATH [key=value ...]", PATH resolved */
    int lua_memory_limit;     /* bytes for the Lua state, default 256 MiB, 0 = none */
    int lua_instruction_limit;/* VM instructions per handler run between yields, default 10000000, 0 = none */
    int max_frame_values;     /* values one request frame may decode into, default 1024 */
    int lua_request_memory_share; /* % of lua_memory_limit requests in flight may hold, default 50 */
    /* redis */
    char *redis;              /* "host:port" or "unix:/path.sock" (several, for a cluster's
                                 seeds, separated by REDIS_ADDRESS_SEPARATORS); default
                                 127.0.0.1:6379 */
    char *redis_password;     /* NULL = none */
    int redis_db;             /* default 0 */
    double redis_timeout;     /* seconds, connect and command timeout, default 5 */
    char *redis_prefix;       /* default "mp:" */
    int redis_require_durable;/* bool, default 0: refuse storage while Redis keeps no AOF */
    int redis_cluster;        /* bool, default 0: redis names seeds of a Redis Cluster */
    int redis_wait_replicas;  /* replicas WAIT must confirm before a store is answered, default 0 */
    /* workers and password hashing */
    int workers;              /* threads for CPU-heavy work, default 2 */
    int pwhash_memory;        /* KiB for argon2id, default 19456 (19 MiB) */
    int pwhash_ops;           /* argon2id passes, default 2 */
    int pwhash_queue_max;     /* hashing jobs waiting in all, default 1000 */
    int pwhash_queue_per_addr;/* hashing jobs waiting per client address, default 16 */
    /* operations */
    char *admin_socket;       /* path of the admin Unix socket, NULL = none */
    char *http_listen;        /* "host:port" for /metrics and /healthz, NULL = none */
    int http_tls;             /* bool, default 0: http_listen speaks HTTPS/WSS with tls_cert */
    int websocket;            /* bool, default 1: http_listen's /ws takes WebSocket clients */
    char *web_root;           /* directory of the web chat served at http_listen's /, NULL = none */
    char *node_id;            /* cluster node id, default "<hostname>-<pid>" computed at start */
    /* cluster (docs/cluster.md) */
    int presence_ttl;         /* seconds after its last heartbeat a node is taken for dead, default 10 */
    int processes;            /* event-loop processes one command starts, default 1 */
    /* every other key: the options scripts and plugins declare (the chat policy lives there) */
    struct conf_options options;
    /* private to conf.c: bit i set = key i of its table was given by conf_set, so a later
     * file load leaves it alone and the next --set of a list key appends */
    unsigned long long set_keys;
    int key_line[CONF_MAX_KEYS]; /* the file's line each key was last given on, 0 = not there */
};

/* Where an error happened and what it was: "file:line: message". */
struct conf_error {
    char text[512];
};

/* Fills every field with its default. */
void conf_init(struct conf *c);

/* Reads PATH on top of the defaults. Relative paths in the file are resolved against the
 * directory of PATH. A key the table does not know is kept in c->options with its file and
 * line, for options.c to check. Returns 0, or -1 with err filled ("PATH:LINE: message"). */
int conf_load_file(struct conf *c, const char *path, struct conf_error *err);

/* Applies one "key=value" override (from --set); a key the table does not know goes to
 * c->options. A list key is replaced whole by this value the first time it is set this way;
 * further --set of the same key append. Relative paths are resolved against the current
 * directory. Returns 0, or -1 with err filled ("--set key=value: message"). */
int conf_set(struct conf *c, const char *assignment, struct conf_error *err);

/* Parses a string as if it were a whole config file named NAME (for tests). */
int conf_load_string(struct conf *c, const char *name, const char *text, const char *base_dir,
                     struct conf_error *err);

void conf_free(struct conf *c);

/* True when NAME is a key of conf.c's own table (not an option). */
int conf_is_key(const char *name);

/* The line of the config file where C got key NAME (its last line, for a list), or 0 when the
 * value is the default or came from --set: for errors found after reading, "FILE:LINE: ...". */
int conf_key_line(const struct conf *c, const char *name);
/* "PATH:LINE: " where KEY was given in C (loaded from PATH), or "--set KEY: ". */
void conf_key_origin(const struct conf *c, const char *path, const char *key, char *buf,
                     size_t len);

/* Name of a log level ("info"), and the reverse; returns -1 for an unknown name. */
const char *conf_log_level_name(enum conf_log_level level);
int conf_log_level_parse(const char *name);

/* 1 or 0 for a boolean as the config writes it (on/off, yes/no, true/false, 1/0, any case);
 * -1 for anything else. */
int conf_bool_parse(const char *text);

#endif
