/* conf: reads the broker's `key value` configuration file and `--set key=value` overrides.
 * One table of key descriptors (conf_keys) drives parsing, defaults and freeing. */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "netaddr.h"

enum conf_type {
    CONF_INT,       /* int within [min, max] */
    CONF_SECONDS,   /* double, a non-negative decimal number of seconds within [min, max] */
    CONF_BOOL,      /* int 0/1 from on/off, yes/no, true/false, 1/0 */
    CONF_STRING,    /* char *, "" = NULL */
    CONF_PATH,      /* char *, resolved against the base directory, "" = NULL */
    CONF_LOG_LEVEL, /* enum conf_log_level */
    CONF_LIST,      /* struct conf_list of strings */
    CONF_PATH_LIST, /* struct conf_list of resolved paths */
    CONF_PLUGIN,    /* struct conf_list of "PATH [key=value ...]", only PATH resolved */
    CONF_ADDRESS,   /* char *, "host:port" or "[v6]:port" whose host resolves, "" = NULL */
    CONF_ADDRESS_LIST, /* struct conf_list of CONF_ADDRESS values */
    CONF_REDIS_ADDRESS, /* char *, "host:port" (resolved when connecting) or "unix:/path" */
};

struct conf_key {
    const char *name;
    enum conf_type type;
    size_t offset;
    double min, max;
    const char *def; /* default, parsed like a value from a file; NULL = unset / empty list */
};

/* clang-format off */
#define KEY(field, type, min, max, def) {#field, type, offsetof(struct conf, field), min, max, def}
/* clang-format on */

/* Adding a key is adding a field to struct conf and a row here (and documenting it in
 * etc/broker.conf). Defaults here are the ones promised in conf.h. Policy is not a key here:
 * scripts and plugins declare it as their options (options.c). */
static const struct conf_key conf_keys[] = {
    /* network */
    KEY(listen, CONF_ADDRESS_LIST, 0, 0, "127.0.0.1:8889"),
    KEY(max_connections, CONF_INT, 1, 1000000, "10000"),
    KEY(reuseport, CONF_BOOL, 0, 1, "off"),
    KEY(tls_listen, CONF_ADDRESS_LIST, 0, 0, NULL),
    KEY(tls_cert, CONF_PATH, 0, 0, NULL),
    KEY(tls_key, CONF_PATH, 0, 0, NULL),
    /* protocol limits */
    KEY(max_frame, CONF_INT, 64, 16777216, "65536"),
    KEY(max_body, CONF_INT, 0, 16777216, "16384"),
    KEY(output_limit, CONF_INT, 4096, 1073741824, "4194304"),
    KEY(idle_timeout, CONF_SECONDS, 0, 86400, "300"),
    KEY(login_timeout, CONF_SECONDS, 0, 86400, "10"),
    KEY(shutdown_timeout, CONF_SECONDS, 0, 3600, "5"),
    /* network limits */
    KEY(output_budget, CONF_INT, 0, INT_MAX, "1073741824"),
    KEY(request_rate, CONF_INT, 0, 1000000, "200"),
    KEY(request_burst, CONF_INT, 1, 1000000, "400"),
    KEY(http_max_connections, CONF_INT, 1, 100000, "64"),
    KEY(http_header_timeout, CONF_SECONDS, 0.01, 3600, "10"),
    KEY(http_idle_timeout, CONF_SECONDS, 0.01, 3600, "60"),
    KEY(http_max_header, CONF_INT, 256, 1048576, "8192"),
    /* logging and process */
    KEY(log_level, CONF_LOG_LEVEL, 0, 0, "info"),
    KEY(log_file, CONF_PATH, 0, 0, NULL),
    KEY(pid_file, CONF_PATH, 0, 0, NULL),
    /* scripting and plugins */
    KEY(script, CONF_PATH_LIST, 0, 0, NULL),
    KEY(script_path, CONF_PATH, 0, 0, NULL),
    KEY(plugin, CONF_PLUGIN, 0, 0, NULL),
    KEY(lua_memory_limit, CONF_INT, 0, INT_MAX, "268435456"),
    KEY(lua_instruction_limit, CONF_INT, 0, INT_MAX, "10000000"),
    KEY(max_frame_values, CONF_INT, 16, 16777216, "1024"),
    KEY(lua_request_memory_share, CONF_INT, 1, 100, "50"),
    /* redis */
    KEY(redis, CONF_REDIS_ADDRESS, 0, 0, "127.0.0.1:6379"),
    KEY(redis_password, CONF_STRING, 0, 0, NULL),
    KEY(redis_db, CONF_INT, 0, 1000, "0"),
    KEY(redis_timeout, CONF_SECONDS, 0.01, 3600, "5"),
    KEY(redis_prefix, CONF_STRING, 0, 0, "mp:"),
    KEY(redis_require_durable, CONF_BOOL, 0, 1, "off"),
    KEY(redis_cluster, CONF_BOOL, 0, 1, "off"),
    KEY(redis_wait_replicas, CONF_INT, 0, 64, "0"),
    /* workers and password hashing */
    KEY(workers, CONF_INT, 1, 64, "2"),
    KEY(pwhash_memory, CONF_INT, 8, 4194304, "19456"),
    KEY(pwhash_ops, CONF_INT, 1, 100, "2"),
    KEY(pwhash_queue_max, CONF_INT, 1, 1000000, "1000"),
    KEY(pwhash_queue_per_addr, CONF_INT, 1, 1000000, "16"),
    /* operations */
    KEY(admin_socket, CONF_PATH, 0, 0, NULL),
    KEY(http_listen, CONF_ADDRESS, 0, 0, NULL),
    KEY(http_tls, CONF_BOOL, 0, 1, "off"),
    KEY(websocket, CONF_BOOL, 0, 1, "on"),
    KEY(web_root, CONF_PATH, 0, 0, NULL),
    KEY(node_id, CONF_STRING, 0, 0, NULL),
    /* cluster */
    KEY(presence_ttl, CONF_INT, 2, 3600, "10"),
    KEY(processes, CONF_INT, 1, 256, "1"),
};

