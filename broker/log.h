/* log: one logger for the broker and its tools: level, timestamp, message, one line each. */
#ifndef MOONPOST_LOG_H
#define MOONPOST_LOG_H

#include "conf.h"

/* Opens PATH for appending (NULL = stderr). Returns 0 or -1 with errno set. */
int log_open(const char *path);
void log_set_level(enum conf_log_level level);
enum conf_log_level log_get_level(void);
void log_close(void);

void log_write(enum conf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A line that may repeat fast (refused connections, accept errors): at most one per
 * INTERVAL_S seconds is written; the ones held back in between are counted and the count is
 * reported by the next line written. Declare with LOG_EVERY(seconds). */
struct log_every {
    int interval_s;
    long long next_ms;
    unsigned long long held;
};
#define LOG_EVERY(seconds) {(seconds), 0, 0}

void log_every(struct log_every *e, enum conf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() <= LOG_LEVEL_DEBUG) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);           \
    } while (0)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
