/* frame: validation of a frame body against the rules of PROTOCOL.md. */
#include "frame.h"

#include <string.h>

#include "msgread.h"

static enum frame_error from_mpr(int rc)
{
    if (rc == MSGREAD_UNSUPPORTED) return FRAME_UNSUPPORTED;
    if (rc == MSGREAD_TOO_DEEP) return FRAME_TOO_DEEP;
    return FRAME_TRUNCATED;
}

static int is_valid_nested_key(const struct msgread_item *key)
{
    return key->type == MSGREAD_STR || key->type == MSGREAD_UINT || key->type == MSGREAD_INT;
}

/* Walks one value at DEPTH (the top-level map is depth 1). */
static enum frame_error check_value(struct mpr *r, int depth)
{
    struct msgread_item item;
    int rc = msgread_next(r, &item);
    if (rc != MSGREAD_OK) return from_mpr(rc);
    if (item.type != MSGREAD_ARRAY && item.type != MSGREAD_MAP) return FRAME_OK;
    if (depth > FRAME_MAX_DEPTH) return FRAME_TOO_DEEP;
    for (uint32_t i = 0; i < item.v.count; i++) {
        if (item.type == MSGREAD_MAP) {
            struct msgread_item key;
            rc = msgread_next(r, &key);
            if (rc != MSGREAD_OK) return from_mpr(rc);
            if (!is_valid_nested_key(&key)) return FRAME_BAD_KEY;
        }
        enum frame_error err = check_value(r, depth + 1);
        if (err != FRAME_OK) return err;
    }
    return FRAME_OK;
}

static int key_is(const struct msgread_item *key, const char *name)
{
    size_t n = strlen(name);
    return key->v.str.len == n && memcmp(key->v.str.ptr, name, n) == 0;
}

/* Reads the value of a top-level key, remembering `type` and `id`. */
static enum frame_error check_field(struct mpr *r, const struct msgread_item *key,
                                    struct frame_info *info)
{
    struct mpr at_value = *r;
    enum frame_error err = check_value(r, 2);
    if (err != FRAME_OK) return err;
    if (!key_is(key, "type") && !key_is(key, "id")) return FRAME_OK;
    struct msgread_item value;
    msgread_next(&at_value, &value); /* already validated by check_value */
    if (key_is(key, "type")) {
        if (value.type != MSGREAD_STR) return FRAME_BAD_TYPE;
        info->type = value.v.str.ptr;
        info->type_len = value.v.str.len;
        return FRAME_OK;
    }
    if (value.type != MSGREAD_UINT) return FRAME_BAD_ID;
    info->has_id = 1;
    info->id = value.v.u;
    return FRAME_OK;
}

enum frame_error frame_check(const uint8_t *body, size_t len, struct frame_info *info)
{
    memset(info, 0, sizeof *info);
    struct mpr r;
    msgread_init(&r, body, len);
    struct msgread_item map;
    int rc = msgread_next(&r, &map);
    if (rc != MSGREAD_OK) return from_mpr(rc);
    if (map.type != MSGREAD_MAP) return FRAME_NOT_MAP;

    enum frame_error first_error = FRAME_OK;
    for (uint32_t i = 0; i < map.v.count; i++) {
        struct msgread_item key;
        struct mpr at_key = r;
        rc = msgread_next(&r, &key);
        if (rc != MSGREAD_OK) return from_mpr(rc);
        if (key.type != MSGREAD_STR) {
            if (first_error == FRAME_OK) first_error = FRAME_BAD_KEY;
            /* walk a container key whole, so that its elements are not taken for pairs */
            r = at_key;
            enum frame_error err = check_value(&r, 2);
            if (err == FRAME_OK) err = check_value(&r, 2);
            if (err != FRAME_OK) return err;
            continue;
        }
        enum frame_error err = check_field(&r, &key, info);
        if (err == FRAME_BAD_TYPE || err == FRAME_BAD_ID) {
            /* the value was walked: go on so that an `id` later in the map is still found */
            if (first_error == FRAME_OK) first_error = err;
            continue;
        }
        if (err != FRAME_OK) return err;
    }
    if (first_error != FRAME_OK) return first_error;
    if (r.pos != r.end) return FRAME_TRAILING;
    if (info->type == NULL) return FRAME_NO_TYPE;
    return FRAME_OK;
}

const char *frame_error_text(enum frame_error err)
{
    switch (err) {
    case FRAME_OK: return "ok";
    case FRAME_NOT_MAP: return "frame body is not a map";
    case FRAME_TRUNCATED: return "truncated or oversized msgpack item";
    case FRAME_UNSUPPORTED: return "unsupported msgpack type (ext or reserved byte)";
    case FRAME_TRAILING: return "trailing bytes after the map";
    case FRAME_TOO_DEEP: return "containers nested deeper than 32";
    case FRAME_BAD_KEY: return "map key must be a string";
    case FRAME_NO_TYPE: return "missing 'type'";
    case FRAME_BAD_TYPE: return "'type' must be a string";
    case FRAME_BAD_ID: return "'id' must be a non-negative integer";
    }
    return "malformed frame";
}

int frame_get(const uint8_t *body, size_t len, const char *key, struct msgread_item *item)
{
    struct mpr r;
    msgread_init(&r, body, len);
    struct msgread_item map;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return 0;
    /* a repeated key's last value wins, as in frame_check and in the Lua table of the body */
    int found = 0;
    for (uint32_t i = 0; i < map.v.count; i++) {
        struct msgread_item k;
        if (msgread_next(&r, &k) != MSGREAD_OK) return 0;
        struct mpr at_value = r;
        if (k.type == MSGREAD_STR && key_is(&k, key)) found = msgread_next(&at_value, item) == MSGREAD_OK;
        if (msgread_skip(&r, FRAME_MAX_DEPTH) != MSGREAD_OK) return 0;
    }
    return found;
}

enum frame_split frame_split(const uint8_t *data, size_t len, uint32_t max_frame,
                             uint32_t *body_len)
{
    *body_len = 0;
    if (len < FRAME_HEADER_LEN) return FRAME_NEED_MORE;
    uint32_t n = frame_read_length(data);
    *body_len = n;
    if (n == 0) return FRAME_EMPTY;
    if (n > max_frame) return FRAME_OVERSIZE;
    return len - FRAME_HEADER_LEN >= n ? FRAME_READY : FRAME_NEED_MORE;
}
