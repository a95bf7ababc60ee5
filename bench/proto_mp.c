/* proto_mp: the moonpost side of the benchmark: frames (frame.h) of MessagePack maps, written
 * with msgpack-c and read with the broker's bounds-checked reader (msgread.h). */
#include <string.h>

#include <msgpack.h>

#include "bench.h"
#include "client.h"
#include "frame.h"
#include "msgread.h"
#include "proto.h"

#define MP_MAX_FRAME (16u << 20)
#define MP_MAX_DEPTH 32
#define USER_MAX 64

enum mp_step { STEP_REGISTER = 1, STEP_LOGIN, STEP_RESUME, STEP_ROOM_CREATE, STEP_ROOM_JOIN };

/* The fields of a broker frame the benchmark looks at. */
struct mp_frame {
    const uint8_t *type;
    uint32_t type_len;
    int has_id;
    uint64_t id;
    int64_t code;
    uint64_t mid;
    const uint8_t *body;
    uint32_t body_len;
    int offline;
    const uint8_t *token;
    uint32_t token_len;
};

/* ---- writing ---- */

static int write_out(void *data, const char *bytes, size_t len)
{
    return buf_append(data, bytes, len);
}

/* Starts a frame in the client's output: room for the length, then a packer appending there. */
static size_t frame_begin(struct client *c, msgpack_packer *pk)
{
    size_t start = c->out.len;
    static const uint8_t zero[FRAME_HEADER_LEN];
    buf_append(&c->out, zero, sizeof zero);
    msgpack_packer_init(pk, &c->out, write_out);
    return start;
}

static void frame_end(struct client *c, size_t start)
{
    if (c->out.len < start + FRAME_HEADER_LEN) return; /* out of memory while packing */
    frame_write_length(c->out.data + start, (uint32_t)(c->out.len - start - FRAME_HEADER_LEN));
    client_mark_dirty(c);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str_with_body(pk, s, n);
}

static void pack_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
    pack_str(pk, key);
    pack_str(pk, value);
}

static void user_name(char *out, size_t len, uint32_t index)
{
    snprintf(out, len, "%s%u", run.opt.user_prefix, index);
}

/* register / login: {type, id, user, password}; resume: {type, id, user, token}. */
static void send_credentials(struct client *c, const char *type, int64_t now)
{
    char user[USER_MAX];
    user_name(user, sizeof user, c->index);
    msgpack_packer pk;
    size_t start = frame_begin(c, &pk);
    msgpack_pack_map(&pk, 4);
    pack_kv_str(&pk, "type", type);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, client_next_id(c, now));
    pack_kv_str(&pk, "user", user);
    if (strcmp(type, "resume") == 0) {
        const char *token = run.tokens ? run.tokens[c->index] : NULL;
        pack_kv_str(&pk, "token", token ? token : "");
    } else {
        pack_kv_str(&pk, "password", run.opt.password);
    }
    frame_end(c, start);
}

/* The room of the room workload client C is in: one for a fan-out, else one per --room-size. */
static void room_name(char *out, size_t len, const struct client *c)
{
    if (run.opt.room_size == 0)
        snprintf(out, len, "benchfanout");
    else
        snprintf(out, len, "bench%d_%u", run.opt.room_size, room_of(c->index));
}

/* room.create or room.join {type, id, room}. */
static void send_room_request(struct client *c, const char *type, int64_t now)
{
    char room[USER_MAX];
    room_name(room, sizeof room, c);
    msgpack_packer pk;
    size_t start = frame_begin(c, &pk);
    msgpack_pack_map(&pk, 3);
    pack_kv_str(&pk, "type", type);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, client_next_id(c, now));
    pack_kv_str(&pk, "room", room);
    frame_end(c, start);
}

static void mp_start(struct client *c, int64_t now)
{
    switch ((enum setup_mode)c->mode) {
    case SETUP_LOGIN:
    case SETUP_REGISTER:
        if (c->mode == SETUP_REGISTER || !run.opt.no_register) {
            c->step = STEP_REGISTER;
            send_credentials(c, "register", now);
            return;
        }
        /* fall through */
    case SETUP_LOGIN_ONLY:
        c->step = STEP_LOGIN;
        send_credentials(c, "login", now);
        return;
    case SETUP_RESUME:
        c->step = STEP_RESUME;
        send_credentials(c, "resume", now);
        return;
    }
}

