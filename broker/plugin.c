/* plugin: the C plugin loader (dlopen of `plugin PATH [key=value ...]` lines), the mp_api
 * function table handed to each plugin, and the hooks that call back into plugins.
 *
 * Each plugin gets its own copy of the mp_api table whose ctx names the plugin, so that
 * registrations, config lookups and log lines know whose they are. Handlers and message hooks
 * go into the router with a small registration record as their state; the session hooks are
 * kept here and run from this module's subscription to the session events, the
 * authentication hooks from its login check. */
#include "plugin.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "cluster.h"
#include "codec.h"
#include "log.h"
#include "moonpost_plugin.h"
#include "plugin_redis.h"
#include "plugin_timer.h"
#include "plugin_value.h"
#include "plugin_writer.h"
#include "options.h"
#include "presence.h"
#include "reply.h"
#include "router.h"

#define PLUGIN_TYPE_MAX 64 /* bytes of a message type a plugin registers */

struct plugin_kv {
    char *key;
    char *value;
};

struct mp_plugin_ctx {
    char *path;
    char *name;
    char *version;
    void *dl;
    void *state;
    mp_plugin_fini_fn fini;
    int loading;     /* inside mp_plugin_init: registrations are allowed */
    int initialised; /* init returned 0: fini runs at unload */
    struct plugin_kv *conf;
    size_t conf_count;
    mp_api api;
};

/* The state of a C route or a message hook in the router. */
struct plugin_handler {
    struct mp_plugin_ctx *p;
    mp_handler_fn fn;
    char type[PLUGIN_TYPE_MAX + 1];
};

struct plugin_message_hook {
    struct mp_plugin_ctx *p;
    mp_message_hook_fn fn;
};

struct session_hook {
    struct mp_plugin_ctx *p;
    mp_session_hook_fn fn;
};

struct session_hooks {
    struct session_hook *items;
    size_t count;
};

static struct mp_plugin_ctx **plugins;
static size_t plugin_count;
static struct plugin_handler **handlers;
static size_t handler_count;
static struct plugin_message_hook **message_hooks;
static size_t message_hook_count;
static struct session_hooks connect_hooks, login_hooks, disconnect_hooks;

struct authenticate_hook {
    struct mp_plugin_ctx *p;
    mp_authenticate_fn fn;
};
static struct authenticate_hook *authenticate_hooks;
static size_t authenticate_hook_count;
static int subscribed; /* to the session events and login checks, for the process */

static mp_writer frame_buf; /* api->frame_begin: never the scratch buffer, which a bye to a
                               slow reader may overwrite mid-delivery */
static mp_writer reply_buf; /* api->reply_begin */
static int bufs_ready;

/* The session whose disconnect hooks are running: still readable by id while they run. */
static struct session *closing_session;

/* ---- broker settings offered to plugins as text ---- */

enum conf_value_kind { VALUE_INT, VALUE_BOOL, VALUE_SECONDS, VALUE_STRING };

static const struct {
    const char *name;
    enum conf_value_kind kind;
    size_t offset; /* in struct conf */
} conf_offered[] = {
    {"max_frame", VALUE_INT, offsetof(struct conf, max_frame)},
    {"max_body", VALUE_INT, offsetof(struct conf, max_body)},
    {"output_limit", VALUE_INT, offsetof(struct conf, output_limit)},
    {"redis_prefix", VALUE_STRING, offsetof(struct conf, redis_prefix)},
    {"node_id", VALUE_STRING, offsetof(struct conf, node_id)},
    {"redis_cluster", VALUE_BOOL, offsetof(struct conf, redis_cluster)},
    {"idle_timeout", VALUE_SECONDS, offsetof(struct conf, idle_timeout)},
    {"login_timeout", VALUE_SECONDS, offsetof(struct conf, login_timeout)},
    {"max_connections", VALUE_INT, offsetof(struct conf, max_connections)},
};
#define CONF_OFFERED (sizeof conf_offered / sizeof conf_offered[0])

/* The text of each number, kept so that the pointer handed out stays valid. */
static char conf_text[CONF_OFFERED][32];

