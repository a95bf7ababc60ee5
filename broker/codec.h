/* codec: the one MessagePack <-> Lua converter, for requests into Lua and everything Lua sends.
 *
 * nil, booleans, integers, floats, strings, binary and nested arrays and maps convert both ways.
 * MessagePack bin becomes a `moonpost.bin` userdata (its bytes, with __len and __tostring) so
 * that a body sent as bin is sent on as bin; a plain Lua string encodes as str. A table is an
 * array when its keys are exactly 1..n (n > 0) or it carries the `moonpost.array` metatable,
 * otherwise a map. */
#ifndef MOONPOST_CODEC_H
#define MOONPOST_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <msgpack.h>

#define CODEC_BIN_META "moonpost.bin"
#define CODEC_ARRAY_META "moonpost.array"
#define CODEC_MAX_DEPTH 32

/* Creates the metatables above in L's registry; call once per state. */
void codec_open(lua_State *L);

enum codec_status { CODEC_OK = 0, CODEC_MALFORMED = -1, CODEC_TOO_MANY = -2 };

/* Decodes exactly one value that fills all of [data, data+len) and pushes it. MAX_VALUES bounds
 * the values it may create (every container, key and scalar counts one; 0 = no bound): past
 * it decoding stops at once, so a small frame cannot build a huge table. Returns CODEC_OK (with
 * the count in *values when VALUES is not NULL), or an error with nothing pushed and a reason in
 * *err (a static string). Never trusts the input; raises only Lua memory errors. */
int codec_decode(lua_State *L, const uint8_t *data, size_t len, size_t max_values,
                 size_t *values, const char **err);

/* Pushes a new bin userdata holding a copy of LEN bytes. */
void codec_push_bin(lua_State *L, const void *data, size_t len);

/* The bytes of a Lua string or bin userdata at IDX, or NULL when it is neither. */
const char *codec_tobytes(lua_State *L, int idx, size_t *len);

/* A growable byte buffer that frames are encoded into and reused across calls. */
struct codec_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

void codec_buf_init(struct codec_buf *b);
void codec_buf_free(struct codec_buf *b);

/* Appends the value at IDX to B. Returns 0, or -1 with a reason in errbuf (B may then hold
 * part of the value: callers discard it). */
int codec_encode(lua_State *L, int idx, struct codec_buf *b, char *errbuf, size_t errlen);

/* Starts a frame: clears the buffer and leaves room for the length prefix. */
void codec_frame_begin(struct codec_buf *b);
/* Writes the length prefix; returns the whole frame's size (prefix included). */
size_t codec_frame_end(struct codec_buf *b);

/* Encodes the Lua table at IDX as one frame. Returns 0 or -1 with errbuf. */
int codec_encode_frame(lua_State *L, int idx, struct codec_buf *b, char *errbuf, size_t errlen);

/* Encodes one frame: a map of the pairs of the Lua table at IDX (a map even when the table is a
 * sequence), then those of TAIL, an encoded MessagePack map passed through as it is (a stored
 * message, not decoded and encoded again). The caller keeps their keys apart: a key in both is
 * written twice. Returns 0 or -1 with errbuf (TAIL not one whole map included). */
int codec_encode_frame_tail(lua_State *L, int idx, const uint8_t *tail, size_t tail_len,
                            struct codec_buf *b, char *errbuf, size_t errlen);

#endif