#define CONF_KEY_COUNT (sizeof conf_keys / sizeof conf_keys[0])
_Static_assert(CONF_KEY_COUNT <= CONF_MAX_KEYS, "struct conf has one bit and one line per key");

static const char *const level_names[] = {
    [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_ERROR] = "error",
};

static const struct {
    const char *name;
    int value;
} bool_names[] = {
    {"on", 1}, {"off", 0}, {"yes", 1}, {"no", 0}, {"true", 1}, {"false", 0}, {"1", 1}, {"0", 0},
};

int conf_bool_parse(const char *text)
{
    for (size_t i = 0; i < sizeof bool_names / sizeof bool_names[0]; i++)
        if (strcasecmp(text, bool_names[i].name) == 0) return bool_names[i].value;
    return -1;
}

/* Where a value comes from, for error messages and relative paths. */
struct parser {
    const char *file;             /* file name, or NULL for --set */
    int line;                     /* line in file */
    const char *assignment;       /* the whole --set argument */
    const char *base_dir;         /* relative paths are joined to it; NULL = leave as is */
    unsigned long long seen_keys; /* keys already given in this file (a list's first replaces) */
    struct conf_error *err;
};

__attribute__((format(printf, 2, 3))) static int fail(const struct parser *p, const char *fmt, ...)
{
    char *text = p->err->text;
    size_t size = sizeof p->err->text;
    int n;
    if (p->file != NULL)
        n = snprintf(text, size, "%s:%d: ", p->file, p->line);
    else
        n = snprintf(text, size, "--set %s: ", p->assignment);
    if (n < 0 || (size_t)n >= size) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + n, size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- small string helpers ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* A '#' at the start of the line or after whitespace starts a comment; "a#b" is a value. */
static void strip_comment(char *line)
{
    for (char *s = line; *s != '\0'; s++) {
        if (*s == '#' && (s == line || isspace((unsigned char)s[-1]))) {
            *s = '\0';
            return;
        }
    }
}

/* The first LEN bytes of PATH, joined to BASE unless PATH is absolute or BASE is NULL. */
static char *join_path(const char *base, const char *path, size_t len)
{
    if (base == NULL || path[0] == '/') return strndup(path, len);
    size_t blen = strlen(base);
    int slash = blen > 0 && base[blen - 1] != '/';
    char *out = malloc(blen + (size_t)slash + len + 1);
    if (out == NULL) return NULL;
    memcpy(out, base, blen);
    if (slash) out[blen] = '/';
    memcpy(out + blen + slash, path, len);
    out[blen + slash + len] = '\0';
    return out;
}

/* The directory of PATH, made absolute so paths still work after the broker changes directory. */
static char *file_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (path[0] == '/') return strndup(path, len);
    char *cwd = getcwd(NULL, 0);
    if (cwd == NULL) return slash == NULL ? strdup(".") : strndup(path, len);
    if (slash == NULL) return cwd;
    char *dir = join_path(cwd, path, len);
    free(cwd);
    return dir;
}