static const char *api_conf_get(const char *name)
{
    for (size_t i = 0; i < CONF_OFFERED; i++) {
        if (strcmp(conf_offered[i].name, name) != 0) continue;
        const char *field = (const char *)&broker.conf + conf_offered[i].offset;
        switch (conf_offered[i].kind) {
        case VALUE_STRING: {
            const char *value = *(char *const *)field;
            return value ? value : "";
        }
        case VALUE_BOOL:
            return *(const int *)field ? "1" : "0";
        case VALUE_INT:
            snprintf(conf_text[i], sizeof conf_text[i], "%d", *(const int *)field);
            break;
        case VALUE_SECONDS: {
            double seconds;
            memcpy(&seconds, field, sizeof seconds);
            snprintf(conf_text[i], sizeof conf_text[i], "%g", seconds);
            break;
        }
        }
        return conf_text[i];
    }
    return NULL;
}

/* ---- logging, time, config of the plugin ---- */

static void api_log(const mp_api *api, enum mp_log_level level, const char *fmt, ...)
{
    if (level < MP_LOG_DEBUG || level > MP_LOG_ERROR) level = MP_LOG_ERROR;
    if ((enum conf_log_level)level < log_get_level()) return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log_write((enum conf_log_level)level, "plugin %s: %s", api->ctx->name, text);
}

static int64_t api_now_ms(void)
{
    return broker_now_ms();
}

static const char *api_config(const mp_api *api, const char *key)
{
    const struct mp_plugin_ctx *p = api->ctx;
    for (size_t i = 0; i < p->conf_count; i++)
        if (strcmp(p->conf[i].key, key) == 0) return p->conf[i].value;
    return NULL;
}

static const char *api_config_key_at(const mp_api *api, size_t i)
{
    return i < api->ctx->conf_count ? api->ctx->conf[i].key : NULL;
}

/* ---- sessions ---- */

static struct session *find_session(mp_session id)
{
    if (closing_session != NULL && closing_session->handle == id) return closing_session;
    return session_get(id);
}

static const char *api_session_user(mp_session id, size_t *len)
{
    struct session *s = find_session(id);
    if (s == NULL || s->user_len == 0) return NULL;
    if (len) *len = s->user_len;
    return s->user;
}

static const char *api_session_addr(mp_session id, char *buf, size_t len)
{
    struct session *s = find_session(id);
    return s == NULL ? NULL : session_addr_text(s, buf, len);
}

static void api_session_close(mp_session id, int code, const char *error)
{
    struct session *s = session_get(id);
    if (s != NULL) session_close(s, code, error ? error : "closed");
}

/* ---- requests ---- */

static int api_field(const mp_request *req, const char *key, mp_value *out)
{
    return plugin_value_field(req->body, req->body_len, key, out);
}

/* A request is over: its slot of the session's in-flight limit frees up. */
static void request_done(struct session *s)
{
    if (s != NULL) session_handler_done(s);
}

static void api_reply(const mp_request *req, int code, const char *error)
{
    struct session *s = session_get(req->session);
    if (s == NULL) return;
    if (code != 200 && error == NULL) error = "error";
    session_reply(s, req->has_id, req->id, code, code == 200 ? NULL : error);
    request_done(s);
}

static mp_writer *api_reply_begin(const mp_request *req, size_t fields)
{
    reply_begin_in(&reply_buf.buf, req->has_id, req->id, 200, fields);
    return &reply_buf;
}

static void api_reply_end(const mp_request *req)
{
    size_t n = codec_frame_end(&reply_buf.buf);
    struct session *s = session_get(req->session);
    if (s == NULL) return;
    stats_count_reply(&stats, 200);
    if (req->has_id)
        session_send_bytes(s, reply_buf.buf.sb.data, n); /* success without id: silent */
    request_done(s);
}

/* ---- frames and delivery ---- */

static mp_writer *api_frame_begin(void)
{
    codec_frame_begin(&frame_buf.buf);
    return &frame_buf;
}

static const void *api_frame_end(size_t *len)
{
    *len = codec_frame_end(&frame_buf.buf);
    return frame_buf.buf.sb.data;
}

static int api_push(mp_session id, const void *frame, size_t len, uint64_t mid)
{
    struct session *s = session_get(id);
    return s != NULL ? router_push(s, frame, len, mid) : 0;
}

static int api_deliver(const char *user, size_t user_len, const void *frame, size_t len,
                       uint64_t mid)
{
    return router_deliver(user, user_len, frame, len, mid, 0);
}

struct delivered {
    mp_delivered_fn done;
    void *arg;
};

