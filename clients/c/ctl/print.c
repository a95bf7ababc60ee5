/* print: replies of the admin socket as tables or JSON, read with the shared bounds-checked
 * MessagePack reader (msgread). */
#include "print.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "msgread.h"

#define MAX_DEPTH 32

static int is_key(const struct msgread_item *key, const char *name)
{
    size_t n = strlen(name);
    return key->type == MSGREAD_STR && key->v.str.len == n && memcmp(key->v.str.ptr, name, n) == 0;
}

static void json_string(FILE *out, const uint8_t *p, uint32_t len)
{
    fputc('"', out);
    for (uint32_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        if (b == '"' || b == '\\')
            fprintf(out, "\\%c", b);
        else if (b < 0x20)
            fprintf(out, "\\u%04x", b);
        else
            fputc(b, out);
    }
    fputc('"', out);
}

/* Bytes as a hex string: JSON has no binary type. */
static void json_hex(FILE *out, const uint8_t *p, uint32_t len)
{
    fputc('"', out);
    for (uint32_t i = 0; i < len; i++)
        fprintf(out, "%02x", p[i]);
    fputc('"', out);
}

static int json_value(FILE *out, struct mpr *r, int depth);

static int json_key(FILE *out, struct mpr *r)
{
    struct msgread_item key;
    if (msgread_next(r, &key) != MSGREAD_OK) return -1;
    if (key.type == MSGREAD_STR)
        json_string(out, key.v.str.ptr, key.v.str.len);
    else if (key.type == MSGREAD_UINT)
        fprintf(out, "\"%" PRIu64 "\"", key.v.u);
    else if (key.type == MSGREAD_INT)
        fprintf(out, "\"%" PRId64 "\"", key.v.i);
    else
        fputs("\"?\"", out);
    fputc(':', out);
    return 0;
}

static int json_value(FILE *out, struct mpr *r, int depth)
{
    struct msgread_item it;
    if (depth > MAX_DEPTH || msgread_next(r, &it) != MSGREAD_OK) return -1;
    switch (it.type) {
    case MSGREAD_NIL:
        fputs("null", out);
        return 0;
    case MSGREAD_BOOL:
        fputs(it.v.boolean ? "true" : "false", out);
        return 0;
    case MSGREAD_UINT:
        fprintf(out, "%" PRIu64, it.v.u);
        return 0;
    case MSGREAD_INT:
        fprintf(out, "%" PRId64, it.v.i);
        return 0;
    case MSGREAD_FLOAT:
        fprintf(out, "%.17g", it.v.f);
        return 0;
    case MSGREAD_STR:
        json_string(out, it.v.str.ptr, it.v.str.len);
        return 0;
    case MSGREAD_BIN:
        json_hex(out, it.v.str.ptr, it.v.str.len);
        return 0;
    case MSGREAD_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < it.v.count; i++) {
            if (i) fputc(',', out);
            if (json_value(out, r, depth + 1) != 0) return -1;
        }
        fputc(']', out);
        return 0;
    case MSGREAD_MAP:
        fputc('{', out);
        for (uint32_t i = 0; i < it.v.count; i++) {
            if (i) fputc(',', out);
            if (json_key(out, r) != 0 || json_value(out, r, depth + 1) != 0) return -1;
        }
        fputc('}', out);
        return 0;
    }
    return -1;
}

/* Calls FN for each top-level field but type and id; R is positioned at the value. */
typedef void (*field_fn)(FILE *out, const struct msgread_item *key, struct mpr *value, void *arg);

static void each_field(FILE *out, const mp_reply *reply, field_fn fn, void *arg)
{
    size_t len;
    const void *data = mp_reply_data(reply, &len);
    struct mpr r;
    msgread_init(&r, data, len);
    struct msgread_item map;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return;
    for (uint32_t i = 0; i < map.v.count; i++) {
        struct msgread_item key;
        if (msgread_next(&r, &key) != MSGREAD_OK) return;
        struct mpr value = r;
        if (msgread_skip(&r, MAX_DEPTH) != MSGREAD_OK) return;
        if (is_key(&key, "type") || is_key(&key, "id")) continue;
        fn(out, &key, &value, arg);
    }
}

