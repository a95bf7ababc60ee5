/* dispatch: frames from the broker: replies to their requests, pushes to their callbacks,
 * with msg de-duplication and the batched automatic ack. */
#include <string.h>

#include "frame.h"
#include "mp_internal.h"

static int type_is(const struct frame_info *info, const char *name)
{
    size_t n = strlen(name);
    return info->type_len == n && memcmp(info->type, name, n) == 0;
}

static uint64_t uint_or(const struct mp_field *f, uint64_t dflt)
{
    return f->found && f->item.type == MSGREAD_UINT ? f->item.v.u : dflt;
}

static int64_t int_or(const struct mp_field *f, int64_t dflt)
{
    if (!f->found) return dflt;
    if (f->item.type == MSGREAD_UINT) return (int64_t)f->item.v.u;
    if (f->item.type == MSGREAD_INT) return f->item.v.i;
    return dflt;
}

static int bool_or(const struct mp_field *f, int dflt)
{
    return f->found && f->item.type == MSGREAD_BOOL ? f->item.v.boolean : dflt;
}

static int is_bytes(const struct mp_field *f)
{
    return f->found && (f->item.type == MSGREAD_STR || f->item.type == MSGREAD_BIN);
}

static mp_err on_res(mp_client *c, uint8_t *body, size_t len, const struct frame_info *info)
{
    struct mp_field f[] = {{.key = "code"}, {.key = "error"}};
    mp_fields_read(body, len, f, 2);
    int code = (int)uint_or(&f[0], 0);
    if (code == 0) return mp_fail(c, MP_ERR_PROTOCOL, 0, "the broker sent a res without code");
    if (!info->has_id) {
        if (code == 200 || c->cb.on_error == NULL) return MP_OK;
        const char *error = mp_field_cstr(&f[1]);
        c->depth++;
        c->cb.on_error(c, code, error ? error : mp_code_text(code), c->ud);
        c->depth--;
        return MP_OK;
    }
    struct mp_pending *p = mp_pending_find(c, info->id);
    if (p == NULL || p->done) return MP_OK; /* timed out already */
    struct mp_reply *r = mp_reply_copy(body, len, code);
    if (r == NULL) {
        mp_fail(c, MP_ERR_NOMEM, 0, "out of memory for a reply");
        mp_pending_complete(c, p, MP_ERR_NOMEM, NULL);
        return MP_OK;
    }
    mp_err err = code == 200 ? MP_OK : MP_ERR_SERVER;
    if (p->blocking) {
        mp_pending_complete(c, p, err, r); /* the waiter takes r */
        return MP_OK;
    }
    if (err != MP_OK) mp_error_from_body(c, body, len, code);
    mp_pending_complete(c, p, err, r);
    mp_reply_free(r);
    return MP_OK;
}

/* The values of a msg's `file` map {fid, name, size} (F: the field, positioned after the map
 * header). 0 when it is not such a map. The values are pointed at, not terminated yet. */
static int read_file_ref(const struct mp_field *f, struct mp_field ref[3])
{
    if (!f->found || f->item.type != MSGREAD_MAP) return 0;
    struct mpr r = f->after;
    for (uint32_t i = 0; i < f->item.v.count; i++) {
        struct msgread_item key;
        if (msgread_next(&r, &key) != MSGREAD_OK || key.type != MSGREAD_STR) return 0;
        for (int k = 0; k < 3; k++) {
            if (key.v.str.len != strlen(ref[k].key) ||
                memcmp(key.v.str.ptr, ref[k].key, key.v.str.len) != 0)
                continue;
            struct mpr at = r;
            if (msgread_next(&at, &ref[k].item) != MSGREAD_OK) return 0;
            ref[k].found = 1;
        }
        if (msgread_skip(&r, FRAME_MAX_DEPTH) != MSGREAD_OK) return 0;
    }
    return is_bytes(&ref[0]) && is_bytes(&ref[1]) && ref[2].found &&
           ref[2].item.type == MSGREAD_UINT;
}

/* Reads a msg or broadcast; 0 when a field it cannot do without is missing. */
static int read_message(uint8_t *body, size_t len, mp_message *m)
{
    struct mp_field f[] = {{.key = "mid"}, {.key = "from"},    {.key = "to"},  {.key = "body"},
                           {.key = "ts"},  {.key = "offline"}, {.key = "file"}};
    mp_fields_read(body, len, f, 7);
    if (!f[0].found || f[0].item.type != MSGREAD_UINT || !is_bytes(&f[1]) || !is_bytes(&f[3])) return 0;
    memset(m, 0, sizeof *m);
    m->mid = f[0].item.v.u;
    m->body_len = f[3].item.v.str.len;
    m->body_is_bin = f[3].item.type == MSGREAD_BIN;
    m->ts = int_or(&f[4], 0);
    m->offline = bool_or(&f[5], 0);
    struct mp_field ref[3] = {{.key = "fid"}, {.key = "name"}, {.key = "size"}};
    int has_file = read_file_ref(&f[6], ref);
    /* every field is read: now the values may be NUL-terminated in place */
    m->from = mp_field_cstr(&f[1]);
    m->to = is_bytes(&f[2]) ? mp_field_cstr(&f[2]) : "";
    m->body = mp_field_cstr(&f[3]);
    if (has_file) {
        m->file_fid = mp_field_cstr(&ref[0]);
        m->file_name = mp_field_cstr(&ref[1]);
        m->file_size = ref[2].item.v.u;
    }
    return 1;
}

