/* hello: the example plugin of docs/plugins.md. One handler that answers at once, one that
 * waits for Redis, the four hooks, and two config keys.
 *
 *   plugin .../moonpost_hello.so greeting=Hi deny=users
 *
 *   hello        -> {greeting = "Hi, alice"}            (allowed before login)
 *   hello.count  -> {count = N}   N from INCR <redis_prefix>hello:count
 *   hello.stats  -> {connected = N, logged_in = N}      kept up by the session hooks
 *   deny=TYPE    frames of TYPE are refused with 403 by the on_message hook */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("hello", "1.0.0");

struct hello {
    const mp_api *api;
    const char *greeting; /* owned by the broker, valid until fini */
    const char *deny;
    char counter_key[128];
    long connected, logged_in;
};

/* hello: a reply with one field, written with the api's writer */
static void handle_hello(void *state, const mp_request *req)
{
    struct hello *h = state;
    size_t len;
    const char *user = h->api->session_user(req->session, &len);
    char text[128];
    snprintf(text, sizeof text, "%s, %.*s", h->greeting, user ? (int)len : 8,
             user ? user : "stranger");
    mp_writer *w = h->api->reply_begin(req, 1);
    h->api->write_str(w, "greeting", 8);
    h->api->write_str(w, text, strlen(text));
    h->api->reply_end(req);
}

/* hello.count: the request waits for Redis; its copy travels as the callback's argument */
struct count_call {
    struct hello *h;
    mp_request req;
};

static void on_incr(const mp_redis_reply *reply, const char *error, void *arg)
{
    struct count_call *c = arg;
    const mp_api *api = c->h->api;
    if (reply == NULL) {
        api->reply(&c->req, 503, error);
    } else if (reply->type != MP_REDIS_INTEGER) {
        api->reply(&c->req, 500, "storage error");
    } else {
        mp_writer *w = api->reply_begin(&c->req, 1);
        api->write_str(w, "count", 5);
        api->write_int(w, reply->integer);
        api->reply_end(&c->req);
    }
    free(c);
}

static void handle_count(void *state, const mp_request *req)
{
    struct hello *h = state;
    struct count_call *c = malloc(sizeof *c);
    if (c == NULL) return h->api->reply(req, 500, "out of memory");
    c->h = h;
    c->req = *req; /* session and id; the body pointer dies with this call */
    const char *argv[] = {"INCR", h->counter_key};
    size_t lens[] = {4, strlen(h->counter_key)};
    if (h->api->redis(2, argv, lens, on_incr, c) != 0) {
        free(c);
        h->api->reply(req, 503, "storage unavailable");
    }
}

static void handle_stats(void *state, const mp_request *req)
{
    struct hello *h = state;
    mp_writer *w = h->api->reply_begin(req, 2);
    h->api->write_str(w, "connected", 9);
    h->api->write_int(w, h->connected);
    h->api->write_str(w, "logged_in", 9);
    h->api->write_int(w, h->logged_in);
    h->api->reply_end(req);
}

/* the hooks */
static int on_message(void *state, const mp_request *req, const char **error)
{
    struct hello *h = state;
    if (h->deny && strlen(h->deny) == req->type_len &&
        memcmp(h->deny, req->type, req->type_len) == 0) {
        *error = "denied by the hello plugin";
        return 403;
    }
    return 0;
}

static void on_connect(void *state, mp_session s)
{
    (void)s;
    ((struct hello *)state)->connected++;
}

static void on_login(void *state, mp_session s)
{
    struct hello *h = state;
    h->logged_in++;
    h->api->log(h->api, MP_LOG_DEBUG, "%s logged in", h->api->session_user(s, NULL));
}

static void on_disconnect(void *state, mp_session s)
{
    struct hello *h = state;
    h->connected--;
    if (h->api->session_user(s, NULL) != NULL) h->logged_in--;
}

int mp_plugin_init(const mp_api *api, void **state)
{
    MP_PLUGIN_CHECK_VERSION(api);
    for (size_t i = 0; api->config_key_at(api, i) != NULL; i++) {
        const char *key = api->config_key_at(api, i);
        if (strcmp(key, "greeting") != 0 && strcmp(key, "deny") != 0) {
            api->log(api, MP_LOG_ERROR, "unknown key '%s' (known: greeting, deny)", key);
            return -1;
        }
    }
    struct hello *h = calloc(1, sizeof *h);
    if (h == NULL) return -1;
    h->api = api;
    h->greeting = api->config(api, "greeting") ? api->config(api, "greeting") : "Hello";
    h->deny = api->config(api, "deny");
    snprintf(h->counter_key, sizeof h->counter_key, "%shello:count", api->conf_get("redis_prefix"));
    if (api->add_handler(api, "hello", MP_HANDLER_ANONYMOUS, handle_hello) != 0 ||
        api->add_handler(api, "hello.count", 0, handle_count) != 0 ||
        api->add_handler(api, "hello.stats", MP_HANDLER_ANONYMOUS, handle_stats) != 0 ||
        api->on_message(api, on_message) != 0 || api->on_connect(api, on_connect) != 0 ||
        api->on_login(api, on_login) != 0 || api->on_disconnect(api, on_disconnect) != 0) {
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

void mp_plugin_fini(void *state)
{
    free(state);
}
