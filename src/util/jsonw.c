#include "util/jsonw.h"

#include <stdio.h>
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

void jsonw_int(struct jsonw *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    jsonw_raw(w, tmp, (size_t)n);
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
    char tmp[32];
    int k = snprintf(tmp, sizeof(tmp), "\"%c_%lld\"", kind, (long long)n);
    jsonw_raw(w, tmp, (size_t)k);
}
