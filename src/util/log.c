#include "util/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096 /* one log line, newline included */
#define VALUE_MAX      1024 /* escaped bytes of one string value before it is cut ("...") */

static enum log_level min_level = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static __thread const char *ctx_request_id;
static __thread const char *ctx_trace_id;

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

const char *log_request_id_set(const char *id)
{
    const char *old = ctx_request_id;
    ctx_request_id = id;
    return old;
}

const char *log_trace_id_set(const char *id)
{
    const char *old = ctx_trace_id;
    ctx_trace_id = id;
    return old;
}

/* Bytes of the valid UTF-8 sequence at s[0..len), or 0 when it is not one (overlong forms,
 * surrogates and code points over U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t n;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* An output buffer that never overflows: `over` records that something did not fit. */
struct out {
    char *p;
    size_t n, cap;
    int over;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (o->n + len > o->cap) {
        o->over = 1;
        return;
    }
    memcpy(o->p + o->n, s, len);
    o->n += len;
}

/* The JSON string contents (no quotes) of s[0..len): quotes, backslashes and control characters
 * escaped, invalid UTF-8 replaced by U+FFFD, cut after `max` output bytes with "...". */
static void put_escaped(struct out *o, const char *s, size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t start = o->n;

    for (size_t i = 0; i < len;) {
        char esc[8];
        size_t k = 0, adv = 1;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c == '\n') {
            esc[k++] = '\\';
            esc[k++] = 'n';
        } else if (c == '\t') {
            esc[k++] = '\\';
            esc[k++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        } else if (c < 0x80) {
            esc[k++] = (char)c;
        } else if ((adv = utf8_seq(u + i, len - i)) != 0) {
            memcpy(esc, u + i, adv);
            k = adv;
        } else {
            memcpy(esc, "\\ufffd", 6);
            k = 6;
            adv = 1;
        }
        if (o->n - start + k > max) {
            put(o, "...", 3);
            return;
        }
        put(o, esc, k);
        i += adv;
    }
}

/* Each numeric conversion is handed to snprintf as `sub`, one conversion copied from the caller's
 * format literal, whose argument types the compiler checked at the call (log_write's format
 * attribute). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* The fields format: printf conversions, except that every string (%s, %.*s, %c) is escaped
 * for a JSON string (the format puts the quotes around it) and a non-finite double is null. */
static void format_fields(struct out *o, const char *fmt, va_list ap)
{
    while (*fmt) {
        const char *spec = fmt, *lit = fmt;
        char sub[32], num[64];
        int prec = -1, star = 0, len_l = 0, len_z = 0, k;

        while (*fmt && *fmt != '%')
            fmt++;
        put(o, lit, (size_t)(fmt - lit));
        if (!*fmt) break;
        spec = fmt++;
        if (*fmt == '%') {
            put(o, "%", 1);
            fmt++;
            continue;
        }
        while (*fmt && strchr("-+ #0", *fmt))
            fmt++;
        while (*fmt >= '0' && *fmt <= '9')
            fmt++;
        if (*fmt == '.') {
            fmt++;
            if (*fmt == '*') {
                star = 1;
                fmt++;
            } else {
                prec = 0;
                while (*fmt >= '0' && *fmt <= '9')
                    prec = prec * 10 + (*fmt++ - '0');
            }
        }
        while (*fmt == 'l')
            len_l++, fmt++;
        if (*fmt == 'z') len_z = 1, fmt++;
        if (!*fmt) {
            o->over = 1;
            return;
        }
        if (star) prec = va_arg(ap, int);
        if ((size_t)(fmt - spec + 2) > sizeof(sub)) { /* not a format we write */
            o->over = 1;
            return;
        }
        memcpy(sub, spec, (size_t)(fmt - spec + 1));
        sub[fmt - spec + 1] = '\0';
        switch (*fmt++) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            /* %.*s is a slice: exactly that many bytes, NULs included */
            size_t n = !s                  ? 0
                       : star && prec >= 0 ? (size_t)prec
                       : prec >= 0         ? strnlen(s, (size_t)prec)
                                           : strlen(s);
            put_escaped(o, s ? s : "", n, VALUE_MAX);
            continue;
        }
        case 'c': {
            char ch = (char)va_arg(ap, int);
            put_escaped(o, &ch, 1, VALUE_MAX);
            continue;
        }
        case 'd':
        case 'i':
            k = len_z        ? snprintf(num, sizeof(num), sub, va_arg(ap, ssize_t))
                : len_l == 0 ? snprintf(num, sizeof(num), sub, va_arg(ap, int))
                : len_l == 1 ? snprintf(num, sizeof(num), sub, va_arg(ap, long))
                             : snprintf(num, sizeof(num), sub, va_arg(ap, long long));
            break;
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            k = len_z        ? snprintf(num, sizeof(num), sub, va_arg(ap, size_t))
                : len_l == 0 ? snprintf(num, sizeof(num), sub, va_arg(ap, unsigned))
                : len_l == 1 ? snprintf(num, sizeof(num), sub, va_arg(ap, unsigned long))
                             : snprintf(num, sizeof(num), sub, va_arg(ap, unsigned long long));
            break;
        case 'f':
        case 'g':
        case 'e': {
            double d = va_arg(ap, double);
            k = isfinite(d) ? snprintf(num, sizeof(num), sub, d)
                            : snprintf(num, sizeof(num), "null");
            break;
        }
        default: /* an unknown conversion: stop rather than guess its argument */
            o->over = 1;
            return;
        }
        if (k > 0) put(o, num, (size_t)k < sizeof(num) ? (size_t)k : sizeof(num) - 1);
    }
}

#pragma GCC diagnostic pop

void log_write(enum log_level level, const char *msg, const char *fields, ...)
{
    char line[LINE_MAX_BYTES], head[64];
    struct out o = {line, 0, sizeof(line) - 2, 0}; /* room for "}\n" */
    struct timespec ts;
    struct tm tm;
    size_t fields_at;
    int k;

    if (level < min_level) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    k = snprintf(head, sizeof(head),
                 "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level]);
    put(&o, head, (size_t)k);
    put_escaped(&o, msg, strlen(msg), VALUE_MAX);
    put(&o, "\"", 1);
    if (ctx_request_id) {
        put(&o, ",\"request_id\":\"", 15);
        put_escaped(&o, ctx_request_id, strlen(ctx_request_id), 64);
        put(&o, "\"", 1);
    }
    if (ctx_trace_id) {
        put(&o, ",\"trace_id\":\"", 13);
        put_escaped(&o, ctx_trace_id, strlen(ctx_trace_id), 64);
        put(&o, "\"", 1);
    }
    fields_at = o.n;
    if (fields && fields[0]) {
        va_list ap;
        put(&o, ",", 1);
        va_start(ap, fields);
        format_fields(&o, fields, ap);
        va_end(ap);
        if (o.n == fields_at + 1) o.n = fields_at; /* the fields were empty: no comma */
    }
    if (o.over) { /* never a cut line: the fields are replaced by a marker */
        o.n = fields_at;
        o.over = 0;
        put(&o, ",\"log_truncated\":true", 21);
    }
    line[o.n++] = '}';
    line[o.n++] = '\n';
    if (write(STDERR_FILENO, line, o.n) < 0) return;
}