/* {type: TYPE, id, KEY: NAME, body}: a send to a user or to a room. */
static void send_addressed(struct client *c, const char *type, const char *key, const char *name,
                           const uint8_t *body, size_t len, int64_t now)
{
    msgpack_packer pk;
    size_t start = frame_begin(c, &pk);
    msgpack_pack_map(&pk, 4);
    pack_kv_str(&pk, "type", type);
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, client_next_id(c, now));
    pack_kv_str(&pk, key, name);
    pack_str(&pk, "body");
    msgpack_pack_str_with_body(&pk, body, len);
    frame_end(c, start);
}

static void mp_send_private(struct client *c, uint32_t to, const uint8_t *body, size_t len,
                            int64_t now)
{
    char user[USER_MAX];
    user_name(user, sizeof user, to);
    send_addressed(c, "send", "to", user, body, len, now);
}

static void mp_send_room(struct client *c, const uint8_t *body, size_t len, int64_t now)
{
    char room[USER_MAX];
    room_name(room, sizeof room, c);
    send_addressed(c, "room.send", "room", room, body, len, now);
}

static void mp_send_broadcast(struct client *c, const uint8_t *body, size_t len, int64_t now)
{
    msgpack_packer pk;
    size_t start = frame_begin(c, &pk);
    msgpack_pack_map(&pk, 3);
    pack_kv_str(&pk, "type", "broadcast");
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, client_next_id(c, now));
    pack_str(&pk, "body");
    msgpack_pack_str_with_body(&pk, body, len);
    frame_end(c, start);
}

/* ack without id: silent on success, as a client that does not wait for it. */
static void mp_ack(struct client *c, uint64_t mid)
{
    msgpack_packer pk;
    size_t start = frame_begin(c, &pk);
    msgpack_pack_map(&pk, 2);
    pack_kv_str(&pk, "type", "ack");
    pack_str(&pk, "upto");
    msgpack_pack_uint64(&pk, mid);
    frame_end(c, start);
}

/* ---- reading ---- */

static int key_is(const struct msgread_item *k, const char *name)
{
    size_t n = strlen(name);
    return k->v.str.len == n && memcmp(k->v.str.ptr, name, n) == 0;
}

static int as_uint(const struct msgread_item *v, uint64_t *out)
{
    if (v->type != MSGREAD_UINT) return 0;
    *out = v->v.u;
    return 1;
}

static void take_field(struct mp_frame *f, const struct msgread_item *k, const struct msgread_item *v)
{
    uint64_t u;
    if (key_is(k, "type") && v->type == MSGREAD_STR) {
        f->type = v->v.str.ptr;
        f->type_len = v->v.str.len;
    } else if (key_is(k, "id") && as_uint(v, &f->id)) {
        f->has_id = 1;
    } else if (key_is(k, "code")) {
        if (as_uint(v, &u))
            f->code = (int64_t)u;
        else if (v->type == MSGREAD_INT)
            f->code = v->v.i;
    } else if (key_is(k, "mid")) {
        as_uint(v, &f->mid);
    } else if (key_is(k, "body") && (v->type == MSGREAD_STR || v->type == MSGREAD_BIN)) {
        f->body = v->v.str.ptr;
        f->body_len = v->v.str.len;
    } else if (key_is(k, "offline") && v->type == MSGREAD_BOOL) {
        f->offline = v->v.boolean;
    } else if (key_is(k, "token") && v->type == MSGREAD_STR) {
        f->token = v->v.str.ptr;
        f->token_len = v->v.str.len;
    }
}

