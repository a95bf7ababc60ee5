/* moonpost_plugin: the C plugin API, the only broker header a plugin includes.
 *
 * A plugin is a shared object loaded with dlopen() from a `plugin PATH [key=value ...]` line
 * of the broker's configuration. It exports three symbols:
 *
 *     MP_PLUGIN_DEFINE("hello", "1.0.0");                      the mp_plugin description
 *     int mp_plugin_init(const mp_api *api, void **state);     0 = loaded, else start-up stops
 *     void mp_plugin_fini(void *state);                        at shutdown
 *
 * The loader refuses, before init runs, a plugin whose mp_plugin.api_version is outside the
 * broker's range MP_PLUGIN_API_MIN..MP_PLUGIN_API_VERSION. Inside init the plugin checks the
 * range from its side too (MP_PLUGIN_CHECK_VERSION), reads its config keys and registers
 * handlers, hooks and timers. Every callback receives the state init stored in *state.
 *
 * The header uses only its own types and the C library's: no msgpack-c, no hiredis. Replies
 * and frames are written through an mp_writer, Redis replies arrive as an mp_redis_reply, and
 * nested request values are read with an mp_reader.
 *
 * Everything runs on the broker's one event-loop thread: a callback must never block (no
 * sleeping, no synchronous I/O); slow work goes to Redis through api->redis() and continues in
 * its callback. Sessions are named by an mp_session id, never a pointer: a session may be gone
 * by the time a Redis reply arrives, and every function taking an id then does nothing.
 *
 * docs/plugins.md walks through writing a plugin. */
#ifndef MOONPOST_PLUGIN_API_H
#define MOONPOST_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The API versions this header describes. A member appended to mp_api bumps
 * MP_PLUGIN_API_VERSION (a plugin built for an older version still loads, and one built for
 * the newer version is refused by an older broker); an incompatible change (a member removed,
 * moved or changed) also raises MP_PLUGIN_API_MIN to the new version, so older plugins are
 * refused. The broker loads plugins built for any version from MIN to VERSION. */
#define MP_PLUGIN_API_VERSION 3
#define MP_PLUGIN_API_MIN 2

/* The version a plugin declares it needs (mp_plugin.api_version): by default the header's.
 * A plugin that should also load on older brokers defines it lower before including this
 * header, and uses members appended since only where MP_API_HAS says they are there. */
#ifndef MP_PLUGIN_API_TARGET
#define MP_PLUGIN_API_TARGET MP_PLUGIN_API_VERSION
#endif

#define MP_EXPORT __attribute__((visibility("default")))

/* A session (connection) id. 0 is never a live session. */
typedef uint64_t mp_session;

/* Log levels for api->log. */
enum mp_log_level { MP_LOG_DEBUG, MP_LOG_INFO, MP_LOG_WARN, MP_LOG_ERROR };

/* Flags of api->add_handler. */
#define MP_HANDLER_ANONYMOUS 1u /* may run before login (like register, login, ping) */

/* One request. TYPE and BODY point into the frame and are valid only during the call; keep a
 * copy of the struct (session, has_id, id are what a later reply needs), never of the
 * pointers. BODY is the whole frame body (a MessagePack map), in handlers and on_message
 * hooks alike. */
typedef struct mp_request {
    mp_session session;  /* the client that sent it */
    int has_id;          /* 1 when the frame had an `id` (only then does a 200 reply go out) */
    uint64_t id;         /* that id */
    const char *type;    /* the message type, not NUL-terminated */
    size_t type_len;     /* bytes of TYPE */
    const uint8_t *body; /* the whole frame body */
    size_t body_len;     /* bytes of BODY */
} mp_request;

/* A value of a request, as read by api->field and api->read. */
typedef enum mp_type {
    MP_NIL,
    MP_BOOL,
    MP_INT,
    MP_UINT,
    MP_FLOAT,
    MP_STR,
    MP_BIN,
    MP_ARRAY,
    MP_MAP
} mp_type;

/* Reads a run of MessagePack values in place (api->read); two pointers, copy it freely.
 * { body, body + body_len } reads a whole request body. */
typedef struct mp_reader {
    const uint8_t *pos; /* the next value */
    const uint8_t *end; /* past the last one */
} mp_reader;

