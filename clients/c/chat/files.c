/* files: moonpost-chat's file transfer: /file USER PATH with a progress bar, /files (the files
 * received), /get FID [PATH]. A received file's name comes from another user: it is made safe
 * (mp_file_safe_name) and only ever joined to the download directory; an existing file is
 * replaced only after the user says yes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"
#include "term.h"

struct progress {
    const char *what;
    int last_percent;
};

/* A bar on one line, redrawn when the percentage moves. */
static void show_progress(mp_client *c, uint64_t done, uint64_t total, void *ud)
{
    (void)c;
    struct progress *p = ud;
    int percent = total ? (int)(done * 100 / total) : 100;
    if (percent == p->last_percent) return;
    p->last_percent = percent;
    char bar[31];
    int filled = percent * 30 / 100;
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    printf("\r%s [%s] %3d%% %.1f/%.1f MiB", p->what, bar, percent, done / 1048576.0,
           total / 1048576.0);
    if (percent == 100) printf("\n");
    fflush(stdout);
}

void chat_send_file(struct chat *ch, const char *to, const char *path)
{
    if (!chat_logged_in(ch)) return;
    char fid[MP_FID_LEN + 1];
    struct progress p = {"sending", -1};
    mp_err err = mp_file_send_path(ch->client, to, path, fid, show_progress, &p);
    if (p.last_percent >= 0 && p.last_percent < 100) printf("\n");
    if (err != MP_OK) {
        chat_report(ch, "send the file", err);
        if (fid[0]) term_print("(file %s: /file again later goes on from where it stopped)", fid);
        return;
    }
    term_print("file sent to %s (%s)", to, fid);
}

void chat_file_received(struct chat *ch, const mp_message *m)
{
    struct chat_file *f = &ch->files[ch->files_next];
    snprintf(f->fid, sizeof f->fid, "%s", m->file_fid);
    snprintf(f->from, sizeof f->from, "%s", m->from);
    mp_file_safe_name(m->file_name, f->name, sizeof f->name);
    f->size = m->file_size;
    ch->files_next = (ch->files_next + 1) % CHAT_FILES;
    if (ch->files_len < CHAT_FILES) ch->files_len++;
    term_print("* %s sent you a file: %s (%llu bytes); /get %s saves it", f->from, f->name,
               (unsigned long long)f->size, f->fid);
}

void chat_list_files(struct chat *ch)
{
    if (ch->files_len == 0) {
        term_print("no files received yet");
        return;
    }
    size_t first = (ch->files_next + CHAT_FILES - ch->files_len) % CHAT_FILES;
    for (size_t i = 0; i < ch->files_len; i++) {
        const struct chat_file *f = &ch->files[(first + i) % CHAT_FILES];
        term_print("%s  %-20s %10llu bytes  from %s", f->fid, f->name, (unsigned long long)f->size,
                   f->from);
    }
}

static const struct chat_file *find_file(struct chat *ch, const char *fid)
{
    for (size_t i = 0; i < ch->files_len; i++)
        if (strcmp(ch->files[i].fid, fid) == 0) return &ch->files[i];
    return NULL;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int chat_download_path(const char *dir, const char *arg, const char *name, char *out, size_t size)
{
    char safe[256];
    mp_file_safe_name(name, safe, sizeof safe);
    int n;
    if (arg == NULL || arg[0] == '\0')
        n = snprintf(out, size, "%s/%s", dir, safe);
    else if (is_dir(arg))
        n = snprintf(out, size, "%s/%s", arg, safe);
    else
        n = snprintf(out, size, "%s", arg); /* a path the user typed: the user's choice */
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void fetch(struct chat *ch, const char *fid, const char *path, int flags)
{
    struct progress p = {"receiving", -1};
    mp_err err = mp_file_fetch(ch->client, fid, path, flags, show_progress, &p);
    if (p.last_percent >= 0 && p.last_percent < 100) printf("\n");
    if (err != MP_OK)
        chat_report(ch, "get the file", err);
    else
        term_print("saved %s", path);
}

void chat_get_file(struct chat *ch, const char *fid, const char *arg)
{
    if (!chat_logged_in(ch)) return;
    mp_file_info info;
    const struct chat_file *known = find_file(ch, fid);
    const char *name = known ? known->name : NULL;
    if (name == NULL) { /* not announced in this session: ask the broker */
        mp_err err = mp_file_status(ch->client, fid, &info);
        if (err != MP_OK) {
            chat_report(ch, "get the file", err);
            return;
        }
        name = info.name;
    }
    if (chat_download_path(ch->download_dir, arg, name, ch->pending_path,
                           sizeof ch->pending_path) != 0) {
        term_print("get the file failed: the path is too long");
        return;
    }
    if (access(ch->pending_path, F_OK) == 0) {
        snprintf(ch->pending_fid, sizeof ch->pending_fid, "%s", fid);
        chat_set_state(ch, ST_CONFIRM_OVERWRITE);
        return;
    }
    fetch(ch, fid, ch->pending_path, 0);
}

void chat_confirm_overwrite(struct chat *ch, const char *answer)
{
    chat_set_state(ch, ST_CHAT);
    if (strcmp(answer, "y") == 0 || strcmp(answer, "yes") == 0)
        fetch(ch, ch->pending_fid, ch->pending_path, MP_FILE_OVERWRITE);
    else
        term_print("not saved: %s is left as it was", ch->pending_path);
}
