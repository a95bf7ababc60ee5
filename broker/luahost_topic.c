/* luahost_topic: topics for scripts. A session follows topics (s:subscribe); a frame published
 * on a topic, by mp.publish or by a Redis function that PUBLISHes the envelope of
 * mp.topic_envelope, reaches the followers on every node of the cluster, in Redis's order. */
#include <string.h>

#include <lauxlib.h>

#include "broker.h"
#include "cluster.h"
#include "frame.h"
#include "log.h"
#include "luahost.h"
#include "luahost_api.h"
#include "store.h"
#include "topic.h"

static const char *check_topic(lua_State *L, int idx, size_t *len)
{
    const char *topic = luaL_checklstring(L, idx, len);
    luaL_argcheck(L, *len >= 1 && *len <= TOPIC_NAME_MAX, idx, "a topic of 1 to 255 bytes");
    return topic;
}

/* The request's live session, or NULL (false pushed as the method's result). */
static struct session *request_session(lua_State *L)
{
    const struct request *r = luaL_checkudata(L, 1, LUAHOST_REQUEST_META);
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (s == NULL) lua_pushboolean(L, 0);
    return s;
}

/* s:subscribe(topic) -- the session follows TOPIC: true when it did not yet, else false. */
int mpl_session_subscribe(lua_State *L)
{
    size_t len;
    const char *topic = check_topic(L, 2, &len);
    struct session *s = request_session(L);
    if (s == NULL) return 1;
    int added = topic_subscribe(s, topic, len);
    if (added < 0) return luaL_error(L, "not enough memory to subscribe");
    lua_pushboolean(L, added);
    return 1;
}

/* s:unsubscribe(topic) -- true when the session followed TOPIC and no longer does. */
int mpl_session_unsubscribe(lua_State *L)
{
    size_t len;
    const char *topic = check_topic(L, 2, &len);
    struct session *s = request_session(L);
    if (s == NULL) return 1;
    lua_pushboolean(L, topic_unsubscribe(s, topic, len));
    return 1;
}

/* s:follow_envelope() -- channel, header: a Redis function that PUBLISHes on channel header
 * followed, for each topic, by one byte of length and the name, has this session follow those
 * topics from that point of Redis's stream on (while it is still logged in as now). */
int mpl_session_follow_envelope(lua_State *L)
{
    struct session *s = request_session(L);
    if (s == NULL) return 1;
    uint8_t header[TOPIC_FOLLOW_HEADER_MAX];
    size_t n = topic_follow_header(header, s);
    lua_pushstring(L, cluster_node_channel());
    lua_pushlstring(L, (const char *)header, n);
    return 2;
}

/* The except user of argument IDX (nil: nobody). */
static const char *check_except(lua_State *L, int idx, size_t *len)
{
    *len = 0;
    if (lua_isnoneornil(L, idx)) return "";
    const char *user = luaL_checklstring(L, idx, len);
    luaL_argcheck(L, *len <= SESSION_USER_MAX, idx, "a user name of at most 32 bytes");
    return user;
}

/* mp.topic_envelope(topic [, except_user]) -- channel, header: a Redis function that PUBLISHes
 * header .. body (a frame's MessagePack map) on channel has the frame pushed to every follower
 * of TOPIC on every node, but to EXCEPT_USER's session. */
int mpl_topic_envelope(lua_State *L)
{
    size_t len, except_len;
    const char *topic = check_topic(L, 1, &len);
    const char *except = check_except(L, 2, &except_len);
    uint8_t header[TOPIC_HEADER_MAX];
    size_t n = topic_header(header, topic, len, except, except_len);
    lua_pushstring(L, cluster_broadcast_channel());
    lua_pushlstring(L, (const char *)header, n);
    return 2;
}

static void on_published(redisReply *reply, const char *error, void *arg)
{
    (void)arg;
    if (reply == NULL) log_debug("mp.publish: %s", error);
}

/* mp.publish(topic, t [, except_user]) -- T, encoded once, to every follower of TOPIC on every
 * node but EXCEPT_USER's session; false when Redis is not connected. Does not wait. */
int mpl_publish(lua_State *L)
{
    size_t len, except_len;
    const char *topic = check_topic(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *except = check_except(L, 3, &except_len);
    uint8_t header[TOPIC_HEADER_MAX];
    size_t header_len = topic_header(header, topic, len, except, except_len);
    size_t n = luahost_encode_frame(L, 2);
    /* the header, then the frame without its length prefix (what a Redis function publishes) */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)header, header_len);
    luaL_addlstring(&b, broker.scratch.sb.data + FRAME_HEADER_LEN, n - FRAME_HEADER_LEN);
    luaL_pushresult(&b);
    size_t payload_len;
    const char *payload = lua_tolstring(L, -1, &payload_len);
    const char *channel = cluster_broadcast_channel();
    const char *argv[] = {"PUBLISH", channel, payload};
    size_t lens[] = {7, strlen(channel), payload_len};
    lua_pushboolean(L, store_command(3, argv, lens, on_published, NULL) == 0);
    return 1;
}
