/* luahost_users: mp.users, the online list of the whole cluster. Every login reply carries it,
 * so a login storm would ask Redis for it thousands of times a second: the calls that come
 * while it is being fetched wait for that one fetch. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "cluster.h"
#include "codec.h"
#include "luahost.h"
#include "luahost_api.h"
#include "presence.h"
#include "session.h"

#define USERS_FETCH_MAX "10000" /* the most a `users` request may ask for */

struct waiter {
    struct request *r;
    size_t limit;
    struct waiter *next;
};

static struct {
    char *names;     /* the names, one after another */
    size_t *offsets; /* N + 1 offsets into names */
    size_t n;
    int64_t count;   /* users online in all */
    int fetching;
    struct waiter *waiters;
} cache;

/* Pushes at most LIMIT names and the count: the cached list, or when ONLY_HERE (Redis could not
 * be asked) the users of this node. The calling session's own user is in the list when it is
 * logged in and the list has room (PROTOCOL.md: the login reply lists "online users including
 * yourself"; it may have logged in after the fetch). */
struct users_args {
    size_t limit;
    const struct session *self;
    int only_here;
};

static int listed(const char *user, size_t len, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        size_t at = cache.offsets[i];
        if (cache.offsets[i + 1] - at == len && memcmp(cache.names + at, user, len) == 0) return 1;
    }
    return 0;
}

static int push_list(lua_State *L, void *ud)
{
    const struct users_args *a = ud;
    size_t total = a->only_here ? presence_count() : cache.n;
    size_t n = a->limit < total ? a->limit : total;
    lua_createtable(L, (int)n + 1, 0);
    luaL_setmetatable(L, CODEC_ARRAY_META);
    for (size_t i = 0; i < n; i++) {
        if (a->only_here) {
            const struct session *s = presence_at(i);
            lua_pushlstring(L, s->user, s->user_len);
        } else {
            lua_pushlstring(L, cache.names + cache.offsets[i], cache.offsets[i + 1] - cache.offsets[i]);
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    int64_t count = a->only_here ? (int64_t)total : cache.count;
    const struct session *s = a->self;
    if (!a->only_here && s != NULL && s->state == SESSION_AUTHENTICATED && n < a->limit &&
        !listed(s->user, s->user_len, n)) {
        lua_pushlstring(L, s->user, s->user_len);
        lua_rawseti(L, -2, (lua_Integer)n + 1);
        count++;
    }
    lua_pushinteger(L, (lua_Integer)count);
    return 2;
}

/* Keeps the names of a moonpost_users reply {count, {names...}}; 0, or -1 when it is not one
 * or memory is short (the cache is then empty). */
static int keep(const redisReply *reply)
{
    free(cache.names);
    free(cache.offsets);
    cache.names = NULL;
    cache.offsets = NULL;
    cache.n = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    const redisReply *list = reply->element[1];
    size_t bytes = 0;
    for (size_t i = 0; i < list->elements; i++) bytes += list->element[i]->len;
    cache.names = malloc(bytes + 1);
    cache.offsets = malloc((list->elements + 1) * sizeof *cache.offsets);
    if (cache.names == NULL || cache.offsets == NULL) return -1;
    size_t at = 0;
    for (size_t i = 0; i < list->elements; i++) {
        cache.offsets[i] = at;
        memcpy(cache.names + at, list->element[i]->str, list->element[i]->len);
        at += list->element[i]->len;
    }
    cache.offsets[list->elements] = at;
    cache.n = list->elements;
    cache.count = reply->element[0]->integer;
    return 0;
}

static void resume_with_list(struct request *r, size_t limit, int only_here)
{
    struct users_args a = {limit, r->session ? session_get(r->session) : NULL, only_here};
    int n = luahost_push_results(r, push_list, &a);
    if (n < 0)
        luahost_resume_error(r, "not enough Lua memory for the online list");
    else
        luahost_resume(r, n);
}

static void on_users(redisReply *reply, const char *error, void *arg)
{
    (void)error, (void)arg;
    cache.fetching = 0;
    int only_here = keep(reply) != 0;
    struct waiter *w = cache.waiters;
    cache.waiters = NULL; /* a resumed handler may ask again: it finds a fresh list */
    while (w != NULL) {
        struct waiter *next = w->next;
        resume_with_list(w->r, w->limit, only_here);
        free(w);
        w = next;
    }
}

/* mp.users([limit]) -- at most LIMIT users online on any node, and how many there are. */
int mpl_users(lua_State *L)
{
    lua_Integer limit = luaL_optinteger(L, 1, 1000);
    if (limit < 0) limit = 0;
    struct request *r = luahost_current(L);
    struct waiter *w = r != NULL ? malloc(sizeof *w) : NULL;
    if (w != NULL && !cache.fetching) {
        const char *argv[] = {USERS_FETCH_MAX};
        cache.fetching = cluster_call("moonpost_users", 1, argv, NULL, on_users, NULL) == 0;
    }
    if (w == NULL || !cache.fetching) { /* not in a handler, or Redis is not connected */
        free(w);
        struct users_args a = {(size_t)limit, NULL, 1};
        return push_list(L, &a);
    }
    *w = (struct waiter){r, (size_t)limit, cache.waiters};
    cache.waiters = w;
    return luahost_yield(L, r);
}
