/* ratelimit: token buckets per user and per client address on chosen message types; a frame
 * past the limit is answered `res` 429 "rate limited" before its handler runs.
 *
 *   plugin .../moonpost_ratelimit.so rate=20 burst=40 addr_rate=100 addr_burst=200 \
 *          types=send,broadcast slots=16384
 *
 * rate, burst          per logged-in user: tokens per second and bucket size (rate=0: off)
 * addr_rate, addr_burst per client address, logged in or not (addr_rate=0: off)
 * types                comma-separated message types to limit, or * for every type
 * slots                entries of each of the two bucket tables (users, addresses)
 *
 * Memory is fixed at start-up: each table is an array of SLOTS buckets. A key lives in one of
 * PROBE neighbouring slots; when all are taken the least recently used bucket is recycled
 * (it restarts full, so a recycled key is let through more, never less). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("ratelimit", "1.0.0");

#define PROBE 8
#define KEY_MAX 48 /* a user name (32) or an IPv6 address in text (45) */
#define TYPES_MAX 32

struct bucket {
    uint64_t hash;
    int64_t last_ms; /* 0 = free slot */
    double tokens;
    char key[KEY_MAX];
};

struct limit {
    double rate;  /* tokens per second; 0 = no limit */
    double burst; /* bucket size */
    struct bucket *table;
    size_t mask;
};

struct ratelimit {
    const mp_api *api;
    struct limit user, addr;
    int all_types;
    size_t type_count;
    char *types[TYPES_MAX];
};

/* FNV-1a */
static uint64_t hash_key(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The bucket of KEY, refilled to NOW; a new or recycled bucket starts full. */
static struct bucket *find_bucket(struct limit *l, const char *key, size_t len, int64_t now)
{
    if (len >= KEY_MAX) len = KEY_MAX - 1;
    uint64_t h = hash_key(key, len);
    struct bucket *victim = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct bucket *b = &l->table[(h + i) & l->mask];
        if (b->last_ms != 0 && b->hash == h && strncmp(b->key, key, len) == 0 && b->key[len] == 0) {
            double refill = (double)(now - b->last_ms) * l->rate / 1000.0;
            if (refill > 0)
                b->tokens = b->tokens + refill < l->burst ? b->tokens + refill : l->burst;
            b->last_ms = now;
            return b;
        }
        if (victim == NULL || b->last_ms < victim->last_ms) victim = b;
    }
    victim->hash = h;
    victim->last_ms = now > 0 ? now : 1;
    victim->tokens = l->burst;
    memcpy(victim->key, key, len);
    victim->key[len] = '\0';
    return victim;
}

static int limited_type(const struct ratelimit *rl, const mp_request *req)
{
    if (rl->all_types) return 1;
    for (size_t i = 0; i < rl->type_count; i++)
        if (strlen(rl->types[i]) == req->type_len &&
            memcmp(rl->types[i], req->type, req->type_len) == 0)
            return 1;
    return 0;
}

static int on_message(void *state, const mp_request *req, const char **error)
{
    struct ratelimit *rl = state;
    if (!limited_type(rl, req)) return 0;
    const mp_api *api = rl->api;
    int64_t now = api->now_ms();
    struct bucket *u = NULL, *a = NULL;
    size_t user_len = 0;
    const char *user = rl->user.rate > 0 ? api->session_user(req->session, &user_len) : NULL;
    if (user != NULL) u = find_bucket(&rl->user, user, user_len, now);
    char addr_text[64];
    const char *addr =
        rl->addr.rate > 0 ? api->session_addr(req->session, addr_text, sizeof addr_text) : NULL;
    if (addr != NULL) a = find_bucket(&rl->addr, addr, strlen(addr), now);
    /* take a token only when both buckets have one, so a refused frame costs nothing */
    if ((u != NULL && u->tokens < 1.0) || (a != NULL && a->tokens < 1.0)) {
        *error = "rate limited";
        return 429;
    }
    if (u != NULL) u->tokens -= 1.0;
    if (a != NULL) a->tokens -= 1.0;
    return 0;
}

/* ---- configuration ---- */