static void json_field(FILE *out, const struct msgread_item *key, struct mpr *value, void *arg)
{
    int *first = arg;
    if (!*first) fputc(',', out);
    *first = 0;
    json_string(out, key->type == MSGREAD_STR ? key->v.str.ptr : (const uint8_t *)"?",
                key->type == MSGREAD_STR ? key->v.str.len : 1);
    fputc(':', out);
    json_value(out, value, 1);
}

void print_json(FILE *out, const mp_reply *r)
{
    int first = 1;
    fputc('{', out);
    each_field(out, r, json_field, &first);
    fputs("}\n", out);
}

/* One value, advancing *VALUE past it: a str as plain text, anything else as JSON. */
static void plain_value(FILE *out, struct mpr *value)
{
    struct mpr peek = *value;
    struct msgread_item it;
    if (msgread_next(&peek, &it) != MSGREAD_OK) return;
    if (it.type != MSGREAD_STR) {
        json_value(out, value, 1);
        return;
    }
    fprintf(out, "%.*s", (int)it.v.str.len, (const char *)it.v.str.ptr);
    *value = peek;
}

static void stats_row(FILE *out, const struct msgread_item *key, struct mpr *value, void *arg)
{
    (void)arg;
    if (is_key(key, "code") || key->type != MSGREAD_STR) return;
    fprintf(out, "%-22.*s ", (int)key->v.str.len, (const char *)key->v.str.ptr);
    plain_value(out, value);
    fputc('\n', out);
}

void print_stats(FILE *out, const mp_reply *r, const char *arg)
{
    (void)arg;
    each_field(out, r, stats_row, NULL);
}

/* Finds top-level KEY; *AT is positioned at its value. */
static int find(const mp_reply *reply, const char *key, struct mpr *at)
{
    size_t len;
    const void *data = mp_reply_data(reply, &len);
    struct mpr r;
    msgread_init(&r, data, len);
    struct msgread_item map, k;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return 0;
    for (uint32_t i = 0; i < map.v.count; i++) {
        if (msgread_next(&r, &k) != MSGREAD_OK) return 0;
        if (is_key(&k, key)) {
            *at = r;
            return 1;
        }
        if (msgread_skip(&r, MAX_DEPTH) != MSGREAD_OK) return 0;
    }
    return 0;
}

/* Enters the array at KEY: returns its length, -1 when there is none. */
static long array_at(const mp_reply *reply, const char *key, struct mpr *r)
{
    struct msgread_item arr;
    if (!find(reply, key, r) || msgread_next(r, &arr) != MSGREAD_OK || arr.type != MSGREAD_ARRAY) return -1;
    return (long)arr.v.count;
}

void print_users(FILE *out, const mp_reply *r, const char *arg)
{
    (void)arg;
    struct mpr it;
    long n = array_at(r, "users", &it);
    for (long i = 0; i < n; i++) {
        plain_value(out, &it);
        fputc('\n', out);
    }
    uint64_t count = n < 0 ? 0 : (uint64_t)n;
    mp_reply_uint(r, "count", &count);
    fprintf(out, "%" PRIu64 " user(s) online%s\n", count,
            n >= 0 && (uint64_t)n < count ? " (list truncated)" : "");
}

/* Calls FN(key, value, ARG) for each pair of the map at *R whose value is a scalar (nested
 * values are skipped), leaving *R after the map. */
