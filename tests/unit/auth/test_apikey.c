/* API keys: shape, uniqueness, the hash of the presented key equals the stored one, names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "util/status.h"

static void keys_have_their_shape_and_hash(void **state)
{
    char a[APIKEY_LEN + 1], b[APIKEY_LEN + 1];
    uint8_t ha[32], hb[32], again[32];
    (void)state;
    assert_int_equal(auth_init(), CD_OK);
    apikey_new(a, ha);
    apikey_new(b, hb);
    assert_int_equal(strlen(a), APIKEY_LEN);
    assert_memory_equal(a, "ck_", 3);
    assert_true(apikey_shape_ok(a, strlen(a)));
    assert_string_not_equal(a, b);
    assert_memory_not_equal(ha, hb, 32);
    apikey_hash(a, strlen(a), again);
    assert_memory_equal(ha, again, 32);
}

static void shapes_and_names(void **state)
{
    const char *jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2lnbmF0dXJlc2lnbmF0dXJlc2ln";
    char k[APIKEY_LEN + 1];
    (void)state;
    assert_false(apikey_shape_ok(jwt, strlen(jwt)));
    memset(k, 'a', APIKEY_LEN);
    k[APIKEY_LEN] = '\0';
    assert_false(apikey_shape_ok(k, APIKEY_LEN)); /* no prefix */
    memcpy(k, "ck_", 3);
    assert_true(apikey_shape_ok(k, APIKEY_LEN));
    k[10] = '.';
    assert_false(apikey_shape_ok(k, APIKEY_LEN));
    assert_false(apikey_shape_ok(k, APIKEY_LEN - 1));
    assert_true(apikey_name_ok("billing backend", 15));
    assert_false(apikey_name_ok("", 0));
    assert_false(apikey_name_ok("a\"b", 3));
    assert_false(apikey_name_ok("a\nb", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_have_their_shape_and_hash),
        cmocka_unit_test(shapes_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