static int parse_number(const mp_api *api, const char *key, double fallback, double *out)
{
    const char *s = api->config(api, key);
    if (s == NULL) {
        *out = fallback;
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > 1e9) {
        api->log(api, MP_LOG_ERROR, "%s must be a number from 0 to 1e9, got '%s'", key, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_types(struct ratelimit *rl, const char *list)
{
    const mp_api *api = rl->api;
    if (strcmp(list, "*") == 0) {
        rl->all_types = 1;
        return 0;
    }
    for (const char *at = list; *at != '\0';) {
        size_t len = strcspn(at, ",");
        if (len == 0 || len > 64 || rl->type_count == TYPES_MAX) {
            api->log(api, MP_LOG_ERROR,
                     "types must be * or up to %d comma-separated types, got '%s'", TYPES_MAX,
                     list);
            return -1;
        }
        char *t = malloc(len + 1);
        if (t == NULL) return -1;
        memcpy(t, at, len);
        t[len] = '\0';
        rl->types[rl->type_count++] = t;
        at += len;
        if (*at == ',') at++;
    }
    return 0;
}

static int check_keys(const mp_api *api)
{
    static const char *const known[] = {"rate",       "burst", "addr_rate",
                                        "addr_burst", "types", "slots"};
    for (size_t i = 0;; i++) {
        const char *key = api->config_key_at(api, i);
        if (key == NULL) return 0;
        size_t k = 0;
        while (k < sizeof known / sizeof known[0] && strcmp(known[k], key) != 0)
            k++;
        if (k == sizeof known / sizeof known[0]) {
            api->log(api, MP_LOG_ERROR,
                     "unknown key '%s' (known: rate, burst, addr_rate, addr_burst, types, slots)",
                     key);
            return -1;
        }
    }
}

static int init_limit(const mp_api *api, struct limit *l, const char *rate_key, double rate,
                      const char *burst_key, double burst, size_t slots)
{
    if (parse_number(api, rate_key, rate, &l->rate) != 0) return -1;
    if (parse_number(api, burst_key, burst, &l->burst) != 0) return -1;
    if (l->rate > 0 && l->burst < 1) {
        api->log(api, MP_LOG_ERROR, "%s must be at least 1 when %s is set", burst_key, rate_key);
        return -1;
    }
    if (l->rate == 0) return 0;
    l->table = calloc(slots, sizeof *l->table);
    l->mask = slots - 1;
    return l->table != NULL ? 0 : -1;
}

static void free_ratelimit(struct ratelimit *rl)
{
    if (rl == NULL) return;
    for (size_t i = 0; i < rl->type_count; i++)
        free(rl->types[i]);
    free(rl->user.table);
    free(rl->addr.table);
    free(rl);
}

static int configure(struct ratelimit *rl)
{
    const mp_api *api = rl->api;
    double slots_wanted;
    if (check_keys(api) != 0 || parse_number(api, "slots", 16384, &slots_wanted) != 0) return -1;
    if (slots_wanted < PROBE || slots_wanted > (1 << 24)) {
        api->log(api, MP_LOG_ERROR, "slots must be between %d and %d", PROBE, 1 << 24);
        return -1;
    }
    size_t slots = PROBE;
    while (slots < (size_t)slots_wanted)
        slots *= 2;
    const char *types = api->config(api, "types");
    if (parse_types(rl, types ? types : "send,broadcast") != 0) return -1;
    if (init_limit(api, &rl->user, "rate", 20, "burst", 40, slots) != 0) return -1;
    return init_limit(api, &rl->addr, "addr_rate", 100, "addr_burst", 200, slots);
}

int mp_plugin_init(const mp_api *api, void **state)
{
    MP_PLUGIN_CHECK_VERSION(api);
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL) return -1;
    rl->api = api;
    if (configure(rl) != 0 || api->on_message(api, on_message) != 0) {
        free_ratelimit(rl);
        return -1;
    }
    api->log(api, MP_LOG_INFO, "user %g/s burst %g, address %g/s burst %g, types %s", rl->user.rate,
             rl->user.burst, rl->addr.rate, rl->addr.burst,
             api->config(api, "types") ? api->config(api, "types") : "send,broadcast");
    *state = rl;
    return 0;
}

void mp_plugin_fini(void *state)
{
    free_ratelimit(state);
}