static void on_routed(redisReply *reply, const char *error, void *arg)
{
    (void)error;
    struct delivered d = *(struct delivered *)arg;
    free(arg);
    d.done(reply != NULL && reply->type == REDIS_REPLY_STRING, d.arg); /* the node's name */
}

static int api_deliver_mail(const char *user, size_t user_len, const void *frame, size_t len,
                            uint64_t mid, uint64_t prev, mp_delivered_fn done, void *arg)
{
    struct session *s = presence_find(user, user_len);
    if (s != NULL) return router_deliver_to(s, frame, len, mid, prev);
    struct delivered *d = done != NULL ? malloc(sizeof *d) : NULL;
    if (d != NULL) *d = (struct delivered){done, arg};
    if (cluster_route(user, user_len, frame, len, mid, prev, d ? on_routed : NULL, d) != 0) {
        free(d);
        return -1;
    }
    return done != NULL && d == NULL ? -1 : 0; /* no memory to wait: sent, answer unknown */
}

static size_t api_broadcast(const void *frame, size_t len, mp_session except)
{
    return router_broadcast(frame, len, except ? session_get(except) : NULL);
}

static int api_online(const char *user, size_t user_len)
{
    return presence_find(user, user_len) != NULL;
}

/* ---- timers ---- */

static mp_timer api_timer_start(const mp_api *api, uint64_t after_ms, uint64_t every_ms,
                                mp_timer_fn fn, void *arg)
{
    struct mp_plugin_ctx *p = api->ctx;
    mp_timer id =
        fn == NULL ? 0 : plugin_timer_start(broker.base, p, &p->state, after_ms, every_ms, fn, arg);
    if (id == 0) log_error("plugin %s: cannot start a timer", p->name);
    return id;
}

static void api_timer_cancel(const mp_api *api, mp_timer id)
{
    plugin_timer_cancel(api->ctx, id);
}

/* ---- registration ---- */

static int registering(const mp_api *api, const char *what)
{
    if (api->ctx->loading) return 1;
    log_error("plugin %s: %s may only be called inside mp_plugin_init", api->ctx->name, what);
    return 0;
}

/* Appends ITEM to a growable array of pointers; 0 or -1. */
static int push_ptr(void ***array, size_t *count, void *item)
{
    void **grown = realloc(*array, (*count + 1) * sizeof *grown);
    if (grown == NULL) return -1;
    grown[(*count)++] = item;
    *array = grown;
    return 0;
}

static void c_route(void *state, struct session *s, const struct frame_info *info,
                    const uint8_t *body, size_t len)
{
    struct plugin_handler *h = state;
    mp_request req = {s->handle,      info->has_id, info->id, (const char *)info->type,
                      info->type_len, body,         len};
    h->fn(h->p->state, &req); /* in flight until it replies, maybe from a Redis callback */
}

/* Which plugin serves TYPE, other than the registration NOT. */
static const char *c_route_owner(const char *type, const struct plugin_handler *not)
{
    for (size_t i = 0; i < handler_count; i++)
        if (handlers[i] != not && strcmp(handlers[i]->type, type) == 0) return handlers[i]->p->name;
    return "the broker";
}

static int api_add_handler(const mp_api *api, const char *type, unsigned flags, mp_handler_fn fn)
{
    struct mp_plugin_ctx *p = api->ctx;
    if (!registering(api, "add_handler")) return -1;
    size_t len = type ? strlen(type) : 0;
    if (len == 0 || len > PLUGIN_TYPE_MAX || fn == NULL) {
        log_error("plugin %s: add_handler needs a type of 1 to %d bytes and a function", p->name,
                  PLUGIN_TYPE_MAX);
        return -1;
    }
    struct plugin_handler *h = calloc(1, sizeof *h);
    if (h == NULL || push_ptr((void ***)&handlers, &handler_count, h) != 0) {
        free(h);
        log_error("plugin %s: out of memory", p->name);
        return -1;
    }
    h->p = p;
    h->fn = fn;
    memcpy(h->type, type, len + 1);
    unsigned route_flags = (flags & MP_HANDLER_ANONYMOUS) ? ROUTE_ANONYMOUS : 0;
    int added = router_add(type, route_flags, c_route, h);
    if (added == ROUTER_TAKEN) {
        log_error("plugin %s: type '%s' is already served by %s", p->name, type,
                  c_route_owner(type, h));
        return -1;
    }
    if (added != ROUTER_ADDED) {
        log_error("plugin %s: cannot register type '%s'", p->name, type);
        return -1;
    }
    log_debug("plugin %s: serves '%s'", p->name, type);
    return 0;
}

