/* term: the terminal of moonpost-chat. On a tty it edits the line itself (raw mode), so that
 * incoming messages print above the prompt without breaking the line being typed. On a pipe it
 * just reads lines. */
#ifndef MOONPOST_CHAT_TERM_H
#define MOONPOST_CHAT_TERM_H

#include <stddef.h>

#define TERM_LINE_MAX 4096

/* Sets the terminal up (raw mode when stdin is a tty); restored by term_restore and at exit.
 * Returns 1 when stdin is a tty. */
int term_init(void);
void term_restore(void);

/* The prompt shown (tty only) before the line being typed; SECRET hides what is typed. */
void term_prompt(const char *prompt, int secret);

/* Takes the bytes stdin has (call when it is readable). Then call term_next_line until it
 * returns 0. Returns -1 at end of input, else 0. */
int term_feed(void);
/* Moves the next complete line into LINE (without its newline): 1 when there was one. */
int term_next_line(char *line, size_t cap);

/* Prints one message line above the prompt, which is then drawn again with the typed text. */
void term_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
