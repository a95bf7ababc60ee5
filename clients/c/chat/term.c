/* term: raw-mode line editing on a tty (so pushes print above the prompt and the typed line
 * survives), plain line reading on a pipe. */
#include "term.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define QUEUE_MAX 65536

static struct termios saved;
static int raw_on, is_tty;
static char prompt[160];
static int secret;
static char line[TERM_LINE_MAX]; /* being typed (tty) or the unfinished last line (pipe) */
static size_t line_len;
static char queue[QUEUE_MAX]; /* complete lines, each ending in '\n' */
static size_t queue_len;
static int esc_state; /* 1 after ESC, 2 inside a CSI sequence: skipped, no cursor keys */

static void out(const char *s, size_t n)
{
    fwrite(s, 1, n, stdout);
}

static void outs(const char *s)
{
    out(s, strlen(s));
}

void term_restore(void)
{
    if (!raw_on) return;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    raw_on = 0;
}

int term_init(void)
{
    is_tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (!is_tty || tcgetattr(STDIN_FILENO, &saved) != 0) return is_tty = 0;
    struct termios raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN); /* ISIG stays: Ctrl-C still works */
    raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0) return is_tty = 0;
    raw_on = 1;
    atexit(term_restore);
    return 1;
}

static size_t columns(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
    return 80;
}

static size_t chars(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}

/* Prompt and the tail of the typed line that fits on one screen row. */
static void redraw(void)
{
    if (!is_tty) return;
    outs("\r\033[K");
    outs(prompt);
    if (!secret) {
        size_t room = columns() - 1, used = chars(prompt, strlen(prompt));
        size_t start = 0;
        while (start < line_len && used + chars(line + start, line_len - start) > room) {
            start++;
            while (start < line_len && ((unsigned char)line[start] & 0xC0) == 0x80)
                start++;
        }
        out(line + start, line_len - start);
    }
    fflush(stdout);
}

void term_prompt(const char *p, int hide)
{
    snprintf(prompt, sizeof prompt, "%s", p);
    secret = hide;
    redraw();
}

static void finish_line(void)
{
    if (queue_len + line_len + 1 <= QUEUE_MAX) {
        memcpy(queue + queue_len, line, line_len);
        queue_len += line_len;
        queue[queue_len++] = '\n';
    }
    line_len = 0;
}

static void erase_char(void)
{
    while (line_len > 0 && ((unsigned char)line[line_len - 1] & 0xC0) == 0x80)
        line_len--;
    if (line_len > 0) line_len--;
}

static void erase_word(void)
{
    while (line_len > 0 && line[line_len - 1] == ' ')
        line_len--;
    while (line_len > 0 && line[line_len - 1] != ' ')
        line_len--;
}

/* One typed byte; returns -1 for end of input (Ctrl-D on an empty line). */
static int edit(unsigned char b)
{
    if (esc_state == 1) {
        esc_state = (b == '[' || b == 'O') ? 2 : 0;
        return 0;
    }
    if (esc_state == 2) {
        if (b >= 0x40 && b <= 0x7e) esc_state = 0;
        return 0;
    }
    switch (b) {
    case 0x1b:
        esc_state = 1;
        return 0;
    case '\r':
    case '\n':
        if (is_tty) {
            redraw();
            outs("\n");
        }
        finish_line();
        return 0;
    case 0x7f:
    case 0x08:
        erase_char();
        break;
    case 0x15:
        line_len = 0;
        break; /* Ctrl-U */
    case 0x17:
        erase_word();
        break; /* Ctrl-W */
    case 0x0c:
        outs("\033[2J\033[H");
        break; /* Ctrl-L */
    case 0x04:
        return line_len == 0 ? -1 : 0; /* Ctrl-D */
    case '\t':
        b = ' '; /* fall through */
    default:
        if (b < 0x20) return 0;
        if (line_len + 1 < sizeof line) line[line_len++] = (char)b;
    }
    redraw();
    return 0;
}

int term_feed(void)
{
    unsigned char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n == 0) {
        if (line_len > 0) finish_line(); /* a last line without its newline */
        return -1;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (!is_tty) {
            if (buf[i] == '\n')
                finish_line();
            else if (buf[i] != '\r' && line_len + 1 < sizeof line)
                line[line_len++] = (char)buf[i];
            continue;
        }
        if (edit(buf[i]) < 0) return -1;
    }
    return 0;
}

int term_next_line(char *dst, size_t cap)
{
    char *nl = memchr(queue, '\n', queue_len);
    if (nl == NULL) return 0;
    size_t n = (size_t)(nl - queue);
    size_t copy = n < cap - 1 ? n : cap - 1;
    memcpy(dst, queue, copy);
    dst[copy] = '\0';
    queue_len -= n + 1;
    memmove(queue, nl + 1, queue_len);
    return 1;
}

void term_print(const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (is_tty) outs("\r\033[K");
    outs(text);
    outs("\n");
    if (is_tty)
        redraw();
    else
        fflush(stdout);
}