static int run_message_hook(void *state, struct session *s, const struct frame_info *info,
                            const uint8_t *body, size_t len, const char **error)
{
    struct plugin_message_hook *h = state;
    if (s->kind != SESSION_CLIENT) return 0; /* the admin socket is trusted */
    mp_request req = {s->handle,      info->has_id, info->id, (const char *)info->type,
                      info->type_len, body,         len};
    const char *why = NULL;
    int code = h->fn(h->p->state, &req, &why);
    if (code == 0) return 0;
    if (code < 400 || code > 599) {
        log_error("plugin %s: on_message returned %d, not an error code; answering 500", h->p->name,
                  code);
        code = 500;
    }
    *error = why ? why : "refused";
    return code;
}

static int api_on_message(const mp_api *api, mp_message_hook_fn fn)
{
    struct mp_plugin_ctx *p = api->ctx;
    if (!registering(api, "on_message") || fn == NULL) return -1;
    struct plugin_message_hook *h = calloc(1, sizeof *h);
    if (h == NULL || push_ptr((void ***)&message_hooks, &message_hook_count, h) != 0) {
        free(h);
        log_error("plugin %s: out of memory", p->name);
        return -1;
    }
    h->p = p;
    h->fn = fn;
    if (router_add_message_hook(run_message_hook, h) != 0) {
        log_error("plugin %s: too many on_message hooks", p->name);
        return -1;
    }
    return 0;
}

static int add_session_hook(const mp_api *api, struct session_hooks *list, mp_session_hook_fn fn,
                            const char *what)
{
    if (!registering(api, what) || fn == NULL) return -1;
    struct session_hook *grown = realloc(list->items, (list->count + 1) * sizeof *grown);
    if (grown == NULL) {
        log_error("plugin %s: out of memory", api->ctx->name);
        return -1;
    }
    grown[list->count++] = (struct session_hook){api->ctx, fn};
    list->items = grown;
    return 0;
}

static int api_on_connect(const mp_api *api, mp_session_hook_fn fn)
{
    return add_session_hook(api, &connect_hooks, fn, "on_connect");
}

static int api_on_login(const mp_api *api, mp_session_hook_fn fn)
{
    return add_session_hook(api, &login_hooks, fn, "on_login");
}

static int api_on_disconnect(const mp_api *api, mp_session_hook_fn fn)
{
    return add_session_hook(api, &disconnect_hooks, fn, "on_disconnect");
}

static int api_on_authenticate(const mp_api *api, mp_authenticate_fn fn)
{
    if (!registering(api, "on_authenticate") || fn == NULL) return -1;
    struct authenticate_hook *grown =
        realloc(authenticate_hooks, (authenticate_hook_count + 1) * sizeof *grown);
    if (grown == NULL) {
        log_error("plugin %s: out of memory", api->ctx->name);
        return -1;
    }
    grown[authenticate_hook_count++] = (struct authenticate_hook){api->ctx, fn};
    authenticate_hooks = grown;
    return 0;
}

static int api_login(mp_session id, const char *user, size_t len)
{
    struct session *s = session_get(id);
    if (s == NULL) return 503;
    const char *why;
    return session_login(s, user, len, &why);
}

/* ---- options ---- */

_Static_assert((int)MP_OPTION_INT == (int)OPTION_INT &&
                   (int)MP_OPTION_NUMBER == (int)OPTION_NUMBER &&
                   (int)MP_OPTION_BOOL == (int)OPTION_BOOL &&
                   (int)MP_OPTION_STRING == (int)OPTION_STRING,
               "mp_option_type is option_type");