/* One pass over the top-level map; containers (the `users` list) are skipped whole. */
static int read_frame(const uint8_t *body, size_t len, struct mp_frame *f)
{
    memset(f, 0, sizeof *f);
    f->code = -1;
    struct mpr r;
    struct msgread_item it;
    msgread_init(&r, body, len);
    if (msgread_next(&r, &it) != MSGREAD_OK || it.type != MSGREAD_MAP) return -1;
    for (uint32_t i = 0; i < it.v.count; i++) {
        struct msgread_item k, v;
        if (msgread_next(&r, &k) != MSGREAD_OK || k.type != MSGREAD_STR) return -1;
        const uint8_t *value_start = r.pos;
        if (msgread_next(&r, &v) != MSGREAD_OK) return -1;
        if (v.type == MSGREAD_ARRAY || v.type == MSGREAD_MAP) {
            r.pos = value_start;
            if (msgread_skip(&r, MP_MAX_DEPTH) != MSGREAD_OK) return -1;
            continue;
        }
        take_field(f, &k, &v);
    }
    return f->type ? 0 : -1;
}

static int type_is(const struct mp_frame *f, const char *name)
{
    size_t n = strlen(name);
    return f->type_len == n && memcmp(f->type, name, n) == 0;
}

/* A reply while the client is still logging in moves it one step on. */
static void on_setup_reply(struct client *c, const struct mp_frame *f, int64_t now)
{
    int code = (int)f->code;
    if (c->step == STEP_REGISTER) {
        if (code != 200 && code != 409) return client_setup_failed(c, code);
        if (c->mode == SETUP_REGISTER) return client_setup_done(c, now);
        c->step = STEP_LOGIN;
        send_credentials(c, "login", now);
        return;
    }
    if (c->step == STEP_ROOM_CREATE) { /* 409: another member created it; then join */
        if (code != 200 && code != 409 && code != 507) return client_setup_failed(c, code);
        c->step = STEP_ROOM_JOIN;
        send_room_request(c, "room.join", now);
        return;
    }
    if (code != 200) return client_setup_failed(c, code);
    if (f->token) client_token(c, f->token, f->token_len);
    if (run.opt.workload == WL_ROOM && c->step != STEP_ROOM_JOIN) {
        c->step = STEP_ROOM_CREATE; /* the room workload's clients are members of their room */
        send_room_request(c, "room.create", now);
        return;
    }
    client_setup_done(c, now);
}

static void on_frame(struct client *c, const struct mp_frame *f, int64_t now)
{
    if (type_is(f, "res")) {
        if (c->state == CL_SETUP && f->has_id) return on_setup_reply(c, f, now);
        return client_reply(c, f->has_id ? f->id : 0, (int)f->code, now);
    }
    if (type_is(f, "msg"))
        return client_delivery(c, DELIVERY_PRIVATE, f->body, f->body_len, f->mid, f->offline, now);
    if (type_is(f, "broadcast") || type_is(f, "room.msg"))
        return client_delivery(c, DELIVERY_BROADCAST, f->body, f->body_len, 0, 0, now);
    if (type_is(f, "bye")) return client_bye(c, (int)f->code);
    /* presence and future push types are not counted */
}

static long mp_parse(struct client *c, const uint8_t *data, size_t len, int64_t now)
{
    size_t pos = 0;
    while (c->state != CL_DONE && c->state != CL_IDLE) {
        uint32_t body_len;
        switch (frame_split(data + pos, len - pos, MP_MAX_FRAME, &body_len)) {
        case FRAME_NEED_MORE:
            return (long)pos;
        case FRAME_EMPTY:
        case FRAME_OVERSIZE:
            return -1;
        case FRAME_READY:
            break;
        }
        struct mp_frame f;
        if (read_frame(data + pos + FRAME_HEADER_LEN, body_len, &f) != 0) return -1;
        pos += FRAME_HEADER_LEN + body_len;
        on_frame(c, &f, now);
    }
    return (long)pos;
}

const struct proto proto_moonpost = {
    .name = "moonpost",
    .default_port = 8889,
    .start = mp_start,
    .parse = mp_parse,
    .send_private = mp_send_private,
    .send_broadcast = mp_send_broadcast,
    .send_room = mp_send_room,
    .ack = mp_ack,
};
