/* fields: picks the top-level fields a handler needs out of a frame body in one pass. */
#include <string.h>

#include "frame.h"
#include "mp_internal.h"

static struct mp_field *wanted(struct mp_field *f, size_t n, const struct msgread_item *key)
{
    if (key->type != MSGREAD_STR) return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strlen(f[i].key);
        if (!f[i].found && key->v.str.len == klen && memcmp(key->v.str.ptr, f[i].key, klen) == 0)
            return &f[i];
    }
    return NULL;
}

void mp_fields_read(const uint8_t *body, size_t len, struct mp_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        f[i].found = 0;
    struct mpr r;
    msgread_init(&r, body, len);
    struct msgread_item map;
    if (msgread_next(&r, &map) != MSGREAD_OK || map.type != MSGREAD_MAP) return;
    for (uint32_t i = 0; i < map.v.count; i++) {
        struct msgread_item key;
        if (msgread_next(&r, &key) != MSGREAD_OK) return;
        struct mp_field *hit = wanted(f, n, &key);
        if (hit != NULL) {
            struct mpr at = r;
            if (msgread_next(&at, &hit->item) != MSGREAD_OK) return;
            hit->after = at;
            hit->found = 1;
        }
        if (msgread_skip(&r, FRAME_MAX_DEPTH) != MSGREAD_OK) return;
    }
}

const char *mp_field_cstr(struct mp_field *f)
{
    if (!f->found || (f->item.type != MSGREAD_STR && f->item.type != MSGREAD_BIN)) return NULL;
    uint8_t *p = (uint8_t *)f->item.v.str.ptr;
    p[f->item.v.str.len] = '\0';
    return (const char *)p;
}
