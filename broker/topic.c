/* topic: two chained hash tables, topic name -> its followers and session -> the topics it
 * follows, whose entries point at each other's positions, so that any subscription is removed
 * in constant time (swap with the last, fix the one moved). */
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "presence.h"

struct follower; /* a session that follows at least one topic */

/* A topic with at least one follower: who follows it, each with where this topic sits in the
 * follower's own list. */
struct topic {
    struct topic *next; /* hash chain */
    uint64_t hash;
    struct topic_entry {
        struct session *s; /* f->s, kept here for the fan-out's walk */
        struct follower *f;
        uint32_t at; /* index of this topic in f->topics */
    } * entries;
    uint32_t count, cap;
    uint8_t len;
    char name[];
};

struct follower {
    struct follower *next; /* hash chain */
    struct session *s;
    struct follower_entry {
        struct topic *t;
        uint32_t at; /* index of this follower in t->entries */
    } * topics;
    uint32_t count, cap;
};

/* A chained hash table of either kind: buckets, a power of two, grown at one entry per bucket. */
struct table {
    void **buckets;
    size_t mask, count;
};

static struct table topics, followers;

/* The frame of a topic message from the bus: its body with the length prefix put in front, once
 * per node. */
static struct {
    uint8_t *data;
    size_t cap;
} frame;