typedef struct mp_value {
    mp_type type;
    union {
        int boolean; /* MP_BOOL: 0 or 1 */
        int64_t i;  /* MP_INT: negative integers only (non-negative ones are MP_UINT) */
        uint64_t u; /* MP_UINT */
        double f;   /* MP_FLOAT (float 32 or 64) */
        struct {
            const char *ptr; /* into the frame body: valid during the call only */
            uint32_t len;
        } str;          /* MP_STR, MP_BIN */
        uint32_t count; /* MP_ARRAY: elements, MP_MAP: pairs */
    } v;
    /* MP_ARRAY, MP_MAP: the elements (a map's as key, value, key, value...), for api->read.
     * Empty for the other types. */
    mp_reader items;
} mp_value;

/* Builds MessagePack (a reply, a frame, or bytes of the plugin's own) with api->write_*.
 * Opaque: the broker owns its buffer. */
typedef struct mp_writer mp_writer;

/* A Redis reply, converted from the client library's by the broker. Every pointer in it is
 * valid during the mp_redis_fn call only. */
typedef enum mp_redis_type {
    MP_REDIS_STRING,  /* str, len: a bulk string */
    MP_REDIS_STATUS,  /* str, len: a simple string ("OK") */
    MP_REDIS_ERROR,   /* str, len: an error reply ("ERR ...", "OOM ...") */
    MP_REDIS_INTEGER, /* integer */
    MP_REDIS_NIL,     /* a null reply */
    MP_REDIS_ARRAY,   /* elements[0..count) */
    MP_REDIS_MAP,     /* RESP3: elements[0..count) as key, value, key, value... */
    MP_REDIS_SET,     /* RESP3: elements[0..count) */
    MP_REDIS_DOUBLE,  /* RESP3: number, and str, len its text */
    MP_REDIS_BOOL,    /* RESP3: integer 0 or 1 */
    MP_REDIS_OTHER    /* a RESP3 type not listed: str, len (big number, verbatim), or
                         elements, count (push, attribute) */
} mp_redis_type;

typedef struct mp_redis_reply {
    mp_redis_type type;
    int64_t integer; /* MP_REDIS_INTEGER, MP_REDIS_BOOL; else 0 */
    double number;   /* MP_REDIS_DOUBLE; else 0 */
    const char *str; /* the text of the types with text, NUL-terminated; else NULL */
    size_t len;      /* bytes of STR (a bulk string may hold NULs) */
    size_t count;    /* the elements of an aggregate; else 0 */
    const struct mp_redis_reply *elements; /* COUNT replies; NULL when COUNT is 0 */
} mp_redis_reply;

/* A timer of api->timer_start, by id like a session: 0 is never a timer. */
typedef uint64_t mp_timer;

/* A message type's handler. It answers with exactly one reply (reply, or reply_begin and
 * reply_end), now or later from a Redis callback; until then the request counts against the
 * session's in-flight limit. A request without an id still needs its reply: a 200 without id
 * sends nothing but finishes the request. */
typedef void (*mp_handler_fn)(void *state, const mp_request *req);

/* Runs before the handler of every frame from a client (admin sessions are not seen), after
 * the login check. Returns 0 to let it through, or a reply code (429, 403...) to refuse it,
 * with *error set to a reason that outlives the call (a string literal). */
typedef int (*mp_message_hook_fn)(void *state, const mp_request *req, const char **error);

/* Session lifecycle: a client connected, logged in (api->session_user now answers), or is
 * gone (after its last frame; the id no longer reaches it). */
typedef void (*mp_session_hook_fn)(void *state, mp_session session);

/* Runs when a client session is about to log in as USER (from a script's s:authenticate or a
 * plugin's api->login), before anything changes. Returns 0 to let it, or a reply code (403,
 * 429...) to refuse it, with *error set to a reason that outlives the call. */
typedef int (*mp_authenticate_fn)(void *state, mp_session session, const char *user, size_t len,
                                  const char **error);

/* A Redis reply: REPLY is valid during the call only; REPLY is NULL and ERROR says why when
 * the connection was lost before the reply came. Called exactly once per accepted command. */
typedef void (*mp_redis_fn)(const mp_redis_reply *reply, const char *error, void *arg);

/* A timer fired: STATE is the plugin's, ARG the timer's own (api->timer_start). */
typedef void (*mp_timer_fn)(void *state, void *arg);

/* An option the plugin declares (api->option_declare): set in the broker's config file like
 * any key (`mailbox_max 5000`, `--set mailbox_max=5000`), checked by `moonpost -t`. */
