/* reply: `res` frames kept for the caller, their field accessors, and user lists. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "mp_internal.h"

struct mp_reply *mp_reply_copy(const uint8_t *body, size_t len, int code)
{
    struct mp_reply *r = malloc(sizeof *r + len + 1);
    if (r == NULL) return NULL;
    r->code = code;
    r->len = len;
    memcpy(r->data, body, len);
    r->data[len] = '\0';
    return r;
}

void mp_reply_free(mp_reply *r)
{
    free(r);
}

int mp_reply_code(const mp_reply *r)
{
    return r ? r->code : 0;
}

const void *mp_reply_data(const mp_reply *r, size_t *len)
{
    if (len) *len = r ? r->len : 0;
    return r ? r->data : NULL;
}

static int get(const mp_reply *r, const char *key, struct msgread_item *item)
{
    return r != NULL && key != NULL && frame_get(r->data, r->len, key, item);
}

int mp_reply_str(const mp_reply *r, const char *key, const char **ptr, size_t *len)
{
    struct msgread_item item;
    if (!get(r, key, &item) || (item.type != MSGREAD_STR && item.type != MSGREAD_BIN)) return 0;
    if (ptr) *ptr = (const char *)item.v.str.ptr;
    if (len) *len = item.v.str.len;
    return 1;
}

int mp_reply_uint(const mp_reply *r, const char *key, uint64_t *out)
{
    struct msgread_item item;
    if (!get(r, key, &item) || item.type != MSGREAD_UINT) return 0;
    if (out) *out = item.v.u;
    return 1;
}

int mp_reply_bool(const mp_reply *r, const char *key, int *out)
{
    struct msgread_item item;
    if (!get(r, key, &item) || item.type != MSGREAD_BOOL) return 0;
    if (out) *out = item.v.boolean;
    return 1;
}

void mp_error_from_body(mp_client *c, const uint8_t *body, size_t len, int code)
{
    struct msgread_item item;
    if (frame_get(body, len, "error", &item) && item.type == MSGREAD_STR) {
        mp_fail(c, MP_ERR_SERVER, code, "%.*s", (int)item.v.str.len, (const char *)item.v.str.ptr);
        return;
    }
    mp_fail(c, MP_ERR_SERVER, code, "%s", mp_code_text(code));
}

void mp_userlist_free(mp_userlist *list)
{
    free(list);
}

mp_err mp_userlist_from_reply(mp_client *c, const mp_reply *r, mp_userlist **out)
{
    return mp_namelist_from_reply(c, r, "users", "count", out);
}

/* One allocation: the struct, the pointer array, then the NUL-terminated names. */
mp_err mp_namelist_from_reply(mp_client *c, const mp_reply *r, const char *key,
                              const char *count_key, mp_userlist **out)
{
    struct mp_field f[] = {{.key = key}, {.key = count_key ? count_key : ""}};
    mp_fields_read(r->data, r->len, f, count_key ? 2 : 1);
    if (!f[0].found || f[0].item.type != MSGREAD_ARRAY)
        return mp_fail(c, MP_ERR_PROTOCOL, 0, "reply without a %s array", key);
    uint32_t n = f[0].item.v.count;
    size_t bytes = sizeof(mp_userlist) + (size_t)n * sizeof(char *);
    struct mpr walk = f[0].after;
    for (uint32_t i = 0; i < n; i++) {
        struct msgread_item name;
        if (msgread_next(&walk, &name) != MSGREAD_OK || name.type != MSGREAD_STR)
            return mp_fail(c, MP_ERR_PROTOCOL, 0, "%s holds something that is not a name", key);
        bytes += name.v.str.len + 1;
    }
    mp_userlist *list = malloc(bytes);
    if (list == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    list->n = n;
    list->total = count_key && f[1].found && f[1].item.type == MSGREAD_UINT ? f[1].item.v.u : n;
    list->users = (char **)(list + 1);
    char *text = (char *)(list->users + n);
    walk = f[0].after;
    for (uint32_t i = 0; i < n; i++) {
        struct msgread_item name;
        msgread_next(&walk, &name); /* checked above */
        memcpy(text, name.v.str.ptr, name.v.str.len);
        text[name.v.str.len] = '\0';
        list->users[i] = text;
        text += name.v.str.len + 1;
    }
    *out = list;
    return MP_OK;
}
