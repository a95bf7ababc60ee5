/* luahost_worker: moonpost.pwhash and moonpost.pwverify, argon2id on the worker pool. A job is
 * queued under its client's address (fairness) and skipped when its client left meanwhile. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#include "broker.h"
#include "luahost_api.h"
#include "luahost.h"
#include "session.h"
#include "worker.h"

#define PASSWORD_MAX 1024

struct pw_job {
    struct worker_job job; /* first: the pool hands this pointer back */
    struct request *r;
    int verify;
    int has_hash; /* verify: 0 = against no hash (an unknown user), costs the same, answers false */
    int ok;
    size_t pw_len;
    char pw[PASSWORD_MAX];
    char hash[crypto_pwhash_STRBYTES];
};

static void run_pw(struct worker_job *job)
{
    struct pw_job *j = (struct pw_job *)job;
    if (j->verify && j->has_hash) {
        j->ok = crypto_pwhash_str_verify(j->hash, j->pw, j->pw_len) == 0;
        return;
    }
    /* a verification without a hash hashes with the configured cost, as a real one would */
    j->ok = crypto_pwhash_str_alg(j->hash, j->pw, j->pw_len,
                                  (unsigned long long)broker.conf.pwhash_ops,
                                  (size_t)broker.conf.pwhash_memory * 1024,
                                  crypto_pwhash_ALG_ARGON2ID13) == 0;
    if (j->verify) j->ok = 0;
}

/* A job whose client left is not worth running (timers and hooks have no client). */
static int wanted_pw(struct worker_job *job)
{
    const struct request *r = ((struct pw_job *)job)->r;
    return r->session == 0 || session_get(r->session) != NULL;
}

static int push_pw_result(lua_State *L, void *ud)
{
    const struct pw_job *j = ud;
    if (j->job.cancelled) {
        lua_pushnil(L);
        lua_pushstring(L, j->job.cancelled == WORKER_STOPPED ? "shutting down" : "client gone");
    } else if (j->verify) {
        lua_pushboolean(L, j->ok);
        lua_pushnil(L);
    } else if (j->ok) {
        lua_pushstring(L, j->hash);
        lua_pushnil(L);
    } else {
        lua_pushnil(L);
        lua_pushliteral(L, "password hashing failed (out of memory?)");
    }
    return 2;
}

static void done_pw(struct worker_job *job)
{
    struct pw_job *j = (struct pw_job *)job;
    struct request *r = j->r;
    int n = luahost_push_results(r, push_pw_result, j); /* protected: the heap may be full */
    sodium_memzero(j, sizeof *j);
    free(j);
    if (n < 0)
        luahost_resume_error(r, "no Lua memory left for the password hashing result");
    else
        luahost_resume(r, n);
}

static int submit(lua_State *L, int verify)
{
    struct request *r = luahost_current(L);
    if (r == NULL) return luaL_error(L, "password hashing can only run in a handler or timer");
    size_t pw_len, hash_len = 0;
    const char *hash = verify ? luaL_optlstring(L, 1, NULL, &hash_len) : NULL;
    const char *pw = luaL_checklstring(L, verify ? 2 : 1, &pw_len);
    luaL_argcheck(L, pw_len <= PASSWORD_MAX, verify ? 2 : 1, "password longer than 1024 bytes");
    if (verify && hash_len >= crypto_pwhash_STRBYTES) {
        lua_pushboolean(L, 0);
        return 1;
    }
    struct session *s = r->session ? session_get(r->session) : NULL;
    if (r->session != 0 && s == NULL) { /* its client left: nobody waits for the hash */
        lua_pushnil(L);
        lua_pushliteral(L, "client gone");
        return 2;
    }
    struct pw_job *j = calloc(1, sizeof *j);
    if (j == NULL) return luaL_error(L, "out of memory");
    j->job.run = run_pw;
    j->job.done = done_pw;
    j->job.wanted = wanted_pw;
    j->r = r;
    j->verify = verify;
    j->has_hash = hash != NULL;
    memcpy(j->pw, pw, pw_len);
    j->pw_len = pw_len;
    if (hash != NULL) memcpy(j->hash, hash, hash_len);
    char owner[64] = "";
    if (s != NULL) session_addr_key(s, owner, sizeof owner);
    enum worker_status status = worker_submit(&j->job, owner);
    if (status != WORKER_OK) {
        sodium_memzero(j, sizeof *j);
        free(j);
        if (status == WORKER_NO_THREADS) return luaL_error(L, "no worker threads");
        lua_pushnil(L);
        lua_pushliteral(L, "busy");
        lua_pushinteger(L, worker_retry_after());
        return 3;
    }
    return luahost_yield(L, r);
}

/* moonpost.pwhash(password) -> "$argon2id$..." (yields), or nil, "busy", retry_after (seconds)
 * at once when the queue is full */
int mpl_pwhash(lua_State *L)
{
    return submit(L, 0);
}

/* moonpost.pwverify(hash|nil, password) -> true/false (yields; constant time in the password;
 * a nil hash costs as much and answers false), or nil, "busy", retry_after like pwhash */
int mpl_pwverify(lua_State *L)
{
    return submit(L, 1);
}
