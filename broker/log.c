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
    FILE *f = fopen(path, "a");
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

void log_write(enum conf_log_level level, const char *fmt, ...)
{
    if (level < log_level) return;
    FILE *out = log_stream != NULL ? log_stream : stderr;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);

    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(out, "%s.%03ldZ %s %s\n", stamp, (long)(tv.tv_usec / 1000), level_tag(level), line);
}