/* Plugins load before the scripts: the first declaration creates the options in force. */
static int api_option_declare(const mp_api *api, const mp_option_spec *spec)
{
    struct mp_plugin_ctx *p = api->ctx;
    if (!registering(api, "option_declare") || spec == NULL) return -1;
    if (options_current() == NULL) options_install(options_new(&broker.conf));
    if (options_current() == NULL) {
        log_error("plugin %s: out of memory", p->name);
        return -1;
    }
    struct option_spec s = {
        .name = spec->name,
        .type = (enum option_type)spec->type,
        .default_value = spec->default_value,
        .has_min = (spec->flags & MP_OPTION_HAS_MIN) != 0,
        .has_max = (spec->flags & MP_OPTION_HAS_MAX) != 0,
        .min = spec->min,
        .max = spec->max,
        .doc = spec->doc,
    };
    char owner[300], err[512];
    snprintf(owner, sizeof owner, "plugin %s", p->name);
    if (options_declare(options_current(), &s, owner, 1, err, sizeof err) != 0) {
        log_error("plugin %s: %s", p->name, err);
        return -1;
    }
    return 0;
}

static const char *api_option(const mp_api *api, const char *name)
{
    (void)api;
    const struct option_value *v = options_get(options_current(), name);
    return v != NULL ? v->text : NULL;
}

static const mp_api api_template = {
    .version = MP_PLUGIN_API_VERSION,
    .size = sizeof(mp_api),
    .broker_version = MOONPOST_VERSION,
    .min_version = MP_PLUGIN_API_MIN,
    .add_handler = api_add_handler,
    .on_message = api_on_message,
    .on_connect = api_on_connect,
    .on_login = api_on_login,
    .on_disconnect = api_on_disconnect,
    .config = api_config,
    .config_key_at = api_config_key_at,
    .conf_get = api_conf_get,
    .log = api_log,
    .now_ms = api_now_ms,
    .field = api_field,
    .read = plugin_value_read,
    .reply = api_reply,
    .reply_begin = api_reply_begin,
    .reply_end = api_reply_end,
    .session_user = api_session_user,
    .session_addr = api_session_addr,
    .session_close = api_session_close,
    .frame_begin = api_frame_begin,
    .frame_end = api_frame_end,
    .push = api_push,
    .deliver = api_deliver,
    .broadcast = api_broadcast,
    .online = api_online,
    .redis = plugin_redis_command,
    .redis_replicated = plugin_redis_replicated,
    .login = api_login,
    .on_authenticate = api_on_authenticate,
    .write_map = plugin_write_map,
    .write_array = plugin_write_array,
    .write_str = plugin_write_str,
    .write_bin = plugin_write_bin,
    .write_int = plugin_write_int,
    .write_uint = plugin_write_uint,
    .write_float = plugin_write_float,
    .write_bool = plugin_write_bool,
    .write_nil = plugin_write_nil,
    .writer_new = plugin_writer_new,
    .writer_reset = plugin_writer_reset,
    .writer_data = plugin_writer_data,
    .writer_free = plugin_writer_free,
    .timer_start = api_timer_start,
    .timer_cancel = api_timer_cancel,
    .option_declare = api_option_declare,
    .option = api_option,
    .deliver_mail = api_deliver_mail,
};

/* ---- session hooks ---- */

static void run_session_hooks(const struct session_hooks *list, struct session *s)
{
    session_handle id = s->handle;
    for (size_t i = 0; i < list->count; i++) {
        if (find_session(id) == NULL) return; /* an earlier hook closed it */
        list->items[i].fn(list->items[i].p->state, id);
    }
}

/* The session events, for client sessions: the plugins' on_connect, on_login, on_disconnect. */
static void on_session_event(void *state, struct session *s, enum session_event event)
{
    (void)state;
    if (s->kind != SESSION_CLIENT) return;
    switch (event) {
    case SESSION_OPENED: run_session_hooks(&connect_hooks, s); break;
    case SESSION_LOGGED_IN: run_session_hooks(&login_hooks, s); break;
    case SESSION_CLOSED:
        if (disconnect_hooks.count == 0) return;
        closing_session = s; /* still readable by id while the hooks run */
        for (size_t i = 0; i < disconnect_hooks.count; i++)
            disconnect_hooks.items[i].fn(disconnect_hooks.items[i].p->state, s->handle);
        closing_session = NULL;
        break;
    }
}

/* The login check: every plugin's on_authenticate, in load order; the first refusal wins. */
static int run_authenticate_hooks(void *state, struct session *s, const char *user, size_t len,
                                  const char **error)
{
    (void)state;
    for (size_t i = 0; i < authenticate_hook_count; i++) {
        const struct authenticate_hook *h = &authenticate_hooks[i];
        const char *why = NULL;
        int code = h->fn(h->p->state, s->handle, user, len, &why);
        if (code == 0) continue;
        if (code < 400 || code > 599) {
            log_error("plugin %s: on_authenticate returned %d, not an error code; answering 500",
                      h->p->name, code);
            code = 500;
        }
        *error = why ? why : "login refused";
        return code;
    }
    return 0;
}

