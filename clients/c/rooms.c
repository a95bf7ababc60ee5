/* rooms: the room requests (docs/protocol.md, "Rooms"), the room.msg push, and the decoding of
 * the history and the room list into one allocation each. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "mp_internal.h"

#define ROOM_MAX 64
#define TITLE_MAX 128

static int room_ok(const char *room)
{
    return room != NULL && room[0] != '\0' && strlen(room) <= ROOM_MAX;
}

static int name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= MP_NAME_MAX;
}

static mp_err invalid(mp_client *c, const char *what)
{
    if (c == NULL) return MP_ERR_INVAL;
    return mp_fail(c, MP_ERR_INVAL, 0, "%s", what);
}

/* Starts a room request of TYPE with `room` and EXTRA more fields (the caller packs them). */
static mp_err start_room(mp_client *c, msgpack_packer *pk, const char *type, const char *room,
                         size_t extra, int want_id, uint64_t *id)
{
    if (c == NULL || !room_ok(room)) return invalid(c, "a room name of 1 to 64 bytes is needed");
    mp_err err = mp_start(c, pk, type, 1 + extra, want_id, id);
    if (err != MP_OK) return err;
    mp_pack_cstr(pk, "room");
    mp_pack_cstr(pk, room);
    return MP_OK;
}

/* Waits for the reply of ID; *OUT (when not NULL) gets its integer KEY. */
static mp_err finish_uint(mp_client *c, uint64_t id, const char *key, uint64_t *out)
{
    mp_reply *r = NULL;
    mp_err err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK && out && !mp_reply_uint(r, key, out)) *out = 0;
    mp_reply_free(r);
    return err;
}

mp_err mp_room_create(mp_client *c, const char *room, const char *title, int is_private)
{
    if (title != NULL && strlen(title) > TITLE_MAX)
        return invalid(c, "a room title has at most 128 bytes");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room(c, &pk, "room.create", room, title ? 2 : 1, 1, &id);
    if (err != MP_OK) return err;
    if (title) {
        mp_pack_cstr(&pk, "title");
        mp_pack_cstr(&pk, title);
    }
    mp_pack_cstr(&pk, "private");
    if (is_private)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    return mp_finish_blocking(c, id, NULL);
}

mp_err mp_room_join(mp_client *c, const char *room, uint64_t *seq)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room(c, &pk, "room.join", room, 0, 1, &id);
    if (err != MP_OK) return err;
    return finish_uint(c, id, "seq", seq);
}

mp_err mp_room_invite(mp_client *c, const char *room, const char *user)
{
    if (!name_ok(user)) return invalid(c, "room.invite needs a user");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room(c, &pk, "room.invite", room, 1, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "user");
    mp_pack_cstr(&pk, user);
    return mp_finish_blocking(c, id, NULL);
}

mp_err mp_room_leave(mp_client *c, const char *room)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room(c, &pk, "room.leave", room, 0, 1, &id);
    if (err != MP_OK) return err;
    return mp_finish_blocking(c, id, NULL);
}

static mp_err start_room_send(mp_client *c, msgpack_packer *pk, const char *room, const void *body,
                              size_t len, enum mp_body_kind kind, int want_id, uint64_t *id)
{
    if (body == NULL && len > 0) return invalid(c, "room.send needs a body");
    mp_err err = start_room(c, pk, "room.send", room, 1, want_id, id);
    if (err != MP_OK) return err;
    mp_pack_cstr(pk, "body");
    mp_pack_body(pk, body, len, kind);
    return MP_OK;
}

mp_err mp_room_send(mp_client *c, const char *room, const void *body, size_t len,
                    enum mp_body_kind kind, uint64_t *seq)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room_send(c, &pk, room, body, len, kind, 1, &id);
    if (err != MP_OK) return err;
    return finish_uint(c, id, "seq", seq);
}

mp_err mp_room_send_async(mp_client *c, const char *room, const void *body, size_t len,
                          enum mp_body_kind kind, mp_reply_fn fn, void *ud)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room_send(c, &pk, room, body, len, kind, fn != NULL, &id);
    if (err != MP_OK) return err;
    return mp_finish_async(c, id, fn, ud);
}

mp_err mp_room_read(mp_client *c, const char *room, uint64_t seq)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room(c, &pk, "room.read", room, 1, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    return mp_finish_blocking(c, id, NULL);
}

mp_err mp_room_members(mp_client *c, const char *room, mp_userlist **members, mp_userlist **online)
{
    if (members) *members = NULL;
    if (online) *online = NULL;
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_room(c, &pk, "room.members", room, 0, 1, &id);
    if (err != MP_OK) return err;
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK && members) err = mp_namelist_from_reply(c, r, "members", "count", members);
    if (err == MP_OK && online) err = mp_namelist_from_reply(c, r, "online", NULL, online);
    if (err != MP_OK && members) {
        mp_userlist_free(*members);
        *members = NULL;
    }
    mp_reply_free(r);
    return err;
}

