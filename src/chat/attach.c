#include "chat/attach.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/events.h"
#include "util/status.h"

void attach_id_new(char out[STORE_ATT_ID_LEN + 1])
{
    unsigned char r[STORE_ATT_ID_LEN / 2];
    randombytes_buf(r, sizeof(r));
    sodium_bin2hex(out, STORE_ATT_ID_LEN + 1, r, sizeof(r));
}

int attach_id_parse(const char *s, size_t len, char out[STORE_ATT_ID_LEN + 1])
{
    if (len != ATTACH_EXT_ID_LEN || memcmp(s, "att_", 4) != 0) return 0;
    for (size_t i = 4; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    memcpy(out, s + 4, STORE_ATT_ID_LEN);
    out[STORE_ATT_ID_LEN] = '\0';
    return 1;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid; *cp gets the
 * code point. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    size_t k;
    uint32_t v;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        k = 2;
        v = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        k = 3;
        v = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        k = 4;
        v = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if ((k == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
        (k == 4 && (v < 0x10000 || v > 0x10ffff)))
        return 0;
    *cp = v;
    return k;
}

size_t attach_name_sanitize(const char *in, size_t len, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in, *end = p + len, *seg = p;
    size_t o = 0, start, stop;

    for (const unsigned char *q = p; q < end; q++) /* the last path segment */
        if (*q == '/' || *q == '\\') seg = q + 1;
    for (p = seg; p < end;) {
        uint32_t cp;
        size_t k = utf8_seq(p, (size_t)(end - p), &cp);
        if (k == 0) {
            p++;
            continue;
        }
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == '"' || cp == 0x2028 ||
            cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
            (cp >= 0x2066 && cp <= 0x2069)) { /* controls, line separators, bidi overrides */
            p += k;
            continue;
        }
        if (o + k > STORE_ATT_NAME_MAX || o + k >= cap) break;
        memcpy(out + o, p, k);
        o += k;
        p += k;
    }
    start = 0;
    stop = o;
    while (start < stop && (out[start] == ' ' || out[start] == '.'))
        start++;
    while (stop > start && (out[stop - 1] == ' ' || out[stop - 1] == '.'))
        stop--;
    memmove(out, out + start, stop - start);
    o = stop - start;
    out[o] = '\0';
    return o;
}

int attach_type_allowed(const char *list, const char *ctype, size_t len, char *out, size_t cap)
{
    size_t a = 0, b, n;
    const char *semi = memchr(ctype, ';', len);

    out[0] = '\0';
    b = semi ? (size_t)(semi - ctype) : len;
    while (a < b && (ctype[a] == ' ' || ctype[a] == '\t'))
        a++;
    while (b > a && (ctype[b - 1] == ' ' || ctype[b - 1] == '\t'))
        b--;
    n = b - a;
    if (n == 0 || n >= cap || n > STORE_ATT_CTYPE_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)ctype[a + i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),:;<=>?@[\\]{}", ch)) {
            out[0] = '\0';
            return 0;
        }
        out[i] = (char)tolower(ch);
    }
    out[n] = '\0';
    if (!strchr(out, '/')) return 0;
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ','), *e = comma ? comma : p + strlen(p);
        const char *s = p;
        while (s < e && *s == ' ')
            s++;
        while (e > s && e[-1] == ' ')
            e--;
        if ((size_t)(e - s) == n && !strncasecmp(s, out, n)) return 1;
        if (e - s >= 2 && e[-1] == '*' && e[-2] == '/' && !strncasecmp(s, out, (size_t)(e - s - 1)))
            return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

