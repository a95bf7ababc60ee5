/* raw: requests given as a ready MessagePack map, for tools and types this library does not
 * know. The map is checked like the broker would check it, then re-emitted with an `id`. */
#include "frame.h"
#include "mp_internal.h"

/* Copies MAP into a new frame, one field longer: `id` goes right after the map header. */
static mp_err start_raw(mp_client *c, const void *map, size_t len, int want_id, uint64_t *id)
{
    if (c == NULL) return MP_ERR_INVAL;
    mp_clear_error(c);
    if (map == NULL || len == 0) return mp_fail(c, MP_ERR_INVAL, 0, "empty request map");
    struct frame_info info;
    enum frame_error ferr = frame_check(map, len, &info);
    if (ferr == FRAME_OK && info.has_id) ferr = FRAME_BAD_ID;
    if (ferr != FRAME_OK)
        return mp_fail(c, MP_ERR_INVAL, 0, "invalid request map: %s",
                       ferr == FRAME_BAD_ID ? "it must not hold an id" : frame_error_text(ferr));
    struct mpr r;
    msgread_init(&r, map, len);
    struct msgread_item header;
    msgread_next(&r, &header); /* a map: frame_check said so */
    size_t header_len = len - msgread_left(&r);

    mp_err err = mp_check_usable(c);
    if (err != MP_OK) return err;
    *id = want_id ? mp_new_id(c) : 0;
    msgpack_packer pk;
    mp_frame_begin(c, &pk, NULL, 0, 0);
    msgpack_pack_map(&pk, header.v.count + (want_id ? 1 : 0));
    if (want_id) {
        mp_pack_cstr(&pk, "id");
        msgpack_pack_uint64(&pk, *id);
    }
    if (mp_buf_append(&c->out, (const uint8_t *)map + header_len, len - header_len) != 0)
        c->out_failed = 1;
    return MP_OK;
}

mp_err mp_call(mp_client *c, const void *map, size_t len, mp_reply **out)
{
    if (out) *out = NULL;
    uint64_t id = 0;
    mp_err err = start_raw(c, map, len, 1, &id);
    if (err != MP_OK) return err;
    return mp_finish_blocking(c, id, out);
}

mp_err mp_call_async(mp_client *c, const void *map, size_t len, mp_reply_fn fn, void *ud)
{
    uint64_t id = 0;
    mp_err err = start_raw(c, map, len, fn != NULL, &id);
    if (err != MP_OK) return err;
    return mp_finish_async(c, id, fn, ud);
}
