/* luahost_api: every C function that Lua scripts can call, implemented across the luahost_*.c files
 * and gathered into the `moonpost` module by the one table in luahost_api.c. */
#ifndef MOONPOST_LUAHOST_API_H
#define MOONPOST_LUAHOST_API_H

#include <lua.h>

int luaopen_moonpost(lua_State *L);

/* luahost_api.c: registration, logging, time, codec, delivery */
int mpl_on(lua_State *L);
int mpl_on_close(lua_State *L);
int mpl_log(lua_State *L);
int mpl_now(lua_State *L);
int mpl_encode(lua_State *L);
int mpl_decode(lua_State *L);
int mpl_bin(lua_State *L);
int mpl_isbin(lua_State *L);
int mpl_array(lua_State *L);
int mpl_random_token(lua_State *L);
int mpl_deliver(lua_State *L);
int mpl_broadcast(lua_State *L);
int mpl_online(lua_State *L);
int mpl_users(lua_State *L);
int mpl_on_resync(lua_State *L);

/* luahost_topic.c: topics (s:subscribe, s:unsubscribe are methods of the session object) */
int mpl_publish(lua_State *L);
int mpl_topic_envelope(lua_State *L);
int mpl_session_subscribe(lua_State *L);
int mpl_session_unsubscribe(lua_State *L);
int mpl_session_follow_envelope(lua_State *L);

/* luahost_crypto.c: SHA-256, one shot and incremental */
int mpl_sha256(lua_State *L);
int mpl_sha256_update(lua_State *L);
int mpl_sha256_final(lua_State *L);

/* luahost_options.c: moonpost.option */
int mpl_option(lua_State *L);

/* luahost_session.c: the session object handed to every handler */
void luahost_session_open(lua_State *L);

/* luahost_redis.c */
int mpl_redis(lua_State *L);
int mpl_redis_batch(lua_State *L);
int mpl_redis_replicated(lua_State *L);
int mpl_redis_library(lua_State *L);

/* luahost_worker.c */
int mpl_pwhash(lua_State *L);
int mpl_pwverify(lua_State *L);

/* luahost_timer.c */
int mpl_sleep(lua_State *L);
int mpl_every(lua_State *L);
int mpl_waiter(lua_State *L);

/* luahost.c: what the registration functions record */
int luahost_register_handler(lua_State *L, const char *type, int fn_index, unsigned flags);
void luahost_register_close_hook(lua_State *L, int fn_index);
/* mp.on_resync: the function at FN_INDEX resyncs sessions from now on. */
void luahost_set_resync_handler(lua_State *L, int fn_index);
int luahost_add_redis_library(const char *src, size_t len);

/* Pushes the arguments FIRST..top converted with tostring and joined by SEP. */
void luahost_join_args(lua_State *L, int first, char sep);

/* Encodes the table at IDX as a frame into the loop's scratch buffer; raises a Lua error when
 * it cannot be encoded. Returns the frame's size; the bytes are in broker.scratch. */
size_t luahost_encode_frame(lua_State *L, int idx);
/* The same, followed by the pairs of the encoded map at TAIL_IDX (a string or bin) when that
 * argument is given (codec_encode_frame_tail); TAIL_IDX 0: none. */
size_t luahost_encode_frame_tail(lua_State *L, int idx, int tail_idx);

#endif