/* ---- lists ---- */

static void list_clear(struct conf_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* Takes ownership of ITEM (also on failure). */
static int list_push(struct conf_list *list, char *item)
{
    char **items = item == NULL ? NULL : realloc(list->items, (list->count + 1) * sizeof *items);
    if (items == NULL) {
        free(item);
        return -1;
    }
    items[list->count++] = item;
    list->items = items;
    return 0;
}

/* ---- options: the keys the table does not know ---- */

static void options_clear(struct conf_options *options)
{
    for (size_t i = 0; i < options->count; i++) {
        free(options->items[i].key);
        free(options->items[i].value);
        free(options->items[i].origin);
    }
    free(options->items);
    options->items = NULL;
    options->count = 0;
}

static int options_push(struct conf_options *options, const char *key, const char *value,
                        const char *origin, int from_set)
{
    struct conf_option *items = realloc(options->items, (options->count + 1) * sizeof *items);
    if (items == NULL) return -1;
    options->items = items;
    struct conf_option *o = &items[options->count];
    *o = (struct conf_option){strdup(key), strdup(value), strdup(origin), from_set};
    options->count++;
    return o->key != NULL && o->value != NULL && o->origin != NULL ? 0 : -1;
}

/* "PATH [key=value ...]" with PATH resolved and the rest kept as written. */
static char *plugin_item(const char *base, const char *value)
{
    size_t plen = strcspn(value, " \t");
    char *path = join_path(base, value, plen);
    const char *args = value + plen + strspn(value + plen, " \t");
    if (path == NULL || *args == '\0') return path;
    size_t len = strlen(path) + 1 + strlen(args) + 1;
    char *item = malloc(len);
    if (item != NULL) snprintf(item, len, "%s %s", path, args);
    free(path);
    return item;
}

/* ---- addresses ---- */

/* One Redis address: "host:port", "host", or "unix:/absolute/path". */
static int check_redis_address(const struct parser *p, const struct conf_key *k,
                               const char *value)
{
    if (strncmp(value, "unix:", 5) == 0) {
        if (value[5] == '/') return 0;
        return fail(p, "%s: a Unix socket is written unix:/absolute/path, got '%s'", k->name,
                    value);
    }
    char host[NI_MAXHOST], why[NETADDR_WHY_MAX];
    int port;
    if (netaddr_split(value, host, sizeof host, &port, why, sizeof why) == 0) return 0;
    return fail(p, "%s: %s", k->name, why);
}

/* redis: one address, or (for a Redis Cluster) several seeds separated by spaces or commas. */
static int check_redis_addresses(const struct parser *p, const struct conf_key *k,
                                 const char *value)
{
    char addr[NI_MAXHOST + 16];
    for (const char *at = value; *at != '\0';) {
        size_t len = strcspn(at, REDIS_ADDRESS_SEPARATORS);
        if (len >= sizeof addr) return fail(p, "%s: address too long: '%.40s...'", k->name, at);
        if (len > 0) {
            memcpy(addr, at, len);
            addr[len] = '\0';
            if (check_redis_address(p, k, addr) != 0) return -1;
        }
        at += len;
        at += strspn(at, REDIS_ADDRESS_SEPARATORS);
    }
    return 0;
}

/* listen and http_listen must be bindable: a port 1..65535 and a host that resolves now. The
 * Redis host is only checked for form: it is resolved at each (re)connect, so a name that
 * resolves later (DNS not up yet at boot) still works. */
static int check_address(const struct parser *p, const struct conf_key *k, const char *value)
{
    if (k->type != CONF_ADDRESS && k->type != CONF_ADDRESS_LIST && k->type != CONF_REDIS_ADDRESS)
        return 0;
    if (*value == '\0') return 0; /* unset */
    char why[NETADDR_WHY_MAX];
    if (k->type == CONF_REDIS_ADDRESS) return check_redis_addresses(p, k, value);
    {
        struct sockaddr_storage ss;
        socklen_t len;
        if (netaddr_resolve(value, &ss, &len, why, sizeof why) == 0) return 0;
    }
    return fail(p, "%s: %s", k->name, why);
}

/* ---- one setter per type; VALUE is trimmed and may be "" only for string, path and lists ---- */

typedef int (*conf_setter)(const struct parser *p, const struct conf_key *k, void *field,
                           const char *value);

static int set_int(const struct parser *p, const struct conf_key *k, void *field, const char *value)
{
    char *end;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (end == value || *end != '\0' || errno == ERANGE || n < k->min || n > k->max)
        return fail(p, "%s must be an integer between %lld and %lld, got '%s'", k->name,
                    (long long)k->min, (long long)k->max, value);
    *(int *)field = (int)n;
    return 0;
}

/* Digits with an optional fraction ("300", "0.5", ".5"); no sign, exponent, inf or nan. */
static int is_decimal(const char *s)
{
    size_t digits = 0;
    for (; isdigit((unsigned char)*s); s++)
        digits++;
    if (*s == '.')
        for (s++; isdigit((unsigned char)*s); s++)
            digits++;
    return digits > 0 && *s == '\0';
}

static int set_seconds(const struct parser *p, const struct conf_key *k, void *field,
                       const char *value)
{
    double d = is_decimal(value) ? strtod(value, NULL) : -1;
    if (d < k->min || d > k->max)
        return fail(p, "%s must be a number of seconds between %g and %g, got '%s'", k->name,
                    k->min, k->max, value);
    *(double *)field = d;
    return 0;
}

static int set_bool(const struct parser *p, const struct conf_key *k, void *field,
                    const char *value)
{
    int on = conf_bool_parse(value);
    if (on >= 0) {
        *(int *)field = on;
        return 0;
    }
    return fail(p, "%s must be on or off (or yes/no, true/false, 1/0), got '%s'", k->name, value);
}

static int set_log_level(const struct parser *p, const struct conf_key *k, void *field,
                         const char *value)
{
    int level = conf_log_level_parse(value);
    if (level < 0)
        return fail(p, "%s must be one of debug, info, warn, error, got '%s'", k->name, value);
    *(enum conf_log_level *)field = (enum conf_log_level)level;
    return 0;
}

static int set_string(const struct parser *p, const struct conf_key *k, void *field,
                      const char *value)
{
    if (check_address(p, k, value) != 0) return -1;
    char *s = NULL;
    if (*value != '\0') {
        s = k->type == CONF_PATH ? join_path(p->base_dir, value, strlen(value)) : strdup(value);
        if (s == NULL) return fail(p, "out of memory");
    }
    free(*(char **)field);
    *(char **)field = s;
    return 0;
}

/* An empty value empties the list. */
static int add_to_list(const struct parser *p, const struct conf_key *k, void *field,
                       const char *value)
{
    struct conf_list *list = field;
    if (*value == '\0') {
        list_clear(list);
        return 0;
    }
    if (k->type == CONF_ADDRESS_LIST && check_address(p, k, value) != 0) return -1;
    char *item = k->type == CONF_PLUGIN      ? plugin_item(p->base_dir, value)
                 : k->type == CONF_PATH_LIST ? join_path(p->base_dir, value, strlen(value))
                                             : strdup(value);
    if (list_push(list, item) < 0) return fail(p, "out of memory");
    return 0;
}

static const conf_setter setters[] = {
    [CONF_INT] = set_int,       [CONF_SECONDS] = set_seconds,   [CONF_BOOL] = set_bool,
    [CONF_STRING] = set_string, [CONF_PATH] = set_string,       [CONF_LOG_LEVEL] = set_log_level,
    [CONF_LIST] = add_to_list,  [CONF_PATH_LIST] = add_to_list, [CONF_PLUGIN] = add_to_list,
    [CONF_ADDRESS] = set_string, [CONF_ADDRESS_LIST] = add_to_list,
    [CONF_REDIS_ADDRESS] = set_string,
};

/* ---- applying one key ---- */

static int is_list(const struct conf_key *k)
{
    return k->type == CONF_LIST || k->type == CONF_PATH_LIST || k->type == CONF_PLUGIN ||
           k->type == CONF_ADDRESS_LIST;
}

/* A char * field, "" = NULL. */
static int is_string(const struct conf_key *k)
{
    return k->type == CONF_STRING || k->type == CONF_PATH || k->type == CONF_ADDRESS ||
           k->type == CONF_REDIS_ADDRESS;
}

static int allows_empty(const struct conf_key *k)
{
    return is_list(k) || is_string(k);
}

static int find_key(const char *name)
{
    for (size_t i = 0; i < CONF_KEY_COUNT; i++)
        if (strcmp(conf_keys[i].name, name) == 0) return (int)i;
    return -1;
}

/* A value written as "" is the empty string: it unsets a string or path and empties a list. */
static const char *unquote_empty(const char *value)
{
    return strcmp(value, "\"\"") == 0 ? "" : value;
}

static int apply_value(const struct parser *p, struct conf *c, const struct conf_key *k,
                       const char *value, int replace_list)
{
    if (*value == '\0' && !allows_empty(k)) return fail(p, "missing value for '%s'", k->name);
    void *field = (char *)c + k->offset;
    if (is_list(k) && replace_list) list_clear(field);
    return setters[k->type](p, k, field, value);
}

/* A key given by --set wins over the file whatever the order: the file's value is only checked. */
static int check_only(const struct parser *p, const struct conf_key *k, const char *value)
{
    struct conf scratch;
    conf_init(&scratch);
    int rc = apply_value(p, &scratch, k, value, 1);
    conf_free(&scratch);
    return rc;
}

static int apply_file_key(struct parser *p, struct conf *c, int index, const char *value)
{
    const struct conf_key *k = &conf_keys[index];
    unsigned long long bit = 1ULL << index;
    if (c->set_keys & bit) return check_only(p, k, value);
    int first = !(p->seen_keys & bit);
    p->seen_keys |= bit;
    c->key_line[index] = p->line;
    return apply_value(p, c, k, value, first);
}

/* Keeps KEY VALUE for options.c, with where it was written. */
static int keep_option(const struct parser *p, struct conf *c, const char *key, const char *value)
{
    char origin[sizeof p->err->text];
    if (p->file != NULL)
        snprintf(origin, sizeof origin, "%s:%d", p->file, p->line);
    else
        snprintf(origin, sizeof origin, "--set %s", p->assignment);
    if (options_push(&c->options, key, value, origin, p->file == NULL) < 0)
        return fail(p, "out of memory");
    return 0;
}

static int parse_line(struct parser *p, struct conf *c, char *line)
{
    strip_comment(line);
    char *key = trim(line);
    if (*key == '\0') return 0;
    char *value = key + strcspn(key, " \t");
    if (*value != '\0') *value++ = '\0';
    value = trim(value);
    if (*value == '\0') return fail(p, "missing value for '%s'", key);
    int index = find_key(key);
    if (index < 0) return keep_option(p, c, key, unquote_empty(value));
    return apply_file_key(p, c, index, unquote_empty(value));
}

/* TEXT is modified in place. */
static int parse_text(struct parser *p, struct conf *c, char *text)
{
    char *line = text;
    for (p->line = 1; line != NULL; p->line++) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) *nl = '\0';
        if (parse_line(p, c, line) < 0) return -1;
        line = nl == NULL ? NULL : nl + 1;
    }
    return 0;
}

