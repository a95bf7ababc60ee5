/* luahost_crypto: SHA-256 for the scripts (libsodium), one shot or incremental. The incremental
 * state travels as a portable 104-byte string (big-endian words, the bit count, the pending
 * block) so that a script can keep it in Redis and a later chunk, on any node of a cluster,
 * can go on hashing where the previous one stopped. */
#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#include "codec.h"
#include "luahost_api.h"

#define SHA256_STATE_LEN 104 /* 8 words of 4 bytes, the bit count (8), the pending block (64) */

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static void state_save(const crypto_hash_sha256_state *st, unsigned char out[SHA256_STATE_LEN])
{
    for (size_t i = 0; i < 8; i++)
        put_be(out + 4 * i, st->state[i], 4);
    put_be(out + 32, st->count, 8);
    memcpy(out + 40, st->buf, 64);
}

static void state_load(crypto_hash_sha256_state *st, const unsigned char in[SHA256_STATE_LEN])
{
    for (size_t i = 0; i < 8; i++)
        st->state[i] = (uint32_t)get_be(in + 4 * i, 4);
    st->count = get_be(in + 32, 8);
    memcpy(st->buf, in + 40, 64);
}

/* The bytes of argument IDX (a string or a bin), or a Lua error. */
static const unsigned char *check_bytes(lua_State *L, int idx, size_t *len)
{
    const char *p = codec_tobytes(L, idx, len);
    if (p == NULL) luaL_typeerror(L, idx, "string or bin");
    return (const unsigned char *)p;
}

/* The state at argument IDX: a fresh one when nil or "", else a saved one. */
static void check_state(lua_State *L, int idx, crypto_hash_sha256_state *st)
{
    size_t len = 0;
    if (lua_isnoneornil(L, idx)) {
        crypto_hash_sha256_init(st);
        return;
    }
    const unsigned char *saved = check_bytes(L, idx, &len);
    if (len == 0) {
        crypto_hash_sha256_init(st);
        return;
    }
    luaL_argcheck(L, len == SHA256_STATE_LEN, idx, "not a SHA-256 state");
    state_load(st, saved);
}

/* moonpost.sha256(data) -> the 32-byte digest as a bin. */
int mpl_sha256(lua_State *L)
{
    size_t len;
    const unsigned char *data = check_bytes(L, 1, &len);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, data, len);
    codec_push_bin(L, digest, sizeof digest);
    return 1;
}

/* moonpost.sha256_update(state or nil, data) -> the state after DATA (a string). */
int mpl_sha256_update(lua_State *L)
{
    crypto_hash_sha256_state st;
    check_state(L, 1, &st);
    size_t len;
    const unsigned char *data = check_bytes(L, 2, &len);
    crypto_hash_sha256_update(&st, data, len);
    unsigned char out[SHA256_STATE_LEN];
    state_save(&st, out);
    lua_pushlstring(L, (const char *)out, sizeof out);
    return 1;
}

/* moonpost.sha256_final(state or nil) -> the digest of everything the state has seen (bin). */
int mpl_sha256_final(lua_State *L)
{
    crypto_hash_sha256_state st;
    check_state(L, 1, &st);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, digest);
    codec_push_bin(L, digest, sizeof digest);
    return 1;
}
