/* presence: an open-addressing hash of user -> session plus a dense list for iteration. */
#include "presence.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct presence_table {
    struct session **buckets; /* power of two, at most half full */
    size_t mask;
    struct session **online;  /* dense, for broadcast and listing */
    size_t count;
    size_t capacity;
};

static struct presence_table table;

static uint64_t hash_user(const char *user, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)user[i]) * 1099511628211ull;
    return h;
}

int presence_init(size_t max_sessions)
{
    size_t n = 16;
    while (n < max_sessions * 2) n <<= 1;
    table.buckets = calloc(n, sizeof *table.buckets);
    table.online = calloc(max_sessions, sizeof *table.online);
    table.mask = n - 1;
    table.capacity = max_sessions;
    table.count = 0;
    return table.buckets && table.online ? 0 : -1;
}

void presence_free(void)
{
    free(table.buckets);
    free(table.online);
    memset(&table, 0, sizeof table);
}

static int same_user(const struct session *s, const char *user, size_t len)
{
    return s->user_len == len && memcmp(s->user, user, len) == 0;
}

/* The bucket holding USER, or the empty bucket where it would go. */
static size_t find_bucket(const char *user, size_t len)
{
    size_t i = hash_user(user, len) & table.mask;
    while (table.buckets[i] != NULL && !same_user(table.buckets[i], user, len))
        i = (i + 1) & table.mask;
    return i;
}

struct session *presence_find(const char *user, size_t len)
{
    if (table.buckets == NULL) return NULL;
    return table.buckets[find_bucket(user, len)];
}

static void list_remove(struct session *s)
{
    struct session *last = table.online[--table.count];
    table.online[s->online_index] = last;
    last->online_index = s->online_index;
}

/* Deletes bucket I, shifting later entries of its probe chain back (no tombstones). */
static void delete_bucket(size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & table.mask;
        struct session *e = table.buckets[j];
        if (e == NULL) break;
        size_t home = hash_user(e->user, e->user_len) & table.mask;
        /* move e back into the hole when its home is not cyclically within (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            table.buckets[i] = e;
            i = j;
        }
    }
    table.buckets[i] = NULL;
}

struct session *presence_add(struct session *s)
{
    size_t i = find_bucket(s->user, s->user_len);
    struct session *old = table.buckets[i];
    if (old == s) return NULL;
    if (old != NULL) list_remove(old);
    table.buckets[i] = s;
    s->online_index = (uint32_t)table.count;
    table.online[table.count++] = s;
    return old;
}

void presence_remove(struct session *s)
{
    if (s->user_len == 0 || table.buckets == NULL) return;
    size_t i = find_bucket(s->user, s->user_len);
    if (table.buckets[i] != s) return;
    list_remove(s);
    delete_bucket(i);
}

size_t presence_count(void)
{
    return table.count;
}

struct session *presence_at(size_t i)
{
    return i < table.count ? table.online[i] : NULL;
}
