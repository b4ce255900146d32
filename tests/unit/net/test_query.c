/* http_query_param (src/net/http.c): lookup and percent-decoding; regressions found by
 * fuzz/fuzz_path.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "net/http.h"

static int param(const char *query, const char *name, char *out, size_t cap)
{
    struct http_request r;
    memset(&r, 0, sizeof(r));
    r.query = (struct slice){query, strlen(query)};
    return http_query_param(&r, name, out, cap);
}

static void decodes(void **state)
{
    char v[32];
    (void)state;
    assert_true(param("a=1&limit=5&limit=6", "limit", v, sizeof(v)));
    assert_string_equal(v, "5");
    assert_true(param("x=a+b%20c%2fd%4", "x", v, sizeof(v)));
    assert_string_equal(v, "a b c/d%4");
    assert_true(param("x=", "x", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_false(param("x", "x", v, sizeof(v)));
    assert_false(param("x=12345", "x", v, 5)); /* does not fit */
    assert_true(param("x=1234", "x", v, 5));
    /* No room even for the terminator: an empty value wrote it past the buffer (fuzz_path). */
    v[0] = 'z';
    assert_false(param("x=", "x", v, 0));
    assert_int_equal(v[0], 'z');
}

/* A value with an encoded NUL byte is refused: as a C string "5%00x" would read as "5" and
 * "access_token=<token>%00junk" as the bare token. */
static void encoded_nul_refused(void **state)
{
    char v[32];
    (void)state;
    assert_false(param("limit=5%00x", "limit", v, sizeof(v)));
    assert_false(param("access_token=abc%00", "access_token", v, sizeof(v)));
    assert_true(param("a=%00&b=1", "b", v, sizeof(v)));
    assert_string_equal(v, "1");
}

/* A request without a query has query {NULL, 0}: computing its end was NULL + 0, undefined
 * behaviour that UBSan reports (found by fuzz/fuzz_path.c). */
static void no_query(void **state)
{
    struct http_request r;
    char v[8];
    (void)state;
    memset(&r, 0, sizeof(r));
    assert_false(http_query_param(&r, "access_token", v, sizeof(v)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes),
        cmocka_unit_test(encoded_nul_refused),
        cmocka_unit_test(no_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