/* ---- reading maps out of arrays ---- */

static int is_bytes(const struct mp_field *f)
{
    return f->found && (f->item.type == MSGREAD_STR || f->item.type == MSGREAD_BIN);
}

static uint64_t uint_or_0(const struct mp_field *f)
{
    return f->found && f->item.type == MSGREAD_UINT ? f->item.v.u : 0;
}

/* Reads the fields F of the map at WALK, and moves WALK past it; 0 when it is not a map. */
static int next_map(struct mpr *walk, struct mp_field *f, size_t n)
{
    const uint8_t *start = walk->pos;
    struct mpr peek = *walk;
    struct msgread_item head;
    if (msgread_next(&peek, &head) != MSGREAD_OK || head.type != MSGREAD_MAP) return 0;
    if (msgread_skip(walk, FRAME_MAX_DEPTH) != MSGREAD_OK) return 0;
    mp_fields_read(start, (size_t)(walk->pos - start), f, n);
    return 1;
}

/* Copies LEN bytes and a NUL to *TEXT (moved past them); returns where they went. */
static const char *put_text(char **text, const void *src, size_t len)
{
    char *at = *text;
    if (len > 0) memcpy(at, src, len);
    at[len] = '\0';
    *text += len + 1;
    return at;
}

/* The array under KEY of reply R, WALK at its first element; its length or -1. */
static long array_of(mp_client *c, const mp_reply *r, const char *key, struct mpr *walk)
{
    struct mp_field f[] = {{.key = key}};
    mp_fields_read(r->data, r->len, f, 1);
    if (!f[0].found || f[0].item.type != MSGREAD_ARRAY) {
        mp_fail(c, MP_ERR_PROTOCOL, 0, "reply without a %s array", key);
        return -1;
    }
    *walk = f[0].after;
    return (long)f[0].item.v.count;
}

/* ---- history ---- */

enum { H_SEQ, H_FROM, H_BODY, H_TS, H_FIELDS };

static void history_fields(struct mp_field f[H_FIELDS])
{
    f[H_SEQ] = (struct mp_field){.key = "seq"};
    f[H_FROM] = (struct mp_field){.key = "from"};
    f[H_BODY] = (struct mp_field){.key = "body"};
    f[H_TS] = (struct mp_field){.key = "ts"};
}

static int64_t ts_of(const struct mp_field *f)
{
    if (f->found && f->item.type == MSGREAD_UINT) return (int64_t)f->item.v.u;
    if (f->found && f->item.type == MSGREAD_INT) return f->item.v.i;
    return 0;
}

static mp_err history_from_reply(mp_client *c, const mp_reply *r, const char *room,
                                 mp_room_history **out)
{
    struct mpr start;
    long n = array_of(c, r, "messages", &start);
    if (n < 0) return MP_ERR_PROTOCOL;
    size_t room_len = strlen(room), bytes = sizeof(mp_room_history) + room_len + 1;
    struct mp_field f[H_FIELDS];
    struct mpr walk = start;
    for (long i = 0; i < n; i++) {
        history_fields(f);
        if (!next_map(&walk, f, H_FIELDS) || !is_bytes(&f[H_FROM]) || !is_bytes(&f[H_BODY]))
            return mp_fail(c, MP_ERR_PROTOCOL, 0, "a history message without from or body");
        bytes += sizeof(mp_room_msg) + f[H_FROM].item.v.str.len + f[H_BODY].item.v.str.len + 2;
    }
    mp_room_history *h = malloc(bytes);
    if (h == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    h->n = (size_t)n;
    h->messages = (mp_room_msg *)(h + 1);
    char *text = (char *)(h->messages + n);
    const char *room_copy = put_text(&text, room, room_len);
    walk = start;
    for (long i = 0; i < n; i++) {
        history_fields(f);
        next_map(&walk, f, H_FIELDS); /* checked above */
        mp_room_msg *m = &h->messages[i];
        m->room = room_copy;
        m->seq = uint_or_0(&f[H_SEQ]);
        m->ts = ts_of(&f[H_TS]);
        m->from = put_text(&text, f[H_FROM].item.v.str.ptr, f[H_FROM].item.v.str.len);
        m->body_len = f[H_BODY].item.v.str.len;
        m->body_is_bin = f[H_BODY].item.type == MSGREAD_BIN;
        m->body = put_text(&text, f[H_BODY].item.v.str.ptr, m->body_len);
    }
    *out = h;
    return MP_OK;
}

mp_err mp_room_history_get(mp_client *c, const char *room, uint64_t before, unsigned limit,
                           mp_room_history **out)
{
    if (out) *out = NULL;
    if (out == NULL) return invalid(c, "room.history needs somewhere to put the messages");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err =
        start_room(c, &pk, "room.history", room, (before ? 1 : 0) + (limit ? 1 : 0), 1, &id);
    if (err != MP_OK) return err;
    if (before) {
        mp_pack_cstr(&pk, "before");
        msgpack_pack_uint64(&pk, before);
    }
    if (limit) {
        mp_pack_cstr(&pk, "limit");
        msgpack_pack_unsigned_int(&pk, limit);
    }
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK) err = history_from_reply(c, r, room, out);
    mp_reply_free(r);
    return err;
}