static int subscribe(void)
{
    if (subscribed) return 0;
    if (session_subscribe(on_session_event, NULL) != 0 ||
        session_add_login_check(run_authenticate_hooks, NULL) != 0)
        return -1;
    subscribed = 1;
    return 0;
}

/* ---- loading ---- */

static void free_plugin(struct mp_plugin_ctx *p)
{
    for (size_t i = 0; i < p->conf_count; i++) {
        free(p->conf[i].key);
        free(p->conf[i].value);
    }
    free(p->conf);
    free(p->path);
    free(p->name);
    free(p->version);
    free(p);
}

/* Splits "PATH key=value ..." into p->path and p->conf. */
static int parse_item(struct mp_plugin_ctx *p, const char *item)
{
    size_t plen = strcspn(item, " \t");
    p->path = strndup(item, plen);
    p->name = strdup(item); /* replaced by mp_plugin.name once loaded */
    if (p->path == NULL || p->name == NULL) return -1;
    p->name[plen] = '\0';
    const char *at = item + plen;
    for (;;) {
        at += strspn(at, " \t");
        if (*at == '\0') return 0;
        size_t len = strcspn(at, " \t");
        const char *eq = memchr(at, '=', len);
        if (eq == NULL || eq == at) {
            log_error("plugin %s: '%.*s' is not key=value", p->path, (int)len, at);
            return -1;
        }
        char *key = strndup(at, (size_t)(eq - at));
        for (size_t i = 0; key != NULL && i < p->conf_count; i++) {
            if (strcmp(p->conf[i].key, key) == 0) {
                log_error("plugin %s: key '%s' given twice", p->path, key);
                free(key);
                return -1;
            }
        }
        struct plugin_kv *grown = key ? realloc(p->conf, (p->conf_count + 1) * sizeof *grown) : NULL;
        if (grown == NULL) {
            free(key);
            log_error("plugin %s: out of memory", p->path);
            return -1;
        }
        p->conf = grown;
        p->conf[p->conf_count].key = key;
        p->conf[p->conf_count].value = strndup(eq + 1, len - (size_t)(eq + 1 - at));
        if (p->conf[p->conf_count++].value == NULL) return -1;
        at += len;
    }
}

static int replace_name(struct mp_plugin_ctx *p, const mp_plugin_info *info)
{
    if (info->name != NULL && *info->name != '\0') {
        free(p->name);
        p->name = strdup(info->name);
    }
    p->version = strdup(info->version ? info->version : "");
    return p->name != NULL && p->version != NULL ? 0 : -1;
}

/* Opens the shared object and checks that it is a plugin of an API version this broker
 * serves. A reference to anything but libraries fails here: the broker exports nothing. */
static int open_plugin(struct mp_plugin_ctx *p, mp_plugin_init_fn *init)
{
    p->dl = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
    if (p->dl == NULL) {
        log_error("plugin %s: cannot load: %s", p->path, dlerror());
        return -1;
    }
    const mp_plugin_info *info = dlsym(p->dl, "mp_plugin");
    if (info == NULL) {
        log_error("plugin %s: not a moonpost plugin: no 'mp_plugin' symbol (MP_PLUGIN_DEFINE)",
                  p->path);
        return -1;
    }
    if (info->api_version < MP_PLUGIN_API_MIN || info->api_version > MP_PLUGIN_API_VERSION) {
        log_error("plugin %s: built for plugin API version %u but this broker accepts versions "
                  "%u to %u: rebuild it against this broker's moonpost_plugin.h",
                  p->path, (unsigned)info->api_version, (unsigned)MP_PLUGIN_API_MIN,
                  (unsigned)MP_PLUGIN_API_VERSION);
        return -1;
    }
    if (replace_name(p, info) != 0) return -1;
    for (size_t i = 0; i < plugin_count; i++) {
        if (strcmp(plugins[i]->name, p->name) == 0) {
            log_error("plugin %s: a plugin named '%s' is already loaded from %s", p->path, p->name,
                      plugins[i]->path);
            return -1;
        }
    }
    void *init_sym = dlsym(p->dl, "mp_plugin_init");
    void *fini_sym = dlsym(p->dl, "mp_plugin_fini");
    /* dlsym answers object pointers; POSIX guarantees they convert to function pointers */
    memcpy(init, &init_sym, sizeof *init);
    memcpy(&p->fini, &fini_sym, sizeof p->fini);
    const char *missing = *init == NULL     ? "mp_plugin_init"
                          : p->fini == NULL ? "mp_plugin_fini"
                                            : NULL;
    if (missing != NULL) {
        log_error("plugin %s: missing symbol '%s'", p->path, missing);
        return -1;
    }
    return 0;
}

