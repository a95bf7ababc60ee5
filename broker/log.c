/* log: writes "2026-01-31T12:00:00.123Z LEVEL message" lines to stderr or a file. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static FILE *log_stream;
static enum conf_log_level log_level = LOG_LEVEL_INFO;

int log_open(const char *path)
{
    if (path == NULL) {
        log_close();
        return 0;
    }
    FILE *f = fopen(path, "ae"); /* e: close-on-exec, a supervisor's workers open their own */
    if (f == NULL) return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    log_close();
    log_stream = f;
    return 0;
}

void log_close(void)
{
    if (log_stream != NULL) fclose(log_stream);
    log_stream = NULL;
}

void log_set_level(enum conf_log_level level)
{
    log_level = level;
}

enum conf_log_level log_get_level(void)
{
    return log_level;
}

static const char *level_tag(enum conf_log_level level)
{
    switch (level) {
    case LOG_LEVEL_DEBUG: return "DEBUG";
    case LOG_LEVEL_INFO: return "INFO";
    case LOG_LEVEL_WARN: return "WARN";
    default: return "ERROR";
    }
}

static void write_line(enum conf_log_level level, const char *fmt, va_list ap, const char *suffix)
{
    FILE *out = log_stream != NULL ? log_stream : stderr;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(out, "%s.%03ldZ %s %s%s\n", stamp, (long)(tv.tv_usec / 1000), level_tag(level), line,
            suffix);
}

void log_write(enum conf_log_level level, const char *fmt, ...)
{
    if (level < log_level) return;
    va_list ap;
    va_start(ap, fmt);
    write_line(level, fmt, ap, "");
    va_end(ap);
}

void log_every(struct log_every *e, enum conf_log_level level, const char *fmt, ...)
{
    if (level < log_level) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (e->next_ms != 0 && now < e->next_ms) {
        e->held++;
        return;
    }
    char suffix[96] = "";
    if (e->held > 0)
        snprintf(suffix, sizeof suffix, " (%llu more since the previous such line)", e->held);
    e->held = 0;
    e->next_ms = now + (long long)e->interval_s * 1000;
    va_list ap;
    va_start(ap, fmt);
    write_line(level, fmt, ap, suffix);
    va_end(ap);
}
