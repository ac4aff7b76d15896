/*
 * log.h - leveled, timestamped logging to stderr.
 *
 * Every line is "2026-11-27T00:48:49.123Z LEVEL component: message".  A line
 * is formatted into a local buffer and written with one write(2), so lines
 * from several threads never interleave.  Any thread may call these.
 */
#ifndef FS_LOG_H
#define FS_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Names the component printed on each line ("bridge", "services"...).
 * The string must outlive the process (a literal). */
void log_set_component(const char *component);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info" or "debug".  Returns 0 on success. */
int log_parse_level(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
