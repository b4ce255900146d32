/* log.h - structured JSON logs on stderr, one object per line.
 *
 * log_write(LOG_INFO, "listening", "\"addr\":\"%s\",\"port\":%d", addr, port) prints
 * {"ts":"2026-11-24T07:40:00.123Z","level":"info","msg":"listening","addr":"...","port":8080}.
 * The fields argument is a printf format for the JSON members after "msg" (without braces),
 * written by us; every string argument is escaped for a JSON string (quotes, backslashes,
 * control characters; invalid UTF-8 becomes U+FFFD; over 1 KiB it is cut with "..."), so the
 * format puts the quotes around %s and a value can never break the line. %.*s takes a slice:
 * exactly that many bytes. Supported: %s %.*s %c %d %i %u %x %o %f %g %e with l, ll, z and
 * widths; anything else, or a line over 4 KiB, replaces the fields by "log_truncated":true.
 * A request id set on the thread (log_request_id_set) is added to every line as "request_id",
 * a trace id (log_trace_id_set) as "trace_id".
 * Thread-safe: each line is formatted into a local buffer and written with one write(2). Never
 * blocks beyond that write.
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

/* The request id added to every log line of this thread (an HTTP request's, while it is
 * handled), or NULL for none. The string must stay valid until replaced. Returns the previous
 * one (to restore). */
const char *log_request_id_set(const char *id);
/* The same for the trace id (32 hex digits, "trace_id"), set while a traced request is handled. */
const char *log_trace_id_set(const char *id);

#define log_debug(msg, ...)                                                                        \
    (log_enabled(LOG_DEBUG) ? log_write(LOG_DEBUG, msg, __VA_ARGS__) : (void)0)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif
