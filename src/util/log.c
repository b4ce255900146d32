#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

void log_write(enum log_level level, const char *msg, const char *fields, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;

    if (level < min_level) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    k = snprintf(line, sizeof(line),
                 "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level], msg);
    n = k > 0 ? (size_t)k : 0;
    if (fields && fields[0] && n < sizeof(line) - 3) {
        va_list ap;
        line[n++] = ',';
        va_start(ap, fields);
        k = vsnprintf(line + n, sizeof(line) - n - 2, fields, ap);
        va_end(ap);
        if (k > 0) n += (size_t)k;
        if (n > sizeof(line) - 3) n = sizeof(line) - 3;
    }
    line[n++] = '}';
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) return;
}

const char *log_str(char *buf, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (cap < 3) return "\"\"";
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(buf + o, "\\u00", 4);
            buf[o + 4] = hex[c >> 4];
            buf[o + 5] = hex[c & 15];
            o += 6;
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