static uint64_t hash_name(const char *name, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_session(const struct session *s)
{
    return s->handle * 0x9E3779B97F4A7C15ull;
}

/* ---- the two tables ---- */

/* Chains are walked through the first member `next` of both struct kinds. */
struct chained {
    struct chained *next;
};

static uint64_t entry_hash(const struct table *tb, const struct chained *e)
{
    if (tb == &topics) return ((const struct topic *)(const void *)e)->hash;
    return hash_session(((const struct follower *)(const void *)e)->s);
}

static int table_grow(struct table *tb)
{
    size_t n = tb->buckets == NULL ? 64 : (tb->mask + 1) * 2;
    void **grown = calloc(n, sizeof *grown);
    if (grown == NULL) return -1;
    for (size_t i = 0; tb->buckets != NULL && i <= tb->mask; i++) {
        struct chained *e = tb->buckets[i];
        while (e != NULL) {
            struct chained *next = e->next;
            size_t b = entry_hash(tb, e) & (n - 1);
            e->next = grown[b];
            grown[b] = e;
            e = next;
        }
    }
    free(tb->buckets);
    tb->buckets = grown;
    tb->mask = n - 1;
    return 0;
}

static int table_insert(struct table *tb, void *entry, uint64_t hash)
{
    if ((tb->buckets == NULL || tb->count > tb->mask) && table_grow(tb) != 0 && tb->buckets == NULL)
        return -1; /* a table that cannot grow still takes entries in longer chains */
    struct chained *e = entry;
    e->next = tb->buckets[hash & tb->mask];
    tb->buckets[hash & tb->mask] = e;
    tb->count++;
    return 0;
}

static void table_remove(struct table *tb, void *entry, uint64_t hash)
{
    struct chained **p = (struct chained **)&tb->buckets[hash & tb->mask];
    while (*p != NULL && *p != entry)
        p = &(*p)->next;
    if (*p == NULL) return;
    *p = (*p)->next;
    tb->count--;
}

static void table_free(struct table *tb, void (*free_entry)(void *))
{
    for (size_t i = 0; tb->buckets != NULL && i <= tb->mask; i++) {
        struct chained *e = tb->buckets[i];
        while (e != NULL) {
            struct chained *next = e->next;
            free_entry(e);
            e = next;
        }
    }
    free(tb->buckets);
    memset(tb, 0, sizeof *tb);
}

static struct topic *find_topic(const char *name, size_t len, uint64_t hash)
{
    if (topics.buckets == NULL) return NULL;
    for (struct topic *t = topics.buckets[hash & topics.mask]; t != NULL; t = t->next)
        if (t->hash == hash && t->len == len && memcmp(t->name, name, len) == 0) return t;
    return NULL;
}

static struct follower *find_follower(const struct session *s)
{
    if (followers.buckets == NULL) return NULL;
    for (struct follower *f = followers.buckets[hash_session(s) & followers.mask]; f != NULL;
         f = f->next)
        if (f->s == s) return f;
    return NULL;
}

/* Makes room for one more element of SIZE bytes in *ARRAY of *CAP; 0 or -1. */
static int reserve(void **array, uint32_t count, uint32_t *cap, size_t size)
{
    if (count < *cap) return 0;
    uint32_t n = *cap == 0 ? 4 : *cap * 2;
    void *grown = realloc(*array, n * size);
    if (grown == NULL) return -1;
    *array = grown;
    *cap = n;
    return 0;
}

static void free_topic(void *p)
{
    struct topic *t = p;
    free(t->entries);
    free(t);
}

static void free_follower(void *p)
{
    struct follower *f = p;
    free(f->topics);
    free(f);
}

/* ---- subscribing ---- */

static struct topic *topic_get(const char *name, size_t len)
{
    uint64_t hash = hash_name(name, len);
    struct topic *t = find_topic(name, len, hash);
    if (t != NULL) return t;
    t = calloc(1, sizeof *t + len);
    if (t == NULL) return NULL;
    t->hash = hash;
    t->len = (uint8_t)len;
    memcpy(t->name, name, len);
    if (table_insert(&topics, t, hash) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

static struct follower *follower_get(struct session *s)
{
    struct follower *f = find_follower(s);
    if (f != NULL) return f;
    f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    f->s = s;
    if (table_insert(&followers, f, hash_session(s)) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

/* Frees T when nobody follows it, F when it follows nothing. */
static void drop_topic_if_empty(struct topic *t)
{
    if (t->count > 0) return;
    table_remove(&topics, t, t->hash);
    free_topic(t);
}

static void drop_follower_if_empty(struct follower *f)
{
    if (f->count > 0) return;
    table_remove(&followers, f, hash_session(f->s));
    free_follower(f);
}

int topic_subscribe(struct session *s, const char *topic, size_t len)
{
    if (len == 0 || len > TOPIC_NAME_MAX) return -1;
    struct topic *t = topic_get(topic, len);
    if (t == NULL) return -1;
    struct follower *f = follower_get(s);
    if (f == NULL) {
        drop_topic_if_empty(t);
        return -1;
    }
    for (uint32_t i = 0; i < f->count; i++)
        if (f->topics[i].t == t) return 0;
    if (reserve((void **)&t->entries, t->count, &t->cap, sizeof *t->entries) != 0 ||
        reserve((void **)&f->topics, f->count, &f->cap, sizeof *f->topics) != 0) {
        drop_topic_if_empty(t);
        drop_follower_if_empty(f);
        return -1;
    }
    t->entries[t->count] = (struct topic_entry){s, f, f->count};
    f->topics[f->count] = (struct follower_entry){t, t->count};
    t->count++;
    f->count++;
    return 1;
}

/* Removes subscription I of F (each side: the last entry fills the hole and is told so). */
static void remove_at(struct follower *f, uint32_t i)
{
    struct topic *t = f->topics[i].t;
    uint32_t j = f->topics[i].at;
    if (j != --t->count) {
        struct topic_entry moved = t->entries[t->count];
        t->entries[j] = moved;
        moved.f->topics[moved.at].at = j;
    }
    if (i != --f->count) {
        struct follower_entry moved = f->topics[f->count];
        f->topics[i] = moved;
        moved.t->entries[moved.at].at = i;
    }
    drop_topic_if_empty(t);
    drop_follower_if_empty(f);
}

int topic_unsubscribe(struct session *s, const char *topic, size_t len)
{
    struct follower *f = find_follower(s);
    struct topic *t =
        f != NULL && len <= TOPIC_NAME_MAX ? find_topic(topic, len, hash_name(topic, len)) : NULL;
    if (t == NULL) return 0;
    for (uint32_t i = 0; i < f->count; i++) {
        if (f->topics[i].t == t) {
            remove_at(f, i);
            return 1;
        }
    }
    return 0;
}

void topic_drop_session(struct session *s)
{
    struct follower *f = find_follower(s);
    if (f == NULL) return;
    /* from the end: the last removal frees F */
    for (uint32_t i = f->count; i-- > 0;)
        remove_at(f, i);
}

/* ---- fan-out ---- */

size_t topic_publish_local(const char *topic, size_t len, const void *frame, size_t frame_len,
                           const char *except, size_t except_len)
{
    struct topic *t = len <= TOPIC_NAME_MAX ? find_topic(topic, len, hash_name(topic, len)) : NULL;
    if (t == NULL) return 0;
    size_t sent = 0;
    /* the sender's session, if it is on this node: found once, then told apart by address */
    const struct session *skip = except_len != 0 ? presence_find(except, except_len) : NULL;
    /* a session dropped as a slow reader here is only freed on a later loop pass (session.c),
     * so T and its entries stay as they are during the walk */
    for (uint32_t i = 0; i < t->count; i++) {
        struct session *s = t->entries[i].s;
        if (s == skip) continue;
        session_send_bytes(s, frame, frame_len);
        sent++;
    }
    return sent;
}

size_t topic_header(uint8_t *out, const char *topic, size_t len, const char *except,
                    size_t except_len)
{
    if (len == 0 || len > TOPIC_NAME_MAX || except_len > SESSION_USER_MAX) return 0;
    out[0] = TOPIC_KIND;
    out[1] = (uint8_t)len;
    memcpy(out + 2, topic, len);
    out[2 + len] = (uint8_t)except_len;
    memcpy(out + 3 + len, except, except_len);
    return 3 + len + except_len;
}

void topic_on_bus(const char *topic, size_t len, const uint8_t *rest, size_t rest_len)
{
    if (rest_len < 1 || rest_len < 1 + (size_t)rest[0]) return;
    size_t except_len = rest[0];
    const uint8_t *body = rest + 1 + except_len;
    size_t body_len = rest_len - 1 - except_len;
    if (body_len == 0 || body_len > UINT32_MAX || topic_subscriber_count(topic, len) == 0) return;
    if (FRAME_HEADER_LEN + body_len > frame.cap) {
        size_t cap = FRAME_HEADER_LEN + body_len < 4096 ? 4096 : 2 * (FRAME_HEADER_LEN + body_len);
        uint8_t *grown = realloc(frame.data, cap);
        if (grown == NULL) return;
        frame.data = grown;
        frame.cap = cap;
    }
    frame_write_length(frame.data, (uint32_t)body_len);
    memcpy(frame.data + FRAME_HEADER_LEN, body, body_len);
    topic_publish_local(topic, len, frame.data, FRAME_HEADER_LEN + body_len, (const char *)rest + 1,
                        except_len);
}

size_t topic_follow_header(uint8_t *out, const struct session *s)
{
    out[0] = TOPIC_FOLLOW_KIND;
    out[1] = 8;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(s->handle >> (56 - 8 * i));
    out[10] = s->user_len;
    memcpy(out + 11, s->user, s->user_len);
    return 11 + (size_t)s->user_len;
}

void topic_on_follow(const char *handle, size_t handle_len, const uint8_t *rest, size_t rest_len)
{
    if (handle_len != 8 || rest_len < 1 || rest_len < 1 + (size_t)rest[0]) return;
    session_handle h = 0;
    for (int i = 0; i < 8; i++)
        h = h << 8 | (uint8_t)handle[i];
    struct session *s = session_get(h);
    size_t user_len = rest[0];
    /* a session that logged out or in as someone else meanwhile follows nothing */
    if (s == NULL || s->state != SESSION_AUTHENTICATED || s->user_len != user_len ||
        memcmp(s->user, rest + 1, user_len) != 0)
        return;
    for (size_t at = 1 + user_len; at < rest_len && at + 1 + rest[at] <= rest_len;
         at += 1 + (size_t)rest[at])
        if (rest[at] > 0) topic_subscribe(s, (const char *)rest + at + 1, rest[at]);
}

/* ---- counts and lifetime ---- */

size_t topic_subscriber_count(const char *topic, size_t len)
{
    struct topic *t = len <= TOPIC_NAME_MAX ? find_topic(topic, len, hash_name(topic, len)) : NULL;
    return t != NULL ? t->count : 0;
}

size_t topic_session_count(const struct session *s)
{
    struct follower *f = find_follower(s);
    return f != NULL ? f->count : 0;
}

size_t topic_count(void)
{
    return topics.count;
}

static void on_session_event(void *state, struct session *s, enum session_event event)
{
    (void)state;
    if (event == SESSION_CLOSED) topic_drop_session(s);
}

int topic_start(void)
{
    return session_subscribe(on_session_event, NULL);
}

void topic_stop(void)
{
    table_free(&topics, free_topic);
    table_free(&followers, free_follower);
    free(frame.data);
    memset(&frame, 0, sizeof frame);
}