/* ---- public interface ---- */

void conf_init(struct conf *c)
{
    struct conf_error err;
    struct parser p = {.file = "built-in default", .err = &err};
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CONF_KEY_COUNT; i++) {
        if (conf_keys[i].def == NULL) continue;
        if (apply_value(&p, c, &conf_keys[i], conf_keys[i].def, 1) < 0) {
            /* only out of memory, or a bad row in conf_keys */
            fprintf(stderr, "conf: %s (key %s)\n", err.text, conf_keys[i].name);
            abort();
        }
    }
}

void conf_free(struct conf *c)
{
    for (size_t i = 0; i < CONF_KEY_COUNT; i++) {
        void *field = (char *)c + conf_keys[i].offset;
        if (is_list(&conf_keys[i])) {
            list_clear(field);
        } else if (is_string(&conf_keys[i])) {
            free(*(char **)field);
            *(char **)field = NULL;
        }
    }
    options_clear(&c->options);
    c->set_keys = 0;
}

int conf_load_string(struct conf *c, const char *name, const char *text, const char *base_dir,
                     struct conf_error *err)
{
    struct parser p = {.file = name, .base_dir = base_dir, .err = err};
    char *copy = strdup(text);
    if (copy == NULL) {
        snprintf(err->text, sizeof err->text, "%s: out of memory", name);
        return -1;
    }
    int rc = parse_text(&p, c, copy);
    free(copy);
    return rc;
}