typedef enum mp_option_type {
    MP_OPTION_INT,    /* a decimal integer, within min/max when given */
    MP_OPTION_NUMBER, /* a decimal number, within min/max when given */
    MP_OPTION_BOOL,   /* on/off, yes/no, true/false, 1/0 */
    MP_OPTION_STRING
} mp_option_type;

#define MP_OPTION_HAS_MIN 1u /* mp_option_spec.min applies */
#define MP_OPTION_HAS_MAX 2u /* mp_option_spec.max applies */

typedef struct mp_option_spec {
    const char *name;          /* 1 to 64 of a-z 0-9 _ */
    mp_option_type type;
    const char *default_value; /* written as in the config file: "10000", "off" */
    unsigned flags;            /* MP_OPTION_HAS_MIN, MP_OPTION_HAS_MAX */
    double min, max;
    const char *doc;           /* one line: what it does */
} mp_option_spec;

typedef struct mp_api mp_api;

/* What deliver_mail tells when the recipient is not on this node: whether a node held it. */
typedef void (*mp_delivered_fn)(int online, void *arg);

struct mp_api {
    /* These five never move, whatever the version. */
    uint32_t version;           /* the broker's MP_PLUGIN_API_VERSION */
    uint32_t size;              /* sizeof(mp_api) in the broker */
    const char *broker_version; /* MOONPOST_VERSION, e.g. "0.1.0" */
    struct mp_plugin_ctx *ctx;  /* the loader's record of this plugin: do not touch */
    uint32_t min_version;       /* the broker's MP_PLUGIN_API_MIN */

    /* ---- registration: only inside mp_plugin_init; 0 or -1 (logged) ---- */

    /* Serves message TYPE. C handlers win over Lua handlers of the same type; a type another
     * plugin or the broker already serves in C is refused. */
    int (*add_handler)(const mp_api *api, const char *type, unsigned flags, mp_handler_fn fn);
    /* Adds a hook; the hooks of all plugins run in load order (mp_message_hook_fn,
     * mp_session_hook_fn say when). */
    int (*on_message)(const mp_api *api, mp_message_hook_fn fn);
    int (*on_connect)(const mp_api *api, mp_session_hook_fn fn);
    int (*on_login)(const mp_api *api, mp_session_hook_fn fn);
    int (*on_disconnect)(const mp_api *api, mp_session_hook_fn fn);

    /* ---- configuration ---- */

    /* This plugin's own `key=value` from its plugin line, or NULL when absent. */
    const char *(*config)(const mp_api *api, const char *key);
    /* The I-th key of the plugin line (for refusing unknown keys), NULL past the end. */
    const char *(*config_key_at)(const mp_api *api, size_t i);
    /* A broker setting as text, NULL for a name it does not offer: max_frame, max_body,
     * output_limit, redis_prefix, node_id, idle_timeout, login_timeout, max_connections.
     * Policy settings are options (api->option). */
    const char *(*conf_get)(const char *name);

    /* ---- logging and time ---- */

