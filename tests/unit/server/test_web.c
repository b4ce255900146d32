/* The allowed-origins list, the same-origin test and the static file table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/origin.h"
#include "server/web.h"
#include "util/status.h"

static struct http_request req_with(struct http_header *h, int n)
{
    struct http_request r;
    memset(&r, 0, sizeof(r));
    r.headers = h;
    r.nheaders = n;
    return r;
}

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        {n, sizeof(n) - 1},                                                                        \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }

static void parse_list(void **state)
{
    struct origin_policy p;
    (void)state;
    assert_int_equal(origin_policy_parse(&p, ""), CD_OK);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.any, 0);
    origin_policy_free(&p);
    assert_int_equal(origin_policy_parse(&p, " https://A.example.com/ , http://localhost:3000"),
                     CD_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.origins[0], "https://a.example.com");
    assert_string_equal(p.origins[1], "http://localhost:3000");
    assert_true(origin_listed(&p, SLICE_LIT("https://a.example.com")));
    assert_true(origin_listed(&p, SLICE_LIT("HTTPS://A.EXAMPLE.COM")));
    assert_false(origin_listed(&p, SLICE_LIT("https://a.example.com.evil")));
    assert_false(origin_listed(&p, SLICE_LIT("http://a.example.com")));
    origin_policy_free(&p);
    assert_int_equal(origin_policy_parse(&p, "*"), CD_OK);
    assert_true(origin_listed(&p, SLICE_LIT("https://any.example")));
    assert_false(origin_listed(&p, SLICE_LIT("null")));
    origin_policy_free(&p);
    assert_int_equal(origin_policy_parse(&p, "a.example"), CD_E_INVALID_FIELD);
    assert_int_equal(origin_policy_parse(&p, "https://a.example/x"), CD_E_INVALID_FIELD);
    assert_int_equal(origin_policy_parse(&p, "https://ok.example,javascript://x"),
                     CD_E_INVALID_FIELD);
    assert_int_equal(origin_policy_parse(&p, "https://a\r\nSet-Cookie: x"), CD_E_INVALID_FIELD);
}

static void verdicts(void **state)
{
    struct origin_policy p;
    struct http_header none[] = {HDR("Host", "chat.example:8080")};
    struct http_header same[] = {HDR("Host", "chat.example:8080"),
                                 HDR("Origin", "http://chat.example:8080")};
    struct http_header listed[] = {HDR("Host", "chat.example:8080"),
                                   HDR("Origin", "https://app.example")};
    struct http_header other[] = {HDR("Host", "chat.example:8080"),
                                  HDR("Origin", "http://chat.example:8081")};
    struct http_header nul[] = {HDR("Host", "chat.example:8080"), HDR("Origin", "null")};
    struct http_header crlf[] = {HDR("Host", "x"), HDR("Origin", "https://a\r\nX: y")};
    struct http_request r;
    (void)state;
    assert_int_equal(origin_policy_parse(&p, "https://app.example"), CD_OK);
    r = req_with(none, 1);
    assert_int_equal(origin_check(&p, &r, NULL), ORIGIN_NONE);
    r = req_with(same, 2);
    assert_int_equal(origin_check(&p, &r, NULL), ORIGIN_SAME);
    r = req_with(listed, 2);
    assert_int_equal(origin_check(&p, &r, NULL), ORIGIN_ALLOWED);
    r = req_with(other, 2);
    assert_int_equal(origin_check(&p, &r, NULL), ORIGIN_FORBIDDEN);
    r = req_with(nul, 2);
    assert_int_equal(origin_check(&p, &r, NULL), ORIGIN_FORBIDDEN);
    r = req_with(crlf, 2);
    assert_int_equal(origin_check(&p, &r, NULL), ORIGIN_FORBIDDEN);
    origin_policy_free(&p);
}

static void static_table(void **state)
{
    struct web w;
    const struct web_file *f;
    (void)state;
    assert_int_equal(web_init(&w, NULL), CD_OK);
    assert_true(w.n > 0);
    f = web_find(&w, SLICE_LIT("/"));
    assert_non_null(f);
    assert_string_equal(f->path, "/index.html");
    assert_string_equal(f->type, "text/html; charset=utf-8");
    assert_non_null(web_find(&w, SLICE_LIT("/sdk/client.js")));
    assert_null(web_find(&w, SLICE_LIT("/sdk/../index.html")));
    assert_null(web_find(&w, SLICE_LIT("/index.htm")));
    assert_null(web_find(&w, SLICE_LIT("/index.html/")));
    assert_null(web_find(&w, SLICE_LIT("")));
    for (size_t i = 1; i < w.n; i++)
        assert_true(strcmp(w.files[i - 1].path, w.files[i].path) < 0);
    web_free(&w);
    assert_string_equal(web_content_type("a.css"), "text/css; charset=utf-8");
    assert_null(web_content_type("a.c"));
    assert_null(web_content_type(".js.bak"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_list),
        cmocka_unit_test(verdicts),
        cmocka_unit_test(static_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