static int load_one(const char *item)
{
    struct mp_plugin_ctx *p = calloc(1, sizeof *p);
    if (p == NULL) {
        log_error("plugin %s: out of memory", item);
        return -1;
    }
    p->api = api_template;
    p->api.ctx = p;
    mp_plugin_init_fn init = NULL;
    if (parse_item(p, item) != 0 || open_plugin(p, &init) != 0) {
        if (p->dl) dlclose(p->dl);
        free_plugin(p);
        return -1;
    }
    if (push_ptr((void ***)&plugins, &plugin_count, p) != 0) {
        dlclose(p->dl);
        free_plugin(p);
        log_error("plugin %s: out of memory", item);
        return -1;
    }
    p->loading = 1;
    int rc = init(&p->api, &p->state);
    p->loading = 0;
    if (rc != 0) {
        log_error("plugin %s (%s): mp_plugin_init failed (%d)", p->name, p->path, rc);
        return -1;
    }
    p->initialised = 1;
    log_info("plugin %s %s loaded from %s", p->name, p->version, p->path);
    return 0;
}

int plugin_load(const char *line)
{
    if (subscribe() != 0) {
        log_error("plugins: cannot subscribe to the session events");
        return -1;
    }
    if (!bufs_ready) {
        codec_buf_init(&frame_buf.buf);
        codec_buf_init(&reply_buf.buf);
        bufs_ready = 1;
    }
    return load_one(line);
}

int plugin_load_all(void)
{
    for (size_t i = 0; i < broker.conf.plugin.count; i++)
        if (plugin_load(broker.conf.plugin.items[i]) != 0) return -1;
    return 0;
}

void plugin_unload_all(void)
{
    plugin_timer_stop_all(); /* no timer fires into a plugin being finished */
    for (size_t i = plugin_count; i-- > 0;) {
        struct mp_plugin_ctx *p = plugins[i];
        if (p->initialised && p->fini) p->fini(p->state);
        p->initialised = 0;
    }
    for (size_t i = plugin_count; i-- > 0;) {
        dlclose(plugins[i]->dl);
        free_plugin(plugins[i]);
    }
    free(plugins);
    plugins = NULL;
    plugin_count = 0;
    for (size_t i = 0; i < handler_count; i++)
        free(handlers[i]);
    free(handlers);
    handlers = NULL;
    handler_count = 0;
    for (size_t i = 0; i < message_hook_count; i++)
        free(message_hooks[i]);
    free(message_hooks);
    message_hooks = NULL;
    message_hook_count = 0;
    free(authenticate_hooks);
    authenticate_hooks = NULL;
    authenticate_hook_count = 0;
    struct session_hooks *lists[] = {&connect_hooks, &login_hooks, &disconnect_hooks};
    for (size_t i = 0; i < 3; i++) {
        free(lists[i]->items);
        *lists[i] = (struct session_hooks){NULL, 0};
    }
    if (bufs_ready) {
        codec_buf_free(&frame_buf.buf);
        codec_buf_free(&reply_buf.buf);
        bufs_ready = 0;
    }
    plugin_redis_free();
}

void plugin_pack_list(msgpack_packer *pk)
{
    msgpack_pack_array(pk, plugin_count);
    for (size_t i = 0; i < plugin_count; i++) {
        const struct mp_plugin_ctx *p = plugins[i];
        msgpack_pack_map(pk, 3);
        msgpack_pack_str_with_body(pk, "name", 4);
        msgpack_pack_str_with_body(pk, p->name, strlen(p->name));
        msgpack_pack_str_with_body(pk, "path", 4);
        msgpack_pack_str_with_body(pk, p->path, strlen(p->path));
        msgpack_pack_str_with_body(pk, "version", 7);
        msgpack_pack_str_with_body(pk, p->version, strlen(p->version));
    }
}
