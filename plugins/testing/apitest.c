/* A plugin that exercises the API for tests/integration/test_plugins.py: timers, reading
 * nested values and writing them back, and Redis replies as the plugin sees them.
 *
 *   apitest.timers -> {ticks, oneshot, self, never}  counts of the timers started in init
 *   apitest.echo   -> {value = V}     the request's `value` read with api->read, written back
 *   apitest.redis  -> {reply = R}     the command in `args` (array of str); R describes the
 *                                     mp_redis_reply: str, int, nil, array, {status = s},
 *                                     {error = s} */
#include <stdlib.h>
#include <string.h>

#include "moonpost_plugin.h"

MP_PLUGIN_DEFINE("apitest", "0");

#define SELF_CANCEL_AFTER 3 /* the self-cancelling timer stops itself at this tick */
#define ARGS_MAX 16
#define DEPTH_MAX 32

struct apitest {
    const mp_api *api;
    long ticks, oneshot, self, never;
    mp_timer self_id;
};

static void on_tick(void *state, void *arg)
{
    (void)arg;
    ((struct apitest *)state)->ticks++;
}

static void on_oneshot(void *state, void *arg)
{
    (void)arg;
    ((struct apitest *)state)->oneshot++;
}

static void on_self(void *state, void *arg)
{
    struct apitest *t = state;
    (void)arg;
    if (++t->self == SELF_CANCEL_AFTER) t->api->timer_cancel(t->api, t->self_id);
}

static void on_never(void *state, void *arg)
{
    (void)arg;
    ((struct apitest *)state)->never++;
}

static void handle_timers(void *state, const mp_request *req)
{
    struct apitest *t = state;
    const mp_api *api = t->api;
    mp_writer *w = api->reply_begin(req, 4);
    api->write_str(w, "ticks", 5);
    api->write_int(w, t->ticks);
    api->write_str(w, "oneshot", 7);
    api->write_int(w, t->oneshot);
    api->write_str(w, "self", 4);
    api->write_int(w, t->self);
    api->write_str(w, "never", 5);
    api->write_int(w, t->never);
    api->reply_end(req);
}

/* Writes V (and, for a container, everything in it) to W; 0, or -1 on bad data. */
static int copy_value(const mp_api *api, mp_writer *w, mp_value *v, int depth)
{
    switch (v->type) {
    case MP_NIL:
        api->write_nil(w);
        return 0;
    case MP_BOOL:
        api->write_bool(w, v->v.boolean);
        return 0;
    case MP_INT:
        api->write_int(w, v->v.i);
        return 0;
    case MP_UINT:
        api->write_uint(w, v->v.u);
        return 0;
    case MP_FLOAT:
        api->write_float(w, v->v.f);
        return 0;
    case MP_STR:
        api->write_str(w, v->v.str.ptr, v->v.str.len);
        return 0;
    case MP_BIN:
        api->write_bin(w, v->v.str.ptr, v->v.str.len);
        return 0;
    case MP_ARRAY:
    case MP_MAP:
        break;
    }
    if (depth >= DEPTH_MAX) return -1;
    uint32_t n = v->type == MP_MAP ? 2 * v->v.count : v->v.count;
    if (v->type == MP_MAP)
        api->write_map(w, v->v.count);
    else
        api->write_array(w, v->v.count);
    for (uint32_t i = 0; i < n; i++) {
        mp_value item;
        if (!api->read(&v->items, &item) || copy_value(api, w, &item, depth + 1) != 0) return -1;
    }
    mp_value extra;
    return api->read(&v->items, &extra) ? -1 : 0; /* the reader ends with the container */
}

