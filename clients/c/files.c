/* files: file transfer (docs/protocol.md, "File transfer"): an upload from a buffer or a path
 * in chunks, a window of them in flight, going on after a reconnect from where file.status
 * says the broker stopped; a download to a path; and the name sanitizer for received files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp_internal.h"

#define WINDOW 8          /* chunks (or reads) in flight */
#define RECONNECTS 3      /* reconnects one upload or download may make */
#define READ_MAX 65536u   /* bytes per file.get when the broker's chunk_max is larger */
#define BUSY_PAUSE_MS 250 /* after a 429 (the broker's request_rate): wait, then go on */

/* Where the bytes of an upload come from: a buffer, or a file read at offsets. */
struct source {
    const uint8_t *buf;
    int fd;
    uint64_t size;
};

static int source_read(const struct source *s, uint64_t off, uint8_t *tmp, size_t n,
                       const uint8_t **out)
{
    if (s->buf != NULL) {
        *out = s->buf + off;
        return 0;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(s->fd, tmp + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    *out = tmp;
    return 0;
}

/* Requests of a window in flight, and what their replies said. */
struct window {
    mp_client *c;
    int inflight;
    int failed; /* a request failed: send no more, let the others come back */
    mp_err err; /* the first failure */
    int code;
    char why[256];
    uint64_t received; /* the highest `received` a reply carried */
    int have_received;
    /* downloads */
    int fd;
    uint64_t done;   /* bytes written */
    uint32_t length; /* bytes per piece */
    uint8_t *pieces; /* per piece: 1 once written */
};

struct slot {
    struct window *w;
    size_t index; /* of the piece: bytes index * length, up to length of them */
};

static void window_fail(struct window *w, mp_err err, const mp_reply *r)
{
    if (w->failed) return;
    w->failed = 1;
    w->err = err;
    w->code = r ? mp_reply_code(r) : mp_client_code(w->c);
    const char *text = NULL;
    size_t len = 0;
    if (r == NULL || !mp_reply_str(r, "error", &text, &len)) {
        text = mp_client_errmsg(w->c);
        len = strlen(text);
    }
    if (len >= sizeof w->why) len = sizeof w->why - 1;
    memcpy(w->why, text, len);
    w->why[len] = '\0';
}

static void note_received(struct window *w, const mp_reply *r)
{
    uint64_t received;
    if (r != NULL && mp_reply_uint(r, "received", &received) &&
        (!w->have_received || received > w->received)) {
        w->received = received;
        w->have_received = 1;
    }
}

static void on_chunk(mp_client *c, mp_err err, const mp_reply *r, void *ud)
{
    struct window *w = ud;
    w->inflight--;
    note_received(w, r);
    if (err != MP_OK) window_fail(w, err, r);
    mp_client_stop(c);
}

static mp_err send_chunk(struct window *w, const char *fid, uint64_t offset, const uint8_t *data,
                         size_t n)
{
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(w->c, &pk, "file.chunk", 3, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "fid");
    mp_pack_cstr(&pk, fid);
    mp_pack_cstr(&pk, "offset");
    msgpack_pack_uint64(&pk, offset);
    mp_pack_cstr(&pk, "data");
    msgpack_pack_bin_with_body(&pk, data, n);
    err = mp_finish_async(w->c, id, on_chunk, w);
    if (err == MP_OK) w->inflight++;
    return err;
}

/* Waits BUSY_PAUSE_MS, serving the connection meanwhile. */
static mp_err wait_busy(mp_client *c)
{
    int64_t until = mp_now_ms() + BUSY_PAUSE_MS;
    mp_err err = MP_OK;
    for (int64_t left = BUSY_PAUSE_MS; err == MP_OK && left > 0; left = until - mp_now_ms())
        err = mp_client_run(c, (int)left);
    return err;
}

/* Sends SRC from START in chunks of CHUNK_MAX until the broker has it all. A 409 (another
 * connection moved the upload on) rewinds to the broker's `received`, and so does a 429 (the
 * broker's request_rate) after a pause. Returns MP_OK, the
 * broker's error (MP_ERR_SERVER), or the connection's. */
static mp_err upload_from(mp_client *c, const char *fid, const struct source *src, uint64_t start,
                          uint32_t chunk_max, mp_progress_fn progress, void *ud)
{
    uint8_t *tmp = src->buf ? NULL : malloc(chunk_max);
    if (src->buf == NULL && tmp == NULL) return mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    struct window w = {.c = c, .received = start, .have_received = 1};
    uint64_t sent = start;
    mp_err err = MP_OK;
    while (err == MP_OK && (w.received < src->size || w.inflight > 0)) {
        while (!w.failed && w.inflight < WINDOW && sent < src->size) {
            size_t n = src->size - sent < chunk_max ? (size_t)(src->size - sent) : chunk_max;
            const uint8_t *data;
            if (source_read(src, sent, tmp, n, &data) != 0) {
                err = mp_fail(c, MP_ERR_IO, 0, "cannot read the file: %s", strerror(errno));
                break;
            }
            err = send_chunk(&w, fid, sent, data, n);
            if (err != MP_OK) break;
            sent += n;
        }
        if (err != MP_OK) break;
        err = mp_client_run(c, c->timeout_ms);
        if (progress) progress(c, w.received, src->size, ud);
        if (err == MP_OK && w.failed && w.inflight == 0) {
            if (w.code != 409 && w.code != 429) {
                err = mp_fail(c, w.err, w.code, "%s", w.why);
                break;
            }
            if (w.code == 429) err = wait_busy(c);
            sent = w.received; /* resume where the broker is */
            w.failed = 0;
        }
    }
    free(tmp);
    if (err == MP_OK && w.failed) err = mp_fail(c, w.err, w.code, "%s", w.why);
    return err;
}

static int copy_field(const mp_reply *r, const char *key, char *out, size_t size)
{
    const char *p;
    size_t len;
    if (!mp_reply_str(r, key, &p, &len) || len >= size) return 0;
    memcpy(out, p, len);
    out[len] = '\0';
    return 1;
}

static int valid_fid(const char *fid)
{
    if (fid == NULL || strlen(fid) != MP_FID_LEN) return 0;
    for (const char *p = fid; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

mp_err mp_file_status(mp_client *c, const char *fid, mp_file_info *out)
{
    if (c == NULL || out == NULL) return MP_ERR_INVAL;
    memset(out, 0, sizeof *out);
    if (!valid_fid(fid)) return mp_fail(c, MP_ERR_INVAL, 0, "not a file id");
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "file.status", 1, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "fid");
    mp_pack_cstr(&pk, fid);
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err != MP_OK) {
        mp_reply_free(r);
        return err;
    }
    uint64_t chunk_max = 0;
    int ok = copy_field(r, "name", out->name, sizeof out->name) &&
             copy_field(r, "from", out->from, sizeof out->from) &&
             copy_field(r, "to", out->to, sizeof out->to) && mp_reply_uint(r, "size", &out->size) &&
             mp_reply_uint(r, "received", &out->received) &&
             mp_reply_bool(r, "complete", &out->complete);
    if (mp_reply_uint(r, "chunk_max", &chunk_max) && chunk_max > 0 && chunk_max <= UINT32_MAX)
        out->chunk_max = (uint32_t)chunk_max;
    mp_reply_free(r);
    if (!ok) return mp_fail(c, MP_ERR_PROTOCOL, 0, "file.status reply without its fields");
    return MP_OK;
}

static int transient(mp_err err)
{
    return err == MP_ERR_CLOSED || err == MP_ERR_TIMEOUT || err == MP_ERR_IO;
}

/* Uploads SRC to FID from where the broker stands (file.status), reconnecting (with the
 * session's token) when the connection ends, up to RECONNECTS times. KNOWN_START and
 * CHUNK_MAX, when CHUNK_MAX is not 0, skip the first status (a fresh offer). */
static mp_err upload(mp_client *c, const char *fid, const struct source *src, uint64_t known_start,
                     uint32_t chunk_max, mp_progress_fn progress, void *ud)
{
    for (int reconnects = 0;; reconnects++) {
        uint64_t start = known_start;
        mp_err err = MP_OK;
        if (chunk_max == 0) {
            mp_file_info info;
            err = mp_file_status(c, fid, &info);
            if (err == MP_OK && info.size != src->size)
                return mp_fail(c, MP_ERR_INVAL, 0, "the file has %llu bytes, the offer said %llu",
                               (unsigned long long)src->size, (unsigned long long)info.size);
            if (err == MP_OK && info.complete) {
                if (progress) progress(c, info.size, info.size, ud);
                return MP_OK;
            }
            if (err == MP_OK && info.received == info.size)
                return mp_fail(c, MP_ERR_SERVER, 503, "the file is being delivered, ask later");
            start = info.received;
            chunk_max = info.chunk_max ? info.chunk_max : 1024;
        }
        if (err == MP_OK) err = upload_from(c, fid, src, start, chunk_max, progress, ud);
        if (err == MP_OK || !transient(err) || reconnects >= RECONNECTS) return err;
        chunk_max = 0; /* ask the broker again after the reconnect */
        err = mp_client_reconnect(c, c->timeout_ms, NULL);
        if (err != MP_OK) return err;
    }
}

static mp_err offer_and_upload(mp_client *c, const char *to, const char *name,
                               const struct source *src, char fid[MP_FID_LEN + 1],
                               mp_progress_fn progress, void *ud)
{
    if (c == NULL) return MP_ERR_INVAL;
    if (to == NULL || name == NULL || fid == NULL || name[0] == '\0' || strlen(name) > 255 ||
        strchr(name, '/') != NULL || src->size == 0)
        return mp_fail(c, MP_ERR_INVAL, 0,
                       "a file needs a recipient, a name (1-255 bytes, "
                       "no /) and at least one byte");
    fid[0] = '\0';
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(c, &pk, "file.offer", 3, 1, &id);
    if (err != MP_OK) return err;
    mp_pack_cstr(&pk, "to");
    mp_pack_cstr(&pk, to);
    mp_pack_cstr(&pk, "name");
    mp_pack_cstr(&pk, name);
    mp_pack_cstr(&pk, "size");
    msgpack_pack_uint64(&pk, src->size);
    mp_reply *r = NULL;
    err = mp_finish_blocking(c, id, &r);
    if (err != MP_OK) {
        mp_reply_free(r);
        return err;
    }
    uint64_t chunk_max = 0;
    int ok = copy_field(r, "fid", fid, MP_FID_LEN + 1) && valid_fid(fid) &&
             mp_reply_uint(r, "chunk_max", &chunk_max) && chunk_max > 0 && chunk_max <= UINT32_MAX;
    mp_reply_free(r);
    if (!ok) {
        fid[0] = '\0';
        return mp_fail(c, MP_ERR_PROTOCOL, 0, "file.offer reply without fid and chunk_max");
    }
    return upload(c, fid, src, 0, (uint32_t)chunk_max, progress, ud);
}

mp_err mp_file_send(mp_client *c, const char *to, const char *name, const void *data, size_t len,
                    char fid[MP_FID_LEN + 1], mp_progress_fn progress, void *ud)
{
    if (c != NULL && data == NULL) return mp_fail(c, MP_ERR_INVAL, 0, "no data");
    struct source src = {.buf = data, .fd = -1, .size = len};
    return offer_and_upload(c, to, name, &src, fid, progress, ud);
}

/* Opens PATH for reading as a source; the name a file gets is the last part of PATH. */
static mp_err open_source(mp_client *c, const char *path, struct source *src)
{
    if (path == NULL) return mp_fail(c, MP_ERR_INVAL, 0, "no path");
    src->buf = NULL;
    src->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (src->fd < 0 || fstat(src->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = src->fd < 0 ? errno : EINVAL;
        if (src->fd >= 0) close(src->fd);
        src->fd = -1;
        return mp_fail(c, MP_ERR_IO, 0, "cannot read %s: %s", path, strerror(e));
    }
    src->size = (uint64_t)st.st_size;
    return MP_OK;
}

mp_err mp_file_send_path(mp_client *c, const char *to, const char *path, char fid[MP_FID_LEN + 1],
                         mp_progress_fn progress, void *ud)
{
    if (c == NULL) return MP_ERR_INVAL;
    struct source src = {.fd = -1};
    mp_err err = open_source(c, path, &src);
    if (err != MP_OK) return err;
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    err = offer_and_upload(c, to, name, &src, fid, progress, ud);
    if (src.fd >= 0) close(src.fd);
    return err;
}

mp_err mp_file_resume(mp_client *c, const char *fid, const void *data, size_t len,
                      mp_progress_fn progress, void *ud)
{
    if (c == NULL) return MP_ERR_INVAL;
    if (!valid_fid(fid) || data == NULL) return mp_fail(c, MP_ERR_INVAL, 0, "no file id or data");
    struct source src = {.buf = data, .fd = -1, .size = len};
    return upload(c, fid, &src, 0, 0, progress, ud);
}

mp_err mp_file_resume_path(mp_client *c, const char *fid, const char *path, mp_progress_fn progress,
                           void *ud)
{
    if (c == NULL) return MP_ERR_INVAL;
    if (!valid_fid(fid)) return mp_fail(c, MP_ERR_INVAL, 0, "not a file id");
    struct source src = {.fd = -1};
    mp_err err = open_source(c, path, &src);
    if (err != MP_OK) return err;
    err = upload(c, fid, &src, 0, 0, progress, ud);
    if (src.fd >= 0) close(src.fd);
    return err;
}

/* ---- download ---- */

static void on_read(mp_client *c, mp_err err, const mp_reply *r, void *ud)
{
    struct slot *s = ud;
    struct window *w = s->w;
    w->inflight--;
    const char *data;
    size_t len;
    if (err == MP_OK && !mp_reply_str(r, "data", &data, &len)) err = MP_ERR_PROTOCOL;
    if (err != MP_OK) {
        window_fail(w, err, r);
    } else {
        uint64_t offset = (uint64_t)s->index * w->length;
        size_t put = 0;
        while (put < len) {
            ssize_t n = pwrite(w->fd, data + put, len - put, (off_t)(offset + put));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            put += (size_t)n;
        }
        if (put < len) {
            snprintf(w->why, sizeof w->why, "cannot write: %s", strerror(errno));
            w->failed = 1;
            w->err = MP_ERR_IO;
            w->code = 0;
        } else if (!w->pieces[s->index]) {
            w->pieces[s->index] = 1;
            w->done += len;
        }
    }
    free(s);
    mp_client_stop(c);
}

static mp_err send_read(struct window *w, const char *fid, size_t index, uint32_t length)
{
    struct slot *s = malloc(sizeof *s);
    if (s == NULL) return mp_fail(w->c, MP_ERR_NOMEM, 0, "out of memory");
    s->w = w;
    s->index = index;
    msgpack_packer pk;
    uint64_t id = 0;
    mp_err err = mp_start(w->c, &pk, "file.get", 3, 1, &id);
    if (err == MP_OK) {
        mp_pack_cstr(&pk, "fid");
        mp_pack_cstr(&pk, fid);
        mp_pack_cstr(&pk, "offset");
        msgpack_pack_uint64(&pk, (uint64_t)index * w->length);
        mp_pack_cstr(&pk, "length");
        msgpack_pack_uint32(&pk, length);
        err = mp_finish_async(w->c, id, on_read, s);
    }
    if (err != MP_OK) {
        free(s);
        return err;
    }
    w->inflight++;
    return MP_OK;
}

/* Reads the pieces of FID (SIZE bytes, in pieces of W->length) not written yet into W->fd,
 * WINDOW reads in flight; after a 429 (the broker's request_rate) it pauses and asks again for
 * what is missing. */
static mp_err download(mp_client *c, const char *fid, struct window *w, uint64_t size,
                       mp_progress_fn progress, void *ud)
{
    if (w->pieces == NULL || w->length == 0) return mp_fail(c, MP_ERR_INVAL, 0, "no pieces");
    size_t count = (size_t)((size + w->length - 1) / w->length), next = 0;
    mp_err err = MP_OK;
    while (err == MP_OK && (w->done < size || w->inflight > 0)) {
        while (!w->failed && w->inflight < WINDOW && next < count) {
            if (w->pieces[next]) {
                next++;
                continue;
            }
            uint64_t offset = (uint64_t)next * w->length;
            uint32_t n = size - offset < w->length ? (uint32_t)(size - offset) : w->length;
            err = send_read(w, fid, next++, n);
            if (err != MP_OK) break;
        }
        if (err != MP_OK) break;
        if (w->inflight == 0 && !w->failed && next >= count) break; /* cannot happen */
        err = mp_client_run(c, c->timeout_ms);
        if (progress) progress(c, w->done, size, ud);
        if (err == MP_OK && w->failed && w->inflight == 0) {
            if (w->code != 429) break;
            err = wait_busy(c);
            w->failed = 0;
            next = 0; /* ask again for what is missing */
        }
    }
    if (err == MP_OK && w->failed) err = mp_fail(c, w->err, w->code, "%s", w->why);
    if (err == MP_OK && w->done < size) err = mp_fail(c, MP_ERR_PROTOCOL, 0, "the file is short");
    return err;
}

mp_err mp_file_fetch(mp_client *c, const char *fid, const char *path, int flags,
                     mp_progress_fn progress, void *ud)
{
    if (c == NULL) return MP_ERR_INVAL;
    if (!valid_fid(fid) || path == NULL) return mp_fail(c, MP_ERR_INVAL, 0, "no file id or path");
    mp_file_info info;
    mp_err err = mp_file_status(c, fid, &info);
    if (err != MP_OK) return err;
    if (!info.complete) return mp_fail(c, MP_ERR_SERVER, 409, "the file is not complete yet");
    int mode = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    mode |= (flags & MP_FILE_OVERWRITE) ? O_TRUNC : O_EXCL;
    int fd = open(path, mode, 0644);
    if (fd < 0) {
        if (errno == EEXIST) return mp_fail(c, MP_ERR_INVAL, 0, "%s exists", path);
        return mp_fail(c, MP_ERR_IO, 0, "cannot create %s: %s", path, strerror(errno));
    }
    struct window w = {.c = c, .fd = fd};
    w.length = info.chunk_max && info.chunk_max < READ_MAX ? info.chunk_max : READ_MAX;
    w.pieces = calloc((size_t)((info.size + w.length - 1) / w.length) + 1, 1);
    if (w.pieces == NULL) err = mp_fail(c, MP_ERR_NOMEM, 0, "out of memory");
    for (int reconnects = 0; err == MP_OK; reconnects++) {
        err = download(c, fid, &w, info.size, progress, ud);
        if (err == MP_OK || !transient(err) || reconnects >= RECONNECTS) break;
        w.failed = 0;
        w.inflight = 0;
        err = mp_client_reconnect(c, c->timeout_ms, NULL);
    }
    free(w.pieces);
    if (close(fd) != 0 && err == MP_OK)
        err = mp_fail(c, MP_ERR_IO, 0, "cannot write %s: %s", path, strerror(errno));
    if (err != MP_OK) unlink(path);
    return err;
}

/* ---- names from other users ---- */

size_t mp_file_safe_name(const char *name, char *out, size_t size)
{
    if (out == NULL || size == 0) return 0;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p && n + 1 < size;
         p++) {
        if (*p < 0x20 || *p == 0x7f) continue; /* control characters: dropped */
        if (*p == '.' && n == 0) continue;     /* no "..", no hidden file */
        out[n++] = (*p == '/' || *p == '\\') ? '_' : (char)*p;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '.'))
        n--;
    if (n == 0) {
        static const char fallback[] = "file";
        n = sizeof fallback - 1 < size - 1 ? sizeof fallback - 1 : size - 1;
        memcpy(out, fallback, n);
    }
    out[n] = '\0';
    return n;
}
