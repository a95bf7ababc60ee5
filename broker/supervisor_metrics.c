/* supervisor_metrics: /metrics and /healthz for the whole host. The workers' texts are merged
 * family by family, so that each family has one HELP and one TYPE line followed by the series
 * of every worker (the Prometheus text format wants a family's lines together). */
#include "supervisor_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "frame.h"
#include "msgread.h"
#include "reply.h"
#include "supervisor.h"
#include "supervisor_link.h"

#define SCRAPE_TIMEOUT 5.0 /* under http_header_timeout's default, which would close first */
#define NODE_LABEL_MAX 700

struct scrape {
    struct http_conn *conn;
    struct link_call *call;
    int metrics; /* /metrics, else /healthz */
};

struct family {
    char *name;
    char *help; /* the whole "# HELP" line, or NULL */
    char *type; /* the whole "# TYPE" line, or NULL */
    struct evbuffer *samples;
};

struct families {
    struct family *items;
    size_t count, cap;
};

/* ---- merging the workers' texts ---- */

static struct family *family_get(struct families *fs, const char *name, size_t len)
{
    for (size_t i = 0; i < fs->count; i++)
        if (strlen(fs->items[i].name) == len && memcmp(fs->items[i].name, name, len) == 0)
            return &fs->items[i];
    if (fs->count == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 64;
        struct family *grown = realloc(fs->items, cap * sizeof *grown);
        if (grown == NULL) return NULL;
        fs->items = grown;
        fs->cap = cap;
    }
    struct family *f = &fs->items[fs->count];
    *f = (struct family){.name = strndup(name, len), .samples = evbuffer_new()};
    if (f->name == NULL || f->samples == NULL) {
        free(f->name);
        if (f->samples) evbuffer_free(f->samples);
        return NULL;
    }
    fs->count++;
    return f;
}

static void families_free(struct families *fs)
{
    for (size_t i = 0; i < fs->count; i++) {
        free(fs->items[i].name);
        free(fs->items[i].help);
        free(fs->items[i].type);
        evbuffer_free(fs->items[i].samples);
    }
    free(fs->items);
}

/* "name{labels} value" as "name{node="NODE",labels} value". */
static void add_labelled(struct evbuffer *out, const char *line, const char *node)
{
    size_t name_len = strcspn(line, "{ ");
    if (line[name_len] == '{') {
        const char *rest = line + name_len + 1;
        evbuffer_add_printf(out, "%.*s{node=\"%s\"%s%s\n", (int)name_len, line, node,
                            *rest == '}' ? "" : ",", rest);
    } else {
        evbuffer_add_printf(out, "%.*s{node=\"%s\"}%s\n", (int)name_len, line, node,
                            line + name_len);
    }
}

/* "# HELP name ..." or "# TYPE name ...": the family it is about. */
static struct family *comment_family(struct families *fs, const char *line)
{
    const char *name = line + 7;
    return family_get(fs, name, strcspn(name, " "));
}

/* Adds one worker's text (NUL-terminated, modified) into FS under NODE. */
static void merge_text(struct families *fs, char *text, const char *node)
{
    struct family *current = NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        int help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
        if (help || type) {
            struct family *f = comment_family(fs, line);
            if (f == NULL) continue;
            char **slot = help ? &f->help : &f->type;
            if (*slot == NULL) *slot = strdup(line);
            if (type) current = f;
        } else if (line[0] != '#' && line[0] != '\0') {
            /* a sample belongs to the family of the TYPE line above it (x_bucket, x_sum...) */
            if (current == NULL) current = family_get(fs, line, strcspn(line, "{ "));
            if (current != NULL) add_labelled(current->samples, line, node);
        }
    }
}

/* NODE as a label value: backslash and double quote escaped. */
static void label_value(char *out, size_t size, const char *node)
{
    size_t n = 0;
    for (const char *p = node; *p != '\0' && n + 2 < size; p++) {
        if (*p == '"' || *p == '\\') out[n++] = '\\';
        out[n++] = *p;
    }
    out[n] = '\0';
}

static void merge_worker(struct families *fs, const struct link_reply *reply, int i)
{
    struct msgread_item item;
    if (reply->body == NULL || reply->code != 200 ||
        !frame_get(reply->body, reply->len, "metrics", &item) || item.type != MSGREAD_STR)
        return;
    char *text = strndup((const char *)item.v.str.ptr, item.v.str.len);
    if (text == NULL) return;
    char node[NODE_LABEL_MAX];
    label_value(node, sizeof node, supervisor_worker_id(i));
    merge_text(fs, text, node);
    free(text);
}