void mp_room_history_free(mp_room_history *h)
{
    free(h);
}

/* ---- the room list ---- */

enum { L_ROOM, L_TITLE, L_PRIVATE, L_SEQ, L_READ, L_UNREAD, L_MEMBERS, L_FIELDS };

static void list_fields(struct mp_field f[L_FIELDS])
{
    static const char *const keys[L_FIELDS] = {"room", "title",  "private", "seq",
                                               "read", "unread", "members"};
    for (int i = 0; i < L_FIELDS; i++)
        f[i] = (struct mp_field){.key = keys[i]};
}

static size_t bytes_len(const struct mp_field *f)
{
    return is_bytes(f) ? f->item.v.str.len : 0;
}

static mp_err list_from_reply(mp_client *c, const mp_reply *r, mp_room_list **out)
{
    struct mpr start;
    long n = array_of(c, r, "rooms", &start);
    if (n < 0) return MP_ERR_PROTOCOL;
    size_t bytes = sizeof(mp_room_list);
    struct mp_field f[L_FIELDS];
    struct mpr walk = start;
    for (long i = 0; i < n; i++) {
        list_fields(f);
        if (!next_map(&walk, f, L_FIELDS) || !is_bytes(&f[L_ROOM]))
            return mp_fail(c, MP_ERR_PROTOCOL, 0, "a room of the list without its name");
        bytes += sizeof(mp_room_info) + bytes_len(&f[L_ROOM]) + bytes_len(&f[L_TITLE]) + 2;
    }
    mp_room_list *list = malloc(bytes);
    if (list == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    list->n = (size_t)n;
    list->rooms = (mp_room_info *)(list + 1);
    char *text = (char *)(list->rooms + n);
    walk = start;
    for (long i = 0; i < n; i++) {
        list_fields(f);
        next_map(&walk, f, L_FIELDS); /* checked above */
        mp_room_info *e = &list->rooms[i];
        e->room = put_text(&text, f[L_ROOM].item.v.str.ptr, bytes_len(&f[L_ROOM]));
        e->title = put_text(&text, is_bytes(&f[L_TITLE]) ? f[L_TITLE].item.v.str.ptr : NULL,
                            bytes_len(&f[L_TITLE]));
        e->is_private = f[L_PRIVATE].found && f[L_PRIVATE].item.type == MSGREAD_BOOL &&
                        f[L_PRIVATE].item.v.boolean;
        e->seq = uint_or_0(&f[L_SEQ]);
        e->read = uint_or_0(&f[L_READ]);
        e->unread = uint_or_0(&f[L_UNREAD]);
        e->members = uint_or_0(&f[L_MEMBERS]);
    }
    *out = list;
    return MP_OK;
}

mp_err mp_room_list_get(mp_client *c, mp_room_list **out)
{
    if (out) *out = NULL;
    if (c == NULL || out == NULL) return invalid(c, "room.list needs somewhere to put the list");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "room.list", 0, 1, &id);
    if (err != MP_OK) return err;
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK) err = list_from_reply(c, r, out);
    mp_reply_free(r);
    return err;
}

void mp_room_list_free(mp_room_list *list)
{
    free(list);
}

/* ---- the push ---- */

mp_err mp_on_room_msg(mp_client *c, uint8_t *body, size_t len)
{
    struct mp_field f[] = {
        {.key = "room"}, {.key = "seq"}, {.key = "from"}, {.key = "body"}, {.key = "ts"}};
    mp_fields_read(body, len, f, 5);
    if (c->cb.on_room_msg == NULL || !is_bytes(&f[0]) || !is_bytes(&f[2]) || !is_bytes(&f[3]))
        return MP_OK;
    mp_room_msg m = {.seq = uint_or_0(&f[1]),
                     .ts = ts_of(&f[4]),
                     .body_len = f[3].item.v.str.len,
                     .body_is_bin = f[3].item.type == MSGREAD_BIN};
    /* every field is read: now the values may be NUL-terminated in place */
    m.room = mp_field_cstr(&f[0]);
    m.from = mp_field_cstr(&f[2]);
    m.body = mp_field_cstr(&f[3]);
    c->depth++;
    c->cb.on_room_msg(c, &m, c->ud);
    c->depth--;
    return MP_OK;
}