    /* A line of the broker's log, "plugin NAME: " first, kept when LEVEL >= log_level. */
    void (*log)(const mp_api *api, enum mp_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    int64_t (*now_ms)(void); /* ms since the epoch, the loop's cached clock */

    /* ---- requests ---- */

    /* Finds top-level KEY of the request body; 1 when found (OUT filled), else 0. */
    int (*field)(const mp_request *req, const char *key, mp_value *out);
    /* Reads the next value of R into OUT and moves R past it (past the whole of an array or
     * map, whose elements OUT->items then reads). 1, or 0 at the end or on malformed or too
     * deeply nested data (R is then left at its end). */
    int (*read)(mp_reader *r, mp_value *out);
    /* Replies `res` CODE; ERROR is required when CODE != 200. */
    void (*reply)(const mp_request *req, int code, const char *error);
    /* Starts `res` 200 with FIELDS key/value pairs to write next (api->write_*), then
     * reply_end sends it. Do not call other api functions between the two but write_*. */
    mp_writer *(*reply_begin)(const mp_request *req, size_t fields);
    void (*reply_end)(const mp_request *req); /* sends it (nothing without an id), ends REQ */

    /* ---- sessions ---- */

    /* The logged-in user of SESSION (LEN set when not NULL); NULL when anonymous or gone. */
    const char *(*session_user)(mp_session session, size_t *len);
    /* The client's address as text ("127.0.0.1", "::1"); NULL when gone. */
    const char *(*session_addr)(mp_session session, char *buf, size_t len);
    /* Sends `bye` CODE ERROR (CODE 0: no bye) and closes the session once flushed. */
    void (*session_close)(mp_session session, int code, const char *error);

    /* ---- frames and delivery ---- */

    /* Builds a frame (a map with a `type` field, written by the plugin) in a buffer of the
     * loader; frame_end returns it, length prefix included, valid until the next frame_begin. */
    mp_writer *(*frame_begin)(void);
    const void *(*frame_end)(size_t *len); /* the frame, LEN its bytes */
    /* Queues FRAME to SESSION; MID > 0 marks a mailbox message, pushed only in increasing
     * mid order. Returns 1 when queued, 0 when the session is gone or MID was not new. */
    int (*push)(mp_session session, const void *frame, size_t len, uint64_t mid);
    /* Queues FRAME to USER's session wherever it is: on this node at once, on another node
     * through it. MID > 0 marks a mailbox message (held back during the mailbox replay, never
     * pushed twice; see deliver_mail). Returns 1 when the user has a session on this node. */
    int (*deliver)(const char *user, size_t user_len, const void *frame, size_t len, uint64_t mid);
    /* Queues FRAME to every online session but EXCEPT (0 = none); returns how many. */
    size_t (*broadcast)(const void *frame, size_t len, mp_session except);
    int (*online)(const char *user, size_t user_len); /* 1 when USER has a session here */

    /* ---- Redis ---- */

    /* Sends one command on the broker's Redis connection. Returns 0 (FN will be called
     * exactly once, later, never from inside this call), or -1 when Redis is not connected
     * (FN is not called: answer 503). Not available inside mp_plugin_init. */
    int (*redis)(int argc, const char **argv, const size_t *argv_len, mp_redis_fn fn, void *arg);

    /* ---- logging in ---- */

    /* Logs SESSION in as USER (1 to 32 bytes), as a script's s:authenticate does: the
     * on_authenticate hooks run, the session USER had before gets `bye` 409, the on_login hooks
     * run. Returns 0, or the refusing code (the session stays as it was). */
    int (*login)(mp_session session, const char *user, size_t len);
    /* Registration (inside mp_plugin_init): FN runs before every login and may refuse it. */
    int (*on_authenticate)(const mp_api *api, mp_authenticate_fn fn);

    /* ---- writing MessagePack: into reply_begin's, frame_begin's or writer_new's writer ---- */

    void (*write_map)(mp_writer *w, uint32_t pairs);            /* then PAIRS keys and values */
    void (*write_array)(mp_writer *w, uint32_t count);          /* then COUNT values */
    void (*write_str)(mp_writer *w, const char *s, size_t len); /* LEN bytes, no NUL needed */
    void (*write_bin)(mp_writer *w, const void *p, size_t len);
    void (*write_int)(mp_writer *w, int64_t v);   /* in its smallest encoding */
    void (*write_uint)(mp_writer *w, uint64_t v); /* in its smallest encoding */
    void (*write_float)(mp_writer *w, double v);  /* float 64 */
    void (*write_bool)(mp_writer *w, int v);      /* true when V is not 0 */
    void (*write_nil)(mp_writer *w);
    /* A writer of the plugin's own for bytes that are not a frame (a value to store in Redis):
     * no length prefix. Create it once and reuse it with writer_reset; writer_data returns
     * what was written, valid until the next write, reset or free. NULL when out of memory. */
    mp_writer *(*writer_new)(void);
    void (*writer_reset)(mp_writer *w);
    const void *(*writer_data)(const mp_writer *w, size_t *len);
    void (*writer_free)(mp_writer *w);

    /* ---- timers: run on the loop thread, never from inside timer_start ---- */

    /* Calls FN(state, ARG) after AFTER_MS, then every EVERY_MS (0: once). Returns the timer's
     * id, or 0 (logged) on error. A one-shot timer is gone once FN returns; a plugin's timers
     * are cancelled at unload, before mp_plugin_fini. Allowed in mp_plugin_init too. */
    mp_timer (*timer_start)(const mp_api *api, uint64_t after_ms, uint64_t every_ms, mp_timer_fn fn,
                            void *arg);
    /* Stops timer ID (also from inside its own FN); nothing when it is gone. ARG is the
     * plugin's to free. */
    void (*timer_cancel)(const mp_api *api, mp_timer id);

    /* ---- options ---- */

    /* Declares an option of this plugin; only inside mp_plugin_init. A script or plugin that
     * declares the same name must give the same type. 0, or -1 (logged: a bad spec or default,
     * a type clash). */
    int (*option_declare)(const mp_api *api, const mp_option_spec *spec);
    /* The value of a declared option (a plugin's or a script's) as text: an integer in
     * decimal, a number as written, "1"/"0" for a bool; NULL when nobody declared NAME. Valid
     * until the next reload, which may give options new values: read it when it is used. */
    const char *(*option)(const mp_api *api, const char *name);

    /* ---- the cluster (added within API 2: check with MP_API_HAS(api, deliver_mail)) ---- */

    /* deliver for a mailbox message, with PREV: the highest mid in the recipient's mailbox
     * before MID (what the store function returns). Messages stored by many nodes then reach
     * the session in mid order (docs/cluster.md). Returns 1 when USER has a session on this
     * node (DONE is not called); 0 when the frame went to the cluster: DONE(online, ARG) is
     * called later, exactly once, never from inside this call, with whether a node held USER
     * (DONE may be NULL); -1 when Redis is not connected, or there was no memory to wait for
     * the answer (DONE is not called; the frame may have gone out). */
    int (*deliver_mail)(const char *user, size_t user_len, const void *frame, size_t len,
                        uint64_t mid, uint64_t prev, mp_delivered_fn done, void *arg);

    /* ---- API 3: check with MP_API_HAS(api, redis_replicated) ---- */

    /* api->redis for a write a failover must not lose: FN gets the reply only once
     * redis_wait_replicas replicas confirmed it (one WAIT per connection per loop pass), else
     * reply NULL with an error (answer 503). With redis_wait_replicas 0 it is api->redis. */
    int (*redis_replicated)(int argc, const char **argv, const size_t *argv_len, mp_redis_fn fn,
                            void *arg);
};

/* The description every plugin exports as `mp_plugin` (use MP_PLUGIN_DEFINE). */
typedef struct mp_plugin_info {
    uint32_t api_version; /* the API version the plugin needs: MP_PLUGIN_API_TARGET */
    const char *name;     /* short, shown by admin.plugins; two plugins never share one */
    const char *version;  /* the plugin's own version, free-form */
} mp_plugin_info;

#define MP_PLUGIN_DEFINE(name, version)                                                            \
    MP_EXPORT const mp_plugin_info mp_plugin = {MP_PLUGIN_API_TARGET, name, version}

typedef int (*mp_plugin_init_fn)(const mp_api *api, void **state);
typedef void (*mp_plugin_fini_fn)(void *state);

MP_EXPORT int mp_plugin_init(const mp_api *api, void **state);
MP_EXPORT void mp_plugin_fini(void *state);

/* In mp_plugin_init: refuse a broker whose range of versions does not hold this plugin's
 * (the loader has checked it already; this is the same check from the plugin's side). */
#define MP_PLUGIN_CHECK_VERSION(api)                                                               \
    do {                                                                                           \
        if ((api)->version < MP_PLUGIN_API_TARGET || (api)->min_version > MP_PLUGIN_API_TARGET)    \
            return -1;                                                                             \
    } while (0)

/* True when the broker's mp_api has member FIELD: for a plugin whose MP_PLUGIN_API_TARGET is
 * older than a member it would like to use. */
#define MP_API_HAS(api, field)                                                                     \
    ((api)->size >= offsetof(mp_api, field) + sizeof(((mp_api *)0)->field))

/* A broker setting as an integer, FALLBACK when absent or not a number. */
static inline long long mp_conf_int(const mp_api *api, const char *name, long long fallback)
{
    const char *s = api->conf_get(name);
    if (s == NULL || *s == '\0') return fallback;
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end == '\0' ? v : fallback;
}

/* A declared option as an integer, a number or a bool (0 when it is not declared). */
static inline long long mp_option_int(const mp_api *api, const char *name)
{
    const char *s = api->option(api, name);
    return s != NULL ? strtoll(s, NULL, 10) : 0;
}

static inline double mp_option_number(const mp_api *api, const char *name)
{
    const char *s = api->option(api, name);
    return s != NULL ? strtod(s, NULL) : 0;
}

static inline int mp_option_bool(const mp_api *api, const char *name)
{
    const char *s = api->option(api, name);
    return s != NULL && s[0] == '1';
}

#ifdef __cplusplus
}
#endif

#endif
