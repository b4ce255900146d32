/* fuzz_path.c - libFuzzer target for path and query parsing: http_query_param (src/net/http.c,
 * percent-decoding included), route_lookup and id_parse (src/server/routes.c).
 *
 * Byte 0 = the method (an index into a few), byte 1 = the output capacity for query values, the
 * rest is a request target "path?query" as http-parser hands it over (split at the first '?').
 *   - http_query_param is compared, for a few names, with a decoder written independently below:
 *     first "name=value" segment wins, %XX with two hex digits is one byte, '+' is a space,
 *     anything else is itself; a value that does not fit, or that holds a NUL byte, is refused;
 *   - route_lookup's captures must be non-empty segments of the path, and the same lookup with
 *     the captured segments replaced must find the same route;
 *   - id_parse must accept exactly "<kind>_<digits>" (at most 19 digits) of a value in
 *     1..INT64_MAX, and give back what id_format wrote.
 */
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "server/app.h"
#include "fuzz_check.h"

static int hex(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch |= 0x20;
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The reference: 1 and out (NUL-terminated) when found and it fits without a NUL byte, else 0. */
static int ref_query_param(struct slice q, const char *name, char *out, size_t cap)
{
    size_t i = 0, nlen = strlen(name);
    while (i < q.len) {
        size_t j = i, eq = (size_t)-1, o = 0;
        while (j < q.len && q.p[j] != '&') {
            if (eq == (size_t)-1 && q.p[j] == '=') eq = j;
            j++;
        }
        if (eq != (size_t)-1 && eq - i == nlen && memcmp(q.p + i, name, nlen) == 0) {
            for (size_t k = eq + 1; k < j; k++) {
                int ch = (unsigned char)q.p[k];
                if (ch == '%' && k + 2 < j && hex(q.p[k + 1]) >= 0 && hex(q.p[k + 2]) >= 0) {
                    ch = hex(q.p[k + 1]) * 16 + hex(q.p[k + 2]);
                    k += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (ch == 0 || o + 1 >= cap) return 0;
                out[o++] = (char)ch;
            }
            if (cap == 0) return 0;
            out[o] = '\0';
            return 1;
        }
        i = j + 1;
    }
    return 0;
}

static void check_query(struct slice q, size_t cap)
{
    static const char *const names[] = {"access_token", "limit", "before", "after", "a", ""};
    char got[256], want[256];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int g = http_query_param(&(struct http_request){.query = q}, names[i], got, cap);
        int w = ref_query_param(q, names[i], want, cap);
        CHECK(g == w);
        if (g) CHECK(strcmp(got, want) == 0 && strlen(got) < cap);
    }
}

static void check_id(struct slice s, char kind)
{
    int64_t v = 0;
    int ok = s.len >= 3 && s.len <= 21 && s.p[0] == kind && s.p[1] == '_'; /* 19 digits */
    unsigned __int128 x = 0;
    char buf[32];

    for (size_t i = 2; ok && i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') ok = 0;
        if (x <= INT64_MAX) x = x * 10 + (unsigned)(s.p[i] - '0');
    }
    ok = ok && x >= 1 && x <= INT64_MAX;
    CHECK(id_parse(s, kind, &v) == ok);
    if (!ok) return;
    CHECK((unsigned __int128)v == x);
    CHECK(id_format(buf, sizeof(buf), kind, v) > 0);
    CHECK(id_parse((struct slice){buf, strlen(buf)}, kind, &v) && (unsigned __int128)v == x);
}

static void check_route(int method, struct slice path)
{
    struct slice p1 = {0}, p2 = {0}, q1 = {0}, q2 = {0};
    int r = route_lookup(method, path, &p1, &p2);
    char *alt;
    size_t n = 0;

    CHECK(r >= 0 || r == ROUTE_LOOKUP_NONE || r == ROUTE_LOOKUP_METHOD);
    if (r < 0) {
        CHECK(p1.p == NULL && p2.p == NULL);
        return;
    }
    CHECK(r < ROUTE__COUNT);
    for (int k = 0; k < 2; k++) {
        struct slice s = k ? p2 : p1;
        if (!s.p) continue;
        CHECK(s.len > 0 && s.p >= path.p && s.p + s.len <= path.p + path.len);
        CHECK(memchr(s.p, '/', s.len) == NULL && s.p[-1] == '/');
        CHECK(s.p + s.len == path.p + path.len || s.p[s.len] == '/');
    }
    CHECK(!p2.p || p1.p);
    for (int k = 0; k < 2; k++) {
        if (p1.p) check_id(p1, "ru"[k]);
        if (p2.p) check_id(p2, "ru"[k]);
    }
    /* Replace the captures by "x": the same route, capturing "x". */
    alt = malloc(path.len + 2);
    for (size_t i = 0; i < path.len;) {
        const char *at = path.p + i;
        if ((p1.p && at == p1.p) || (p2.p && at == p2.p)) {
            alt[n++] = 'x';
            i += at == p1.p ? p1.len : p2.len;
        } else {
            alt[n++] = path.p[i++];
        }
    }
    CHECK(route_lookup(method, (struct slice){alt, n}, &q1, &q2) == r);
    CHECK((p1.p != NULL) == (q1.p != NULL) && (p2.p != NULL) == (q2.p != NULL));
    CHECK(!q1.p || (q1.len == 1 && q1.p[0] == 'x'));
    CHECK(!q2.p || (q2.len == 1 && q2.p[0] == 'x'));
    free(alt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int methods[] = {HTTP_GET, HTTP_POST, HTTP_PATCH, HTTP_DELETE, HTTP_PUT};
    const char *t = (const char *)data + 2, *qm;
    size_t n;
    struct slice path, query = {0};

    if (size < 2) return 0;
    n = size - 2;
    qm = memchr(t, '?', n);
    path = (struct slice){t, qm ? (size_t)(qm - t) : n};
    if (qm) query = (struct slice){qm + 1, n - path.len - 1};
    check_query(query, data[1] % 64);
    check_route(methods[data[0] % 5], path);
    check_id(path, 'r');
    check_id(query, 'u');
    return 0;
}