/* The callback of MID returned. A nested msg callback (through a blocking call inside an outer
 * one) finishes before the outer, lower mid: hold it until the outer returns, so that an ack
 * never covers a message whose callback still runs. */
static void msg_done(mp_client *c, uint64_t mid)
{
    if (mid > c->held_mid) c->held_mid = mid;
    if (c->msg_depth > 0) return;
    if (c->held_mid > c->done_mid) c->done_mid = c->held_mid;
    c->held_mid = 0;
}

static mp_err on_msg(mp_client *c, uint8_t *body, size_t len)
{
    mp_message m;
    if (c->cb.on_msg == NULL || !read_message(body, len, &m)) return MP_OK;
    if (m.mid <= c->last_mid) return MP_OK; /* a repeat: the ack of done_mid covers it */
    c->last_mid = m.mid;
    c->msg_depth++;
    c->depth++;
    c->cb.on_msg(c, &m, c->ud);
    c->depth--;
    c->msg_depth--;
    msg_done(c, m.mid);
    return MP_OK;
}

static mp_err on_broadcast(mp_client *c, uint8_t *body, size_t len)
{
    mp_message m;
    if (c->cb.on_broadcast == NULL || !read_message(body, len, &m)) return MP_OK;
    m.to = "";
    m.offline = 0;
    c->depth++;
    c->cb.on_broadcast(c, &m, c->ud);
    c->depth--;
    return MP_OK;
}

static mp_err on_presence(mp_client *c, uint8_t *body, size_t len)
{
    struct mp_field f[] = {{.key = "user"}, {.key = "online"}};
    mp_fields_read(body, len, f, 2);
    if (c->cb.on_presence == NULL || !is_bytes(&f[0])) return MP_OK;
    int online = bool_or(&f[1], 0);
    const char *user = mp_field_cstr(&f[0]);
    c->depth++;
    c->cb.on_presence(c, user, online, c->ud);
    c->depth--;
    return MP_OK;
}

static mp_err on_bye(mp_client *c, uint8_t *body, size_t len)
{
    struct mp_field f[] = {{.key = "code"}, {.key = "error"}};
    mp_fields_read(body, len, f, 2);
    int code = (int)uint_or(&f[0], 0);
    const char *error = mp_field_cstr(&f[1]);
    if (error == NULL) error = mp_code_text(code);
    if (c->cb.on_bye) {
        c->depth++;
        c->cb.on_bye(c, code, error, c->ud);
        c->depth--;
    }
    mp_fail(c, MP_ERR_CLOSED, code, "closed by the broker: %d %s", code, error);
    mp_conn_close(c, MP_ERR_CLOSED);
    return MP_OK;
}

mp_err mp_dispatch_frame(mp_client *c, uint8_t *body, size_t len)
{
    struct frame_info info;
    enum frame_error ferr = frame_check(body, len, &info);
    if (ferr != FRAME_OK)
        return mp_fail(c, MP_ERR_PROTOCOL, 0, "the broker sent a malformed frame: %s",
                       frame_error_text(ferr));
    if (type_is(&info, "res")) return on_res(c, body, len, &info);
    if (type_is(&info, "msg")) return on_msg(c, body, len);
    if (type_is(&info, "broadcast")) return on_broadcast(c, body, len);
    if (type_is(&info, "presence")) return on_presence(c, body, len);
    if (type_is(&info, "room.msg")) return mp_on_room_msg(c, body, len);
    if (type_is(&info, "bye")) return on_bye(c, body, len);
    return MP_OK; /* a push type from a newer broker */
}

void mp_queue_ack(mp_client *c)
{
    if (!c->auto_ack || !c->logged_in || c->fd < 0 || c->done_mid <= c->acked_mid) return;
    msgpack_packer pk;
    mp_frame_begin(c, &pk, "ack", 1, 0);
    mp_pack_cstr(&pk, "upto");
    msgpack_pack_uint64(&pk, c->done_mid);
    if (mp_frame_end(c) == MP_OK) c->acked_mid = c->done_mid;
}