/* Reads the rest of F into a NUL-terminated buffer; returns 0, or an errno value. */
static int read_all(FILE *f, char **out, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 4096) {
            char *bigger = realloc(buf, cap = cap ? cap * 2 : 8192);
            if (bigger == NULL) {
                free(buf);
                return ENOMEM;
            }
            buf = bigger;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        free(buf);
        return errno != 0 ? errno : EIO;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* The whole of PATH as a string, or NULL with err filled. */
static char *read_file(const char *path, struct conf_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err->text, sizeof err->text, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0;
    errno = 0;
    int e = read_all(f, &text, &len);
    fclose(f);
    if (e != 0 || text == NULL) {
        snprintf(err->text, sizeof err->text, "%s: cannot read: %s", path, strerror(e ? e : EIO));
        return NULL;
    }
    if (strlen(text) != len) {
        snprintf(err->text, sizeof err->text, "%s: not a text file (it contains a NUL byte)", path);
        free(text);
        return NULL;
    }
    return text;
}

int conf_load_file(struct conf *c, const char *path, struct conf_error *err)
{
    char *text = read_file(path, err);
    if (text == NULL) return -1;
    char *dir = file_dir(path);
    int rc;
    if (dir == NULL) {
        snprintf(err->text, sizeof err->text, "%s: out of memory", path);
        rc = -1;
    } else {
        struct parser p = {.file = path, .base_dir = dir, .err = err};
        rc = parse_text(&p, c, text);
    }
    free(dir);
    free(text);
    return rc;
}

static int apply_assignment(struct parser *p, struct conf *c, char *copy, size_t eq)
{
    copy[eq] = '\0';
    const char *key = trim(copy);
    const char *value = unquote_empty(trim(copy + eq + 1));
    if (*key == '\0') return fail(p, "missing key before '='");
    int index = find_key(key);
    if (index < 0) return keep_option(p, c, key, value);
    unsigned long long bit = 1ULL << index;
    if (apply_value(p, c, &conf_keys[index], value, !(c->set_keys & bit)) < 0) return -1;
    c->set_keys |= bit;
    c->key_line[index] = 0;
    return 0;
}

int conf_set(struct conf *c, const char *assignment, struct conf_error *err)
{
    struct parser p = {.assignment = assignment, .err = err};
    const char *eq = strchr(assignment, '=');
    if (eq == NULL) return fail(&p, "expected KEY=VALUE, no '=' found");
    char *copy = strdup(assignment);
    char *cwd = getcwd(NULL, 0); /* NULL: relative paths stay relative, which is the same */
    p.base_dir = cwd;
    int rc = copy == NULL ? fail(&p, "out of memory")
                          : apply_assignment(&p, c, copy, (size_t)(eq - assignment));
    free(cwd);
    free(copy);
    return rc;
}

int conf_is_key(const char *name)
{
    return find_key(name) >= 0;
}

int conf_key_line(const struct conf *c, const char *name)
{
    int index = find_key(name);
    return index < 0 ? 0 : c->key_line[index];
}

void conf_key_origin(const struct conf *c, const char *path, const char *key, char *buf,
                     size_t len)
{
    int line = conf_key_line(c, key);
    if (line > 0)
        snprintf(buf, len, "%.150s:%d: ", path, line);
    else
        snprintf(buf, len, "--set %s: ", key);
}

const char *conf_log_level_name(enum conf_log_level level)
{
    if ((unsigned)level >= sizeof level_names / sizeof level_names[0]) return "unknown";
    return level_names[level];
}

int conf_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcasecmp(name, level_names[i]) == 0) return (int)i;
    return -1;
}
