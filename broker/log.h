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

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() <= LOG_LEVEL_DEBUG) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);           \
    } while (0)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
