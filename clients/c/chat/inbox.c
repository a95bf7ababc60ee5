/* inbox: pushed messages, printed as they arrive and kept for "show received messages". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "term.h"

/* Message text safe for a terminal: control characters (escape sequences!) become '?'. */
static char *printable_body(const void *body, size_t len, int is_bin)
{
    if (is_bin) {
        char *s = malloc(48);
        if (s) snprintf(s, 48, "(%zu bytes of binary data)", len);
        return s;
    }
    char *s = malloc(len + 1);
    if (s == NULL) return NULL;
    const unsigned char *p = body;
    for (size_t i = 0; i < len; i++)
        s[i] = p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
    s[len] = '\0';
    return s;
}

static char *printable(const mp_message *m)
{
    return printable_body(m->body, m->body_len, m->body_is_bin);
}

static void clock_text(int64_t ts_ms, char *buf, size_t len)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;
    if (ts_ms <= 0 || localtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "--:--");
        return;
    }
    strftime(buf, len, "%H:%M", &tm);
}

static void keep(struct chat *ch, const mp_message *m, int is_broadcast, char *text)
{
    struct inbox_entry *e = &ch->inbox[ch->inbox_next];
    free(e->text);
    e->ts = m->ts;
    e->is_broadcast = is_broadcast;
    e->offline = m->offline;
    snprintf(e->from, sizeof e->from, "%s", m->from);
    e->text = text;
    ch->inbox_next = (ch->inbox_next + 1) % CHAT_INBOX;
    if (ch->inbox_len < CHAT_INBOX) ch->inbox_len++;
}

static void print_entry(const struct inbox_entry *e)
{
    char when[16];
    clock_text(e->ts, when, sizeof when);
    term_print("%s %s %s: %s", when,
               e->is_broadcast ? "[all]"
               : e->offline    ? "[private, while away]"
                               : "[private]",
               e->from, e->text ? e->text : "(out of memory)");
}

static void on_msg(mp_client *c, const mp_message *m, void *ud)
{
    (void)c;
    struct chat *ch = ud;
    if (m->file_fid != NULL) {
        chat_file_received(ch, m);
        return;
    }
    keep(ch, m, 0, printable(m));
    print_entry(&ch->inbox[(ch->inbox_next + CHAT_INBOX - 1) % CHAT_INBOX]);
}

static void on_broadcast(mp_client *c, const mp_message *m, void *ud)
{
    (void)c;
    struct chat *ch = ud;
    keep(ch, m, 1, printable(m));
    print_entry(&ch->inbox[(ch->inbox_next + CHAT_INBOX - 1) % CHAT_INBOX]);
}

static void on_presence(mp_client *c, const char *user, int online, void *ud)
{
    (void)c, (void)ud;
    term_print("* %s %s", user, online ? "is online" : "went offline");
}

static void on_bye(mp_client *c, int code, const char *error, void *ud)
{
    (void)c;
    struct chat *ch = ud;
    if (ch->state < ST_CHAT && code == 408) return; /* an idle connection before login */
    term_print("* the broker closed the connection: %s (%d: %s)", mp_code_text(code), code, error);
}

static void on_error(mp_client *c, int code, const char *error, void *ud)
{
    (void)c, (void)ud;
    term_print("* error: %s (%d: %s)", mp_code_text(code), code, error);
}

void chat_print_room_msg(const mp_room_msg *m)
{
    char when[16];
    clock_text(m->ts, when, sizeof when);
    char *text = printable_body(m->body, m->body_len, m->body_is_bin);
    term_print("%s [#%s] %s: %s", when, m->room, m->from, text ? text : "(out of memory)");
    free(text);
}

static void on_room_msg(mp_client *c, const mp_room_msg *m, void *ud)
{
    (void)c;
    chat_room_pushed(ud, m);
}

const mp_callbacks chat_callbacks = {on_msg,   on_broadcast, on_presence,
                                     on_bye,   on_error,     on_room_msg};

void chat_show_inbox(struct chat *ch)
{
    if (ch->inbox_len == 0) {
        term_print("no messages received yet");
        return;
    }
    term_print("-- the last %zu message(s) --", ch->inbox_len);
    size_t first = (ch->inbox_next + CHAT_INBOX - ch->inbox_len) % CHAT_INBOX;
    for (size_t i = 0; i < ch->inbox_len; i++)
        print_entry(&ch->inbox[(first + i) % CHAT_INBOX]);
}

void chat_inbox_free(struct chat *ch)
{
    for (size_t i = 0; i < CHAT_INBOX; i++)
        free(ch->inbox[i].text);
    memset(ch->inbox, 0, sizeof ch->inbox);
    ch->inbox_len = ch->inbox_next = 0;
}
