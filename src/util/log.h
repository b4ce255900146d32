/* log.h - structured JSON logs on stderr, one object per line.
 *
 * log_write(LOG_INFO, "listening", "\"addr\":%s", ...) prints
 * {"ts":"2026-11-24T07:40:00.123Z","level":"info","msg":"listening","addr":...}. The fields
 * argument is a printf format for the JSON members after "msg" (without braces); values that come
 * from the network must be passed through log_str() so they are escaped. Thread-safe: each line is
 * formatted into a local buffer and written with one write(2). Never blocks beyond that write.
 */
#ifndef CD_LOG_H
#define CD_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the minimum level printed. Not thread-safe: call before starting threads. */
void log_set_level(enum log_level level);
/* Parse "debug", "info", "warn", "error"; returns -1 if unknown. */
int log_level_parse(const char *s);
int log_enabled(enum log_level level);

void log_write(enum log_level level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/* Escape s[0..len) as a JSON string literal (with quotes) into buf; truncates to fit. Returns
 * buf. */
const char *log_str(char *buf, size_t cap, const char *s, size_t len);

#define log_debug(msg, ...)                                                                        \
    (log_enabled(LOG_DEBUG) ? log_write(LOG_DEBUG, msg, __VA_ARGS__) : (void)0)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif
