/* web_static: the web chat's files, held in memory and served by name. */
#include "web_static.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define WEB_FILES_MAX 64
#define WEB_FILE_MAX (4 << 20) /* bytes of one file */

struct web_file {
    char *name; /* "index.html": the path without its leading slash */
    const char *type;
    char *data;
    size_t len;
};

static struct {
    struct web_file files[WEB_FILES_MAX];
    size_t count;
} web;

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* Reads DIR/NAME into F. Returns 0, 1 when it is not a regular file, or -1. */
static int read_file(const char *dir, const char *name, struct web_file *f)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISREG(st.st_mode)) return 1;
    if (st.st_size > WEB_FILE_MAX) {
        log_error("web_root: %s is over %d bytes", path, WEB_FILE_MAX);
        return -1;
    }
    FILE *in = fopen(path, "rb");
    f->data = malloc((size_t)st.st_size + 1);
    f->name = strdup(name);
    size_t got = in && f->data ? fread(f->data, 1, (size_t)st.st_size, in) : 0;
    if (in) fclose(in);
    if (f->data == NULL || f->name == NULL || got != (size_t)st.st_size) {
        log_error("web_root: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    f->len = got;
    f->type = type_of(name);
    return 0;
}

int web_static_load(const char *dir)
{
    if (dir == NULL) return 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        log_error("web_root %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files */
        if (web.count == WEB_FILES_MAX) {
            log_error("web_root %s: more than %d files", dir, WEB_FILES_MAX);
            rc = -1;
            break;
        }
        struct web_file *f = &web.files[web.count];
        int r = read_file(dir, e->d_name, f);
        if (r == 0) web.count++;
        if (r < 0) {
            free(f->name);
            free(f->data);
            memset(f, 0, sizeof *f);
            rc = -1;
        }
    }
    closedir(d);
    if (rc == 0) log_info("web chat: %zu files from %s", web.count, dir);
    return rc;
}

void web_static_free(void)
{
    for (size_t i = 0; i < web.count; i++) {
        free(web.files[i].name);
        free(web.files[i].data);
    }
    memset(&web, 0, sizeof web);
}

void web_static_serve(struct http_conn *c, const char *path)
{
    size_t len = strcspn(path, "?#");
    if (path[0] != '/') return http_reply_text(c, 404, "not found");
    if (len == 1 && path[0] == '/') path = "/index.html", len = strlen(path);
    for (size_t i = 0; i < web.count; i++) {
        const struct web_file *f = &web.files[i];
        if (strlen(f->name) != len - 1 || strncmp(f->name, path + 1, len - 1) != 0) continue;
        struct evbuffer *body = evbuffer_new();
        if (body == NULL || evbuffer_add_reference(body, f->data, f->len, NULL, NULL) != 0) {
            if (body) evbuffer_free(body);
            return http_reply_text(c, 500, "no memory");
        }
        http_reply(c, 200, f->type, body);
        evbuffer_free(body);
        return;
    }
    http_reply_text(c, 404, "not found");
}
