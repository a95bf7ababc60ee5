/* reply: building a `res` 200 with extra fields from C, straight into the scratch buffer. */
#ifndef MOONPOST_REPLY_H
#define MOONPOST_REPLY_H

#include <msgpack.h>

#include "session.h"

/* Starts `res` 200 for request (HAS_ID, ID) with FIELDS more key/value pairs to follow; returns
 * the packer to write them with. */
msgpack_packer *reply_begin(int has_id, uint64_t id, size_t fields);
/* Queues the reply to S. */
void reply_end(struct session *s);

void reply_pack_str(msgpack_packer *pk, const char *s);

/* Encodes `bye` CODE ERROR into a buffer of its own (valid until the next call). */
const char *reply_encode_bye(int code, const char *error, size_t *len);

#endif
