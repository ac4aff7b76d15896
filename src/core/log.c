/*
 * log.c - leveled, timestamped logging to stderr (see log.h).
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "fleetsync";
static enum log_level log_level_current = LOG_INFO;
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
static const char *const log_level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void log_set_component(const char *component)
{
    log_component = component;
}
void log_set_level(enum log_level level)
{
    log_level_current = level;
}
enum log_level log_get_level(void)
{
    return log_level_current;
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level > log_level_current)
        return;

    char line[2048];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);

    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    int w = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", now.tv_nsec / 1000000L, log_level_tags[level],
                     log_component);
    if (w > 0)
        n += (size_t)w;

    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += (size_t)w < sizeof(line) - n - 1 ? (size_t)w : sizeof(line) - n - 2;
    line[n++] = '\n';

    ssize_t off = 0;
    while ((size_t)off < n) {
        ssize_t r = write(STDERR_FILENO, line + off, n - (size_t)off);
        if (r <= 0)
            break;
        off += r;
    }
}
