#include "util/jsonw.h"

#include <stdlib.h>
#include <string.h>

#include "util/rbuf.h"

static void reserve(struct jsonw *w, size_t n)
{
    if (w->len + n <= w->cap) return;
    while (w->cap < w->len + n)
        w->cap *= 2;
    w->buf = xrealloc(w->buf, w->cap);
}

void jsonw_init(struct jsonw *w, size_t hint)
{
    w->cap = hint < 64 ? 64 : hint;
    w->buf = xmalloc(w->cap);
    w->len = JSONW_HEADROOM;
}

void jsonw_free(struct jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

void jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
    reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void jsonw_lit(struct jsonw *w, const char *s)
{
    jsonw_raw(w, s, strlen(s));
}

void jsonw_str(struct jsonw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    reserve(w, n + 2);
    w->buf[w->len++] = '"';
    while (i < n) {
        size_t run = i;
        unsigned char c;
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            jsonw_raw(w, s + i, run - i);
            i = run;
            continue;
        }
        c = (unsigned char)s[i++];
        reserve(w, 6);
        w->buf[w->len++] = '\\';
        switch (c) {
        case '"':
            w->buf[w->len++] = '"';
            break;
        case '\\':
            w->buf[w->len++] = '\\';
            break;
        case '\n':
            w->buf[w->len++] = 'n';
            break;
        case '\r':
            w->buf[w->len++] = 'r';
            break;
        case '\t':
            w->buf[w->len++] = 't';
            break;
        default:
            w->buf[w->len++] = 'u';
            w->buf[w->len++] = '0';
            w->buf[w->len++] = '0';
            w->buf[w->len++] = hex[c >> 4];
            w->buf[w->len++] = hex[c & 15];
        }
    }
    reserve(w, 1);
    w->buf[w->len++] = '"';
}

/* Decimal text of v at out (room for 20 bytes); returns its length. No printf: this runs several
 * times per message on the hot path. */
static size_t fmt_int(char *out, int64_t v)
{
    char tmp[20];
    size_t n = 0, k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    return k;
}

void jsonw_int(struct jsonw *w, int64_t v)
{
    reserve(w, 20);
    w->len += fmt_int(w->buf + w->len, v);
}

void jsonw_key(struct jsonw *w, const char *key, int first)
{
    size_t n = strlen(key);
    reserve(w, n + 4);
    if (!first) w->buf[w->len++] = ',';
    w->buf[w->len++] = '"';
    memcpy(w->buf + w->len, key, n);
    w->len += n;
    w->buf[w->len++] = '"';
    w->buf[w->len++] = ':';
}

void jsonw_id(struct jsonw *w, char kind, int64_t n)
{
    reserve(w, 24);
    w->buf[w->len++] = '"';
    w->buf[w->len++] = kind;
    w->buf[w->len++] = '_';
    w->len += fmt_int(w->buf + w->len, n);
    w->buf[w->len++] = '"';
}

void jsonw_msg_id(struct jsonw *w, int64_t room, int64_t seq)
{
    reserve(w, 46);
    memcpy(w->buf + w->len, "\"m_", 3);
    w->len += 3;
    w->len += fmt_int(w->buf + w->len, room);
    w->buf[w->len++] = '_';
    w->len += fmt_int(w->buf + w->len, seq);
    w->buf[w->len++] = '"';
}