static void supervisor_families(struct evbuffer *out)
{
    int up = 0;
    for (int i = 0; i < supervisor_workers(); i++)
        up += link_is_up(i);
    evbuffer_add_printf(out,
                        "# HELP moonpost_supervisor_workers Worker processes configured.\n"
                        "# TYPE moonpost_supervisor_workers gauge\n"
                        "moonpost_supervisor_workers %d\n"
                        "# HELP moonpost_supervisor_workers_up Workers answering on their admin "
                        "socket.\n"
                        "# TYPE moonpost_supervisor_workers_up gauge\n"
                        "moonpost_supervisor_workers_up %d\n"
                        "# HELP moonpost_supervisor_worker_restarts_total Workers started again "
                        "after they died.\n"
                        "# TYPE moonpost_supervisor_worker_restarts_total counter\n"
                        "moonpost_supervisor_worker_restarts_total %llu\n",
                        supervisor_workers(), up, (unsigned long long)supervisor_restarts());
}

static void answer_metrics(struct http_conn *c, const struct link_reply *replies, int count)
{
    struct families fs = {0};
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) return http_reply_text(c, 500, "no memory");
    for (int i = 0; i < count; i++)
        merge_worker(&fs, &replies[i], i);
    for (size_t i = 0; i < fs.count; i++) {
        const struct family *f = &fs.items[i];
        if (f->help) evbuffer_add_printf(body, "%s\n", f->help);
        if (f->type) evbuffer_add_printf(body, "%s\n", f->type);
        evbuffer_add_buffer(body, f->samples);
    }
    supervisor_families(body);
    families_free(&fs);
    http_reply(c, 200, HTTP_METRICS_TYPE, body);
    evbuffer_free(body);
}

/* ---- /healthz ---- */

static void answer_health(struct http_conn *c, const struct link_reply *replies, int count)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) return http_reply_text(c, 500, "no memory");
    int healthy = 1;
    for (int i = 0; i < count; i++) {
        const struct link_reply *r = &replies[i];
        struct msgread_item ok, why;
        const char *id = supervisor_worker_id(i);
        if (r->body == NULL) {
            evbuffer_add_printf(body, "%s: %s\n", id,
                                supervisor_worker_running(i) ? "not answering" : "not running");
            healthy = 0;
        } else if (!frame_get(r->body, r->len, "healthy", &ok) || ok.type != MSGREAD_BOOL ||
                   !ok.v.boolean) {
            int has_why = frame_get(r->body, r->len, "health", &why) && why.type == MSGREAD_STR;
            evbuffer_add_printf(body, "%s: %.*s\n", id, has_why ? (int)why.v.str.len : 9,
                                has_why ? (const char *)why.v.str.ptr : "unhealthy");
            healthy = 0;
        } else {
            evbuffer_add_printf(body, "%s: ok\n", id);
        }
    }
    evbuffer_add_printf(body, "%s\n", healthy ? "ok" : "unhealthy");
    http_reply(c, healthy ? 200 : 503, "text/plain", body);
    evbuffer_free(body);
}

/* ---- the route ---- */

static void on_scraped(void *arg, const struct link_reply *replies, int count)
{
    struct scrape *s = arg;
    if (s->metrics)
        answer_metrics(s->conn, replies, count);
    else
        answer_health(s->conn, replies, count);
    free(s);
}

static void on_gone(void *arg)
{
    struct scrape *s = arg;
    link_call_cancel(s->call);
    free(s);
}

void supervisor_metrics_serve(struct http_conn *c, const char *path)
{
    int metrics = strcmp(path, "/metrics") == 0;
    if (!metrics && strcmp(path, "/healthz") != 0) return http_reply_text(c, 404, "not found");
    struct scrape *s = calloc(1, sizeof *s);
    struct codec_buf req;
    codec_buf_init(&req);
    msgpack_pack_map(&req.pk, 1);
    reply_pack_str(&req.pk, "type");
    reply_pack_str(&req.pk, metrics ? "admin.metrics" : "admin.health");
    if (s != NULL) {
        *s = (struct scrape){.conn = c, .metrics = metrics};
        s->call =
            link_call(-1, (const uint8_t *)req.sb.data, req.sb.size, SCRAPE_TIMEOUT, on_scraped, s);
    }
    codec_buf_free(&req);
    if (s == NULL || s->call == NULL) {
        free(s);
        return http_reply_text(c, 500, "no memory");
    }
    http_answer_later(c, on_gone, s);
}
