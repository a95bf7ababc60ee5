/* calls: the requests of the protocol, each a few lines over mp_start/mp_finish_*. */
#include <string.h>

#include "mp_internal.h"

#define CHECK(c, cond, what)                                                                       \
    do {                                                                                           \
        if ((c) == NULL) return MP_ERR_INVAL;                                                      \
        if (!(cond)) return mp_fail((c), MP_ERR_INVAL, 0, "%s", (what));                           \
    } while (0)

static int name_ok(const char *s)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= MP_NAME_MAX;
}

mp_err mp_register(mp_client *c, const char *user, const char *password, const char *name)
{
    CHECK(c, name_ok(user) && password != NULL, "register needs a user and a password");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "register", name ? 3 : 2, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "user");
    mp_pack_cstr(&pk, user);
    mp_pack_cstr(&pk, "password");
    mp_pack_cstr(&pk, password);
    if (name) {
        mp_pack_cstr(&pk, "name");
        mp_pack_cstr(&pk, name);
    }
    return mp_finish_blocking(c, id, NULL);
}

/* login and resume: same request shape, same reply. */
static mp_err authenticate(mp_client *c, const char *type, const char *user, const char *key,
                           const char *secret, mp_userlist **online)
{
    if (online) *online = NULL;
    CHECK(c, name_ok(user) && secret != NULL, "login and resume need a user and a secret");
    char who[MP_NAME_MAX + 1];
    mp_copy_name(who, user); /* USER may be c->user itself */
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, type, 2, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "user");
    mp_pack_cstr(&pk, user);
    mp_pack_cstr(&pk, key);
    mp_pack_cstr(&pk, secret);
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err != MP_OK) {
        mp_reply_free(r);
        return err;
    }
    const char *token;
    size_t token_len;
    if (!mp_reply_str(r, "token", &token, &token_len) || token_len == 0 ||
        token_len > MP_NAME_MAX) {
        mp_reply_free(r);
        return mp_fail(c, MP_ERR_PROTOCOL, 0, "%s reply without a usable token", type);
    }
    mp_set_session(c, who, token, token_len);
    if (online) err = mp_userlist_from_reply(c, r, online);
    mp_reply_free(r);
    return err;
}

mp_err mp_login(mp_client *c, const char *user, const char *password, mp_userlist **online)
{
    return authenticate(c, "login", user, "password", password, online);
}

mp_err mp_resume(mp_client *c, const char *user, const char *token, mp_userlist **online)
{
    return authenticate(c, "resume", user, "token", token, online);
}

mp_err mp_logout(mp_client *c)
{
    CHECK(c, 1, "");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "logout", 0, 1, &id);
    if (err != MP_OK) return err;
    err = mp_finish_blocking(c, id, NULL);
    if (err != MP_OK) return err;
    mp_forget_session(c);
    mp_conn_close(c, MP_ERR_CLOSED); /* the broker closes after the reply */
    return MP_OK;
}

mp_err mp_users(mp_client *c, unsigned limit, mp_userlist **out)
{
    if (out) *out = NULL;
    CHECK(c, out != NULL, "users needs somewhere to put the list");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "users", limit ? 1 : 0, 1, &id);
    if (err != MP_OK) return err;
    if (limit) {
        mp_pack_cstr(&pk, "limit");
        msgpack_pack_unsigned_int(&pk, limit);
    }
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK) err = mp_userlist_from_reply(c, r, out);
    mp_reply_free(r);
    return err;
}

static mp_err start_send(mp_client *c, msgpack_packer *pk, const char *to, const void *body,
                         size_t len, enum mp_body_kind kind, int want_id, uint64_t *id)
{
    CHECK(c, name_ok(to) && (body != NULL || len == 0), "send needs a recipient and a body");
    mp_err err = mp_start(c, pk, "send", 2, want_id, id);
    if (err != MP_OK) return err;
    mp_pack_cstr(pk, "to");
    mp_pack_cstr(pk, to);
    mp_pack_cstr(pk, "body");
    mp_pack_body(pk, body, len, kind);
    return MP_OK;
}

static mp_err start_broadcast(mp_client *c, msgpack_packer *pk, const void *body, size_t len,
                              enum mp_body_kind kind, int want_id, uint64_t *id)
{
    CHECK(c, body != NULL || len == 0, "broadcast needs a body");
    mp_err err = mp_start(c, pk, "broadcast", 1, want_id, id);
    if (err != MP_OK) return err;
    mp_pack_cstr(pk, "body");
    mp_pack_body(pk, body, len, kind);
    return MP_OK;
}

mp_err mp_send(mp_client *c, const char *to, const void *body, size_t len, enum mp_body_kind kind,
               uint64_t *mid, int *online)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_send(c, &pk, to, body, len, kind, 1, &id);
    if (err != MP_OK) return err;
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK) {
        if (mid && !mp_reply_uint(r, "mid", mid)) *mid = 0;
        if (online && !mp_reply_bool(r, "online", online)) *online = 0;
    }
    mp_reply_free(r);
    return err;
}

mp_err mp_broadcast(mp_client *c, const void *body, size_t len, enum mp_body_kind kind,
                    uint64_t *mid)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_broadcast(c, &pk, body, len, kind, 1, &id);
    if (err != MP_OK) return err;
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err == MP_OK && mid && !mp_reply_uint(r, "mid", mid)) *mid = 0;
    mp_reply_free(r);
    return err;
}

mp_err mp_send_async(mp_client *c, const char *to, const void *body, size_t len,
                     enum mp_body_kind kind, mp_reply_fn fn, void *ud)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_send(c, &pk, to, body, len, kind, fn != NULL, &id);
    if (err != MP_OK) return err;
    return mp_finish_async(c, id, fn, ud);
}

mp_err mp_broadcast_async(mp_client *c, const void *body, size_t len, enum mp_body_kind kind,
                          mp_reply_fn fn, void *ud)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = start_broadcast(c, &pk, body, len, kind, fn != NULL, &id);
    if (err != MP_OK) return err;
    return mp_finish_async(c, id, fn, ud);
}

mp_err mp_ping(mp_client *c, int64_t *ts)
{
    CHECK(c, 1, "");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "ping", 0, 1, &id);
    if (err != MP_OK) return err;
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    uint64_t v = 0;
    if (err == MP_OK && ts) *ts = mp_reply_uint(r, "ts", &v) ? (int64_t)v : 0;
    mp_reply_free(r);
    return err;
}

mp_err mp_ack(mp_client *c, uint64_t upto)
{
    CHECK(c, 1, "");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "ack", 1, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "upto");
    msgpack_pack_uint64(&pk, upto);
    err = mp_finish_blocking(c, id, NULL);
    if (err == MP_OK && upto > c->acked_mid) c->acked_mid = upto;
    return err;
}