static void handle_echo(void *state, const mp_request *req)
{
    struct apitest *t = state;
    const mp_api *api = t->api;
    mp_value v;
    if (!api->field(req, "value", &v)) return api->reply(req, 400, "no value");
    /* checked in a writer of our own first, so that the reply is never half written */
    mp_writer *check = api->writer_new();
    if (check == NULL) return api->reply(req, 500, "out of memory");
    mp_value copy = v;
    int rc = copy_value(api, check, &copy, 0);
    api->writer_free(check);
    if (rc != 0) return api->reply(req, 400, "bad value");
    mp_writer *w = api->reply_begin(req, 1);
    api->write_str(w, "value", 5);
    copy_value(api, w, &v, 0);
    api->reply_end(req);
}

static void write_reply(const mp_api *api, mp_writer *w, const mp_redis_reply *r)
{
    switch (r->type) {
    case MP_REDIS_STRING:
        api->write_str(w, r->str, r->len);
        return;
    case MP_REDIS_INTEGER:
        api->write_int(w, r->integer);
        return;
    case MP_REDIS_NIL:
        api->write_nil(w);
        return;
    case MP_REDIS_STATUS:
    case MP_REDIS_ERROR:
        api->write_map(w, 1);
        api->write_str(w, r->type == MP_REDIS_STATUS ? "status" : "error",
                       r->type == MP_REDIS_STATUS ? 6 : 5);
        api->write_str(w, r->str, r->len);
        return;
    default:
        api->write_array(w, (uint32_t)r->count);
        for (size_t i = 0; i < r->count; i++)
            write_reply(api, w, &r->elements[i]);
    }
}

struct redis_call {
    const mp_api *api;
    mp_request req;
};

static void on_redis(const mp_redis_reply *reply, const char *error, void *arg)
{
    struct redis_call *c = arg;
    if (reply == NULL) {
        c->api->reply(&c->req, 503, error);
    } else {
        mp_writer *w = c->api->reply_begin(&c->req, 1);
        c->api->write_str(w, "reply", 5);
        write_reply(c->api, w, reply);
        c->api->reply_end(&c->req);
    }
    free(c);
}

static void handle_redis(void *state, const mp_request *req)
{
    struct apitest *t = state;
    const mp_api *api = t->api;
    mp_value args, arg;
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    if (!api->field(req, "args", &args) || args.type != MP_ARRAY || args.v.count == 0 ||
        args.v.count > ARGS_MAX)
        return api->reply(req, 400, "args: an array of 1 to 16 str");
    int argc = 0;
    while (api->read(&args.items, &arg)) {
        if (arg.type != MP_STR) return api->reply(req, 400, "args: an array of 1 to 16 str");
        argv[argc] = arg.v.str.ptr;
        lens[argc++] = arg.v.str.len;
    }
    struct redis_call *c = malloc(sizeof *c);
    if (c == NULL) return api->reply(req, 500, "out of memory");
    c->api = api;
    c->req = *req;
    if (api->redis(argc, argv, lens, on_redis, c) != 0) {
        free(c);
        api->reply(req, 503, "storage unavailable");
    }
}

int mp_plugin_init(const mp_api *api, void **state)
{
    MP_PLUGIN_CHECK_VERSION(api);
    struct apitest *t = calloc(1, sizeof *t);
    if (t == NULL) return -1;
    t->api = api;
    *state = t;
    mp_timer never = api->timer_start(api, 10, 10, on_never, NULL);
    api->timer_cancel(api, never);
    t->self_id = api->timer_start(api, 10, 10, on_self, NULL);
    if (never == 0 || t->self_id == 0 || api->timer_start(api, 20, 20, on_tick, NULL) == 0 ||
        api->timer_start(api, 30, 0, on_oneshot, NULL) == 0 ||
        api->add_handler(api, "apitest.timers", MP_HANDLER_ANONYMOUS, handle_timers) != 0 ||
        api->add_handler(api, "apitest.echo", MP_HANDLER_ANONYMOUS, handle_echo) != 0 ||
        api->add_handler(api, "apitest.redis", MP_HANDLER_ANONYMOUS, handle_redis) != 0) {
        free(t);
        return -1;
    }
    return 0;
}

void mp_plugin_fini(void *state)
{
    free(state);
}
