/* reply: building `res` and `bye` frames from C. */
#ifndef MOONPOST_REPLY_H
#define MOONPOST_REPLY_H

#include <msgpack.h>

#include "codec.h"

/* Starts a frame in B: `res` CODE for request (HAS_ID, ID), with FIELDS more key/value pairs to
 * follow (`error` among them when CODE != 200); returns the packer to write them with. The one
 * place that writes a reply's header. */
msgpack_packer *reply_begin_in(struct codec_buf *b, int has_id, uint64_t id, int code,
                               size_t fields);

void reply_pack_str(msgpack_packer *pk, const char *s);

/* Encodes `bye` CODE ERROR into a buffer of its own (valid until the next call). */
const char *reply_encode_bye(int code, const char *error, size_t *len);

#endif
