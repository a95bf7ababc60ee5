/* request: encoding requests straight into the output buffer, ids, and the two ways to finish
 * one (wait for its reply, or register a callback for it). */
#include <string.h>

#include "frame.h"
#include "mp_internal.h"

static int write_out(void *data, const char *buf, size_t len)
{
    mp_client *c = data;
    if (mp_buf_append(&c->out, buf, len) != 0) {
        c->out_failed = 1;
        return -1;
    }
    return 0;
}

void mp_pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

void mp_pack_body(msgpack_packer *pk, const void *body, size_t len, enum mp_body_kind kind)
{
    if (kind == MP_BODY_BIN)
        msgpack_pack_bin_with_body(pk, body, len);
    else
        msgpack_pack_str_with_body(pk, body, len);
}

uint64_t mp_new_id(mp_client *c)
{
    return ++c->next_id;
}

/* Reserves the length header; the map follows through PK. ID 0 means no id. */
msgpack_packer *mp_frame_begin(mp_client *c, msgpack_packer *pk, const char *type, size_t fields,
                               uint64_t id)
{
    static const uint8_t no_length[FRAME_HEADER_LEN];
    c->frame_start = c->out.len;
    c->out_failed = mp_buf_append(&c->out, no_length, sizeof no_length) != 0;
    msgpack_packer_init(pk, c, write_out);
    if (type == NULL) return pk; /* a raw map writes its own header */
    msgpack_pack_map(pk, fields + 1 + (id ? 1 : 0));
    mp_pack_cstr(pk, "type");
    mp_pack_cstr(pk, type);
    if (id) {
        mp_pack_cstr(pk, "id");
        msgpack_pack_uint64(pk, id);
    }
    return pk;
}

static void frame_drop(mp_client *c)
{
    c->out.len = c->frame_start;
    c->out_failed = 0;
}

mp_err mp_frame_end(mp_client *c)
{
    if (c->out_failed) {
        frame_drop(c);
        return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory while encoding a request");
    }
    size_t body = c->out.len - c->frame_start - FRAME_HEADER_LEN;
    if (body > UINT32_MAX) {
        frame_drop(c);
        return mp_fail(c, MP_ERR_INVAL, 0, "request too large");
    }
    frame_write_length(c->out.data + c->frame_start, (uint32_t)body);
    return MP_OK;
}

mp_err mp_start(mp_client *c, msgpack_packer *pk, const char *type, size_t fields, int want_id,
                uint64_t *id)
{
    mp_clear_error(c);
    mp_err err = mp_check_usable(c);
    if (err != MP_OK) return err;
    *id = want_id ? mp_new_id(c) : 0;
    mp_frame_begin(c, pk, type, fields, *id);
    return MP_OK;
}

mp_err mp_finish_blocking(mp_client *c, uint64_t id, mp_reply **out)
{
    mp_err err = mp_frame_end(c);
    if (err != MP_OK) return err;
    return mp_wait_reply(c, id, out);
}

mp_err mp_finish_async(mp_client *c, uint64_t id, mp_reply_fn fn, void *ud)
{
    if (mp_buf_used(&c->out) > MP_MAX_OUT_QUEUED) {
        frame_drop(c);
        return mp_fail(c, MP_ERR_BUSY, 0, "more than %u bytes wait to be written",
                       MP_MAX_OUT_QUEUED);
    }
    if (fn != NULL) {
        struct mp_pending *p = mp_pending_add(c, id, mp_now_ms() + c->timeout_ms);
        if (p == NULL) {
            frame_drop(c);
            return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
        }
        p->fn = fn;
        p->ud = ud;
    }
    mp_err err = mp_frame_end(c);
    if (err != MP_OK && fn != NULL) mp_pending_remove(c, mp_pending_find(c, id));
    return err;
}
