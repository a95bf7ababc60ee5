/* plugin_value: msgread items converted to the plugin API's mp_value; an array or a map comes
 * with an mp_reader over its elements, found by skipping the whole container once. */
#include "plugin_value.h"

#include <string.h>

#include "msgread.h"

static void convert_scalar(const struct msgread_item *item, mp_value *out)
{
    switch (item->type) {
    case MSGREAD_NIL:
        out->type = MP_NIL;
        break;
    case MSGREAD_BOOL:
        out->type = MP_BOOL, out->v.boolean = item->v.boolean;
        break;
    case MSGREAD_INT:
        out->type = MP_INT, out->v.i = item->v.i;
        break;
    case MSGREAD_UINT:
        out->type = MP_UINT, out->v.u = item->v.u;
        break;
    case MSGREAD_FLOAT:
        out->type = MP_FLOAT, out->v.f = item->v.f;
        break;
    case MSGREAD_STR:
    case MSGREAD_BIN:
        out->type = item->type == MSGREAD_STR ? MP_STR : MP_BIN;
        out->v.str.ptr = (const char *)item->v.str.ptr;
        out->v.str.len = item->v.str.len;
        break;
    case MSGREAD_ARRAY:
    case MSGREAD_MAP:
        out->type = item->type == MSGREAD_ARRAY ? MP_ARRAY : MP_MAP;
        out->v.count = item->v.count;
        break;
    }
}

int plugin_value_read(mp_reader *r, mp_value *out)
{
    if (r->pos == NULL || r->pos >= r->end) return 0;
    struct mpr m;
    msgread_init(&m, r->pos, (size_t)(r->end - r->pos));
    struct msgread_item item;
    if (msgread_next(&m, &item) != MSGREAD_OK) {
        r->pos = r->end;
        return 0;
    }
    memset(out, 0, sizeof *out);
    convert_scalar(&item, out);
    if (item.type == MSGREAD_ARRAY || item.type == MSGREAD_MAP) {
        const uint8_t *items = m.pos;
        msgread_init(&m, r->pos, (size_t)(r->end - r->pos)); /* again, as one whole value */
        if (msgread_skip(&m, PLUGIN_VALUE_MAX_DEPTH) != MSGREAD_OK) {
            r->pos = r->end;
            return 0;
        }
        out->items.pos = items;
        out->items.end = m.pos;
    }
    r->pos = m.pos;
    return 1;
}

int plugin_value_field(const uint8_t *body, size_t len, const char *key, mp_value *out)
{
    if (body == NULL) return 0;
    struct mpr m;
    msgread_init(&m, body, len);
    struct msgread_item map, k;
    if (msgread_next(&m, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return 0;
    size_t key_len = strlen(key);
    const uint8_t *found = NULL; /* a repeated key's last value wins, as in frame_get */
    for (uint32_t i = 0; i < map.v.count; i++) {
        if (msgread_next(&m, &k) != MSGREAD_OK) return 0;
        if (k.type == MSGREAD_STR && k.v.str.len == key_len &&
            memcmp(k.v.str.ptr, key, key_len) == 0)
            found = m.pos;
        if (msgread_skip(&m, PLUGIN_VALUE_MAX_DEPTH) != MSGREAD_OK) return 0;
    }
    if (found == NULL) return 0;
    mp_reader value = {found, m.end};
    return plugin_value_read(&value, out);
}
