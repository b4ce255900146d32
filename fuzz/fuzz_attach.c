/* fuzz_attach.c - libFuzzer target for the attachment and search input rules (src/chat/attach.c,
 * src/chat/search.c): file names, content types, Range headers, Content-Disposition, search
 * terms and snippet escaping, on arbitrary bytes.
 *
 * Byte 0 selects nothing: every function gets the rest of the input. Checked invariants:
 *   - a sanitised name is valid UTF-8 of at most 255 bytes, holds no '/', '\\', '"', C0/C1
 *     control or DEL, and neither starts nor ends with a space or a dot; sanitising it again
 *     changes nothing;
 *   - an allowed content type is lowercase, non-empty, has a '/', and no separator or space;
 *   - a satisfiable range lies inside the blob (start <= end < size);
 *   - a Content-Disposition value holds no CR, LF or NUL;
 *   - search terms are only [0-9a-z] and bytes >= 0x80, single spaces between, at most 8;
 *   - a snippet's HTML holds no '<' or '>' except in balanced <mark> / </mark> tags.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/attach.h"
#include "chat/search.h"
#include "fuzz_check.h"

static int utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xc2 && c <= 0xdf ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xc0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void check_name(const char *in, size_t n)
{
    char out[STORE_ATT_NAME_MAX + 1], again[STORE_ATT_NAME_MAX + 1];
    size_t len = attach_name_sanitize(in, n, out, sizeof(out));
    CHECK(len <= STORE_ATT_NAME_MAX && strlen(out) == len);
    CHECK(utf8_valid((const unsigned char *)out, len));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c >= 0x20 && c != 0x7f && c != '/' && c != '\\' && c != '"');
        if (c == 0xc2 && i + 1 < len)
            CHECK(!((unsigned char)out[i + 1] >= 0x80 && (unsigned char)out[i + 1] <= 0x9f));
    }
    if (len) {
        CHECK(out[0] != ' ' && out[0] != '.' && out[len - 1] != ' ' && out[len - 1] != '.');
    }
    CHECK(attach_name_sanitize(out, len, again, sizeof(again)) == len && !strcmp(out, again));
}

static void check_type(const char *in, size_t n)
{
    char t[STORE_ATT_CTYPE_MAX + 1];
    if (attach_type_allowed("image/*,text/plain,application/pdf", in, n, t, sizeof(t))) {
        CHECK(t[0] && strchr(t, '/'));
        for (const char *p = t; *p; p++)
            CHECK(!(*p >= 'A' && *p <= 'Z') && *p > 0x20 && *p < 0x7f &&
                  !strchr("\"(),:;<=>?@[\\]{}", *p));
    }
}

static void check_range(const char *in, size_t n, uint64_t size)
{
    uint64_t a = 0, b = 0;
    int rc = attach_range(in, n, size, &a, &b);
    CHECK(rc >= -1 && rc <= 1);
    if (rc == 1) CHECK(a <= b && b < size);
}

static void check_terms_and_snippet(const char *in, size_t n)
{
    char *out = malloc(n + 1);
    struct jsonw w;
    int terms = search_terms(in, n, out, n + 1);
    CHECK(terms >= 0 && terms <= SEARCH_TERMS_MAX);
    for (size_t i = 0; out[i]; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
              (c == ' ' && i > 0 && out[i + 1] && out[i + 1] != ' '));
    }
    free(out);
    jsonw_init(&w, 16);
    search_snippet_json(&w, in, n);
    {
        const char *t = jsonw_text(&w);
        size_t len = jsonw_text_len(&w);
        int open = 0;
        for (size_t i = 0; i < len; i++) {
            if (t[i] == '>') CHECK(0); /* every '>' belongs to a tag, skipped below */
            if (t[i] != '<') continue;
            if (len - i >= 6 && !memcmp(t + i, "<mark>", 6)) {
                CHECK(!open);
                open = 1;
                i += 5;
            } else if (len - i >= 7 && !memcmp(t + i, "</mark>", 7)) {
                CHECK(open);
                open = 0;
                i += 6;
            } else {
                CHECK(0);
            }
        }
        CHECK(!open);
    }
    jsonw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char disp[4096];
    uint64_t blob = size ? (uint64_t)data[0] * 97 : 0;
    char name[STORE_ATT_NAME_MAX + 1];

    check_name(in, size);
    check_type(in, size);
    check_range(in, size, blob);
    check_range(in, size, UINT64_MAX / 2);
    check_terms_and_snippet(in, size);
    attach_name_sanitize(in, size, name, sizeof(name));
    attach_disposition(name, disp, sizeof(disp));
    CHECK(!strpbrk(disp, "\r\n"));
    return 0;
}
