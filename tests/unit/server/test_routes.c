/* The route table's lookup and the external ids (src/server/routes.c); regressions found by
 * fuzz/fuzz_path.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <http_parser.h>

#include "server/app.h"

static struct slice S(const char *s) {
    return (struct slice){s, strlen(s)};
}

/* Every id id_format writes parses back, up to INT64_MAX (values above 9223372036854775799 were
 * refused). */
static void
id_roundtrip_to_int64_max(void **state)
{
    static const int64_t vals[] = {1,
                                   9,
                                   10,
                                   922337203685477580,
                                   9223372036854775799,
                                   9223372036854775800,
                                   9223372036854775806,
                                   INT64_MAX};
    char buf[32];
    int64_t v;
    (void)state;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        id_format(buf, sizeof(buf), 'u', vals[i]);
        assert_true(id_parse(S(buf), 'u', &v));
        assert_true(v == vals[i]);
    }
    assert_false(id_parse(S("u_9223372036854775808"), 'u', &v));
    assert_false(id_parse(S("u_9999999999999999999"), 'u', &v));
    assert_false(id_parse(S("u_0"), 'u', &v));
    assert_false(id_parse(S("r_1"), 'u', &v));
    assert_false(id_parse(S("u_1x"), 'u', &v));
}

static void lookup(void **state)
{
    struct slice p1 = {0}, p2 = {0};
    int i;
    (void)state;
    assert_int_equal(route_lookup(HTTP_GET, S("/nope"), &p1, &p2), ROUTE_LOOKUP_NONE);
    assert_int_equal(route_lookup(HTTP_PUT, S("/healthz"), &p1, &p2), ROUTE_LOOKUP_METHOD);
    assert_int_equal(route_lookup(HTTP_GET, S("/v1/rooms//messages"), &p1, &p2), ROUTE_LOOKUP_NONE);
    i = route_lookup(HTTP_DELETE, S("/v1/rooms/r_1/members/u_2"), &p1, &p2);
    assert_true(i >= 0);
    assert_int_equal(p1.len, 3);
    assert_memory_equal(p1.p, "r_1", 3);
    assert_int_equal(p2.len, 3);
    assert_memory_equal(p2.p, "u_2", 3);
    assert_int_equal(route_lookup(HTTP_DELETE, S("/v1/rooms/r_1/members/u_2/"), &p1, &p2),
                     ROUTE_LOOKUP_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(id_roundtrip_to_int64_max),
        cmocka_unit_test(lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