void attach_disposition(const char *name, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, n = strlen(name);

#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (o + 1 < cap) out[o++] = (ch);                                                          \
    } while (0)
    for (const char *s = "attachment; filename=\""; *s; s++)
        PUT(*s);
    for (size_t i = 0; i < n; i++) { /* ASCII fallback: other bytes become '_' */
        unsigned char ch = (unsigned char)name[i];
        PUT(ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? (char)ch : '_');
    }
    for (const char *s = "\"; filename*=UTF-8''"; *s; s++)
        PUT(*s);
    for (size_t i = 0; i < n; i++) { /* RFC 8187 attr-char, the rest percent-encoded */
        unsigned char ch = (unsigned char)name[i];
        if (isalnum(ch) || strchr("!#$&+-.^_`|~", ch)) {
            PUT((char)ch);
        } else if (o + 3 < cap) {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
#undef PUT
    out[o < cap ? o : cap - 1] = '\0';
}

/* Decimal digits of s[*i..n) into *v (at most 19); 0 when there are none or too many. */
static int range_num(const char *s, size_t n, size_t *i, uint64_t *v)
{
    size_t start = *i;
    *v = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        if (*i - start >= 19) return 0;
        *v = *v * 10 + (uint64_t)(s[*i] - '0');
        (*i)++;
    }
    return *i > start;
}

int attach_range(const char *h, size_t len, uint64_t size, uint64_t *start, uint64_t *end)
{
    size_t i = 6;
    uint64_t a = 0, b = 0;
    int has_a, has_b;

    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    if (len < 7 || strncasecmp(h, "bytes=", 6)) return 0;
    while (i < len && h[i] == ' ')
        i++;
    has_a = range_num(h, len, &i, &a);
    if (i >= len || h[i] != '-') return 0;
    i++;
    has_b = range_num(h, len, &i, &b);
    if (i != len || (!has_a && !has_b)) return 0; /* several ranges or junk: ignored */
    if (!has_a) {                                 /* the last b bytes */
        if (b == 0 || size == 0) return -1;
        *start = b >= size ? 0 : size - b;
        *end = size - 1;
        return 1;
    }
    if (has_b && b < a) return 0;
    if (a >= size) return -1;
    *start = a;
    *end = has_b && b < size ? b : size - 1;
    return 1;
}

void attach_json(struct jsonw *w, const struct store_attachment *a)
{
    jsonw_lit(w, "{\"id\":\"att_");
    jsonw_raw(w, a->id, strlen(a->id));
    jsonw_lit(w, "\"");
    jsonw_key(w, "size", 0);
    jsonw_int(w, a->size);
    jsonw_key(w, "content_type", 0);
    jsonw_str(w, a->content_type, strlen(a->content_type));
    jsonw_key(w, "name", 0);
    jsonw_str(w, a->name, strlen(a->name));
    jsonw_key(w, "sha256", 0);
    jsonw_str(w, a->sha256, strlen(a->sha256));
    jsonw_lit(w, "}");
}

int chat_attach_check(const struct store_ops *ops, struct store_conn *sc, int64_t sender,
                      const struct chat_attach *a, struct jsonw *extra)
{
    jsonw_lit(extra, "\"attachments\":[");
    for (int i = 0; i < a->n; i++) {
        struct store_attachment att;
        int rc = ops->attachment_get(sc, a->ids[i], &att);
        if (rc != CD_OK) return rc;
        if (att.owner != sender) return CD_E_FORBIDDEN;
        if (i) jsonw_lit(extra, ",");
        attach_json(extra, &att);
    }
    jsonw_lit(extra, "]");
    return CD_OK;
}

int chat_attach_commit(const struct store_ops *ops, struct store_conn *sc,
                       const struct store_event *ev, const struct chat_attach *a,
                       struct chat_out *out)
{
    int rc;
    for (int i = 0; i < a->n; i++)
        if ((rc = ops->attachment_ref(sc, a->ids[i], ev->room_id, ev->seq)) != CD_OK) return rc;
    if ((rc = ops->event_extra_put(sc, ev->room_id, ev->seq, ev->extra, ev->extra_len)) != CD_OK)
        return rc;
    if (out->n && out->ev[out->n - 1].seq == ev->seq && out->ev[out->n - 1].room == ev->room_id) {
        rbuf_unref(out->ev[out->n - 1].frame);
        out->ev[out->n - 1].frame = events_log_frame(ev);
    }
    return CD_OK;
}
