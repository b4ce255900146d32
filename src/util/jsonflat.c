#include "util/jsonflat.h"

#include <string.h>

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the opening quote. On success *s and *len are the contents and the return points past the
 * closing quote; NULL for escapes, control characters or a missing closing quote. */
static const char *plain_string(const char *p, const char *end, const char **s, size_t *len)
{
    const char *q = ++p;
    while (q < end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20) return NULL;
        q++;
    }
    if (q == end) return NULL;
    *s = p;
    *len = (size_t)(q - p);
    return q + 1;
}

/* -?(0|[1-9][0-9]{0,17}) followed by a delimiter; NULL otherwise. */
static const char *plain_int(const char *p, const char *end, int64_t *v)
{
    const char *q = p;
    int neg = 0, digits = 0;
    int64_t x = 0;
    if (q < end && *q == '-') {
        neg = 1;
        q++;
    }
    if (q < end && *q == '0') {
        q++;
        digits = 1;
    } else {
        while (q < end && *q >= '0' && *q <= '9' && digits < 18) {
            x = x * 10 + (*q++ - '0');
            digits++;
        }
    }
    if (!digits || (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E')))
        return NULL;
    *v = neg ? -x : x;
    return q;
}

int jsonflat_scan(const char *p, size_t n, struct jsonflat_field *out, int max)
{
    const char *end = p + n;
    int count = 0;

    p = skip_ws(p, end);
    if (p == end || *p != '{') return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return skip_ws(p + 1, end) == end ? 0 : -1;
    for (;;) {
        struct jsonflat_field *f;
        if (count == max || p == end || *p != '"') return -1;
        f = &out[count];
        if (!(p = plain_string(p, end, &f->key, &f->key_len))) return -1;
        for (int i = 0; i < count; i++)
            if (out[i].key_len == f->key_len && !memcmp(out[i].key, f->key, f->key_len))
                return -1; /* duplicate key: the general path decides */
        p = skip_ws(p, end);
        if (p == end || *p != ':') return -1;
        p = skip_ws(p + 1, end);
        if (p == end) return -1;
        if (*p == '"') {
            f->kind = JSONFLAT_STRING;
            f->num = 0;
            if (!(p = plain_string(p, end, &f->val, &f->val_len))) return -1;
        } else {
            const char *start = p;
            f->kind = JSONFLAT_INT;
            if (!(p = plain_int(p, end, &f->num))) return -1;
            f->val = start;
            f->val_len = (size_t)(p - start);
        }
        count++;
        p = skip_ws(p, end);
        if (p == end) return -1;
        if (*p == '}') return skip_ws(p + 1, end) == end ? count : -1;
        if (*p != ',') return -1;
        p = skip_ws(p + 1, end);
    }
}