static void each_pair(struct mpr *r,
                      void (*fn)(const struct msgread_item *key, const struct msgread_item *val,
                                 void *arg),
                      void *arg)
{
    struct msgread_item map, key, val;
    if (msgread_next(r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return;
    for (uint32_t i = 0; i < map.v.count; i++) {
        if (msgread_next(r, &key) != MSGREAD_OK) return;
        struct mpr at = *r;
        if (msgread_skip(r, MAX_DEPTH) != MSGREAD_OK || msgread_next(&at, &val) != MSGREAD_OK) return;
        fn(&key, &val, arg);
    }
}

/* The text of a str item, or "?". */
static void str_of(const struct msgread_item *val, const char **s, int *len)
{
    if (val->type != MSGREAD_STR) return;
    *s = (const char *)val->v.str.ptr;
    *len = (int)val->v.str.len;
}

struct handler_row {
    const char *type, *impl;
    int type_len, impl_len, anonymous;
};

static void handler_pair(const struct msgread_item *key, const struct msgread_item *val, void *arg)
{
    struct handler_row *h = arg;
    if (is_key(key, "type")) str_of(val, &h->type, &h->type_len);
    else if (is_key(key, "impl")) str_of(val, &h->impl, &h->impl_len);
    else if (is_key(key, "anonymous") && val->type == MSGREAD_BOOL) h->anonymous = val->v.boolean;
}

/* One row of the handler table from the map at *R (leaving *R after it). */
static void handler_row(FILE *out, struct mpr *r)
{
    struct handler_row h = {"?", "?", 1, 1, 0};
    each_pair(r, handler_pair, &h);
    fprintf(out, "  %-24.*s %-5.*s %s\n", h.type_len, h.type, h.impl_len, h.impl,
            h.anonymous ? "yes" : "no");
}

void print_plugins(FILE *out, const mp_reply *r, const char *arg)
{
    (void)arg;
    struct mpr it;
    long n = array_at(r, "plugins", &it);
    fprintf(out, "plugins: %s\n", n > 0 ? "" : "none");
    for (long i = 0; i < n; i++) {
        fputs("  ", out);
        json_value(out, &it, 1);
        fputc('\n', out);
    }
    n = array_at(r, "handlers", &it);
    fprintf(out, "handlers:\n  %-24s %-5s %s\n", "TYPE", "IMPL", "BEFORE LOGIN");
    for (long i = 0; i < n; i++)
        handler_row(out, &it);
}

struct node_row {
    const char *name;
    int name_len;
    uint64_t sessions, started;
};

static void node_pair(const struct msgread_item *key, const struct msgread_item *val, void *arg)
{
    struct node_row *n = arg;
    if (is_key(key, "node")) str_of(val, &n->name, &n->name_len);
    else if (is_key(key, "sessions") && val->type == MSGREAD_UINT) n->sessions = val->v.u;
    else if (is_key(key, "started") && val->type == MSGREAD_UINT) n->started = val->v.u;
}

/* One node {node, sessions, started} as a row, from the map at *R (leaving *R after it). */
static void node_row(FILE *out, struct mpr *r)
{
    struct node_row n = {"?", 1, 0, 0};
    each_pair(r, node_pair, &n);
    time_t at_s = (time_t)(n.started / 1000);
    char when[32] = "?";
    struct tm tm;
    if (gmtime_r(&at_s, &tm) != NULL) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%SZ", &tm);
    fprintf(out, "  %-32.*s %10" PRIu64 "  %s\n", n.name_len, n.name, n.sessions, when);
}

void print_nodes(FILE *out, const mp_reply *r, const char *arg)
{
    (void)arg;
    struct mpr it;
    long n = array_at(r, "nodes", &it);
    fprintf(out, "  %-32s %10s  %s\n", "NODE", "SESSIONS", "STARTED");
    for (long i = 0; i < n; i++)
        node_row(out, &it);
    fprintf(out, "%ld node(s)\n", n < 0 ? 0 : n);
}

void print_kick(FILE *out, const mp_reply *r, const char *arg)
{
    (void)r;
    fprintf(out, "kicked %s\n", arg);
}

void print_broadcast(FILE *out, const mp_reply *r, const char *arg)
{
    (void)arg;
    uint64_t mid = 0, sent = 0;
    mp_reply_uint(r, "mid", &mid);
    mp_reply_uint(r, "sent", &sent);
    fprintf(out, "broadcast %" PRIu64 " sent to %" PRIu64 " session(s)\n", mid, sent);
}

void print_reload(FILE *out, const mp_reply *r, const char *arg)
{
    (void)r, (void)arg;
    fputs("scripts reloaded\n", out);
}

void print_shutdown(FILE *out, const mp_reply *r, const char *arg)
{
    (void)r, (void)arg;
    fputs("the broker is shutting down\n", out);
}

void print_loglevel(FILE *out, const mp_reply *r, const char *arg)
{
    (void)r;
    fprintf(out, "log level set to %s\n", arg);
}
