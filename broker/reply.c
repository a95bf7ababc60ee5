/* reply: encoding `res` and `bye` frames (no session, no state: the callers queue them). */
#include "reply.h"

#include <string.h>


void reply_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

msgpack_packer *reply_begin_in(struct codec_buf *b, int has_id, uint64_t id, int code,
                               size_t fields)
{
    codec_frame_begin(b);
    msgpack_pack_map(&b->pk, fields + 2 + (has_id ? 1 : 0));
    reply_pack_str(&b->pk, "type");
    reply_pack_str(&b->pk, "res");
    reply_pack_str(&b->pk, "code");
    msgpack_pack_int(&b->pk, code);
    if (has_id) {
        reply_pack_str(&b->pk, "id");
        msgpack_pack_uint64(&b->pk, id); /* ids are uint64: they never pass through Lua */
    }
    return &b->pk;
}


const char *reply_encode_bye(int code, const char *error, size_t *len)
{
    /* a buffer of its own: a slow reader is sent its bye while a broadcast from the loop's
     * scratch buffer is still being queued to the others */
    static struct codec_buf bye;
    static int ready;
    struct codec_buf *b = &bye;
    if (!ready) {
        codec_buf_init(b);
        ready = 1;
    }
    codec_frame_begin(b);
    msgpack_pack_map(&b->pk, 3);
    reply_pack_str(&b->pk, "type");
    reply_pack_str(&b->pk, "bye");
    reply_pack_str(&b->pk, "code");
    msgpack_pack_int(&b->pk, code);
    reply_pack_str(&b->pk, "error");
    reply_pack_str(&b->pk, error);
    *len = codec_frame_end(b);
    return b->sb.data;
}
