/* The flat JSON scanner of the `send` hot path, checked against jansson: whatever it accepts,
 * jansson parses to the same members and values; what it refuses is left to jansson. Plus the
 * hand-written cases at its edges (escapes, numbers, duplicates, trailing bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "util/jsonflat.h"

static int scan(const char *s, struct jsonflat_field *f)
{
    return jsonflat_scan(s, strlen(s), f, 8);
}

static void accepts_the_send_shape(void **state)
{
    struct jsonflat_field f[8];
    (void)state;
    const char *s = " {\"type\":\"send\", \"id\" : 42,\"room\":\"r_1\",\"client_msg_id\":\"c-1\","
                    "\"body\":\"h\xc3\xa9llo\"}\n";
    assert_int_equal(scan(s, f), 5);
    assert_int_equal(f[1].kind, JSONFLAT_INT);
    assert_int_equal(f[1].num, 42);
    assert_int_equal(f[4].kind, JSONFLAT_STRING);
    assert_int_equal(f[4].val_len, 6);
    assert_memory_equal(f[4].val, "h\xc3\xa9llo", 6);
    assert_int_equal(scan("{}", f), 0);
    assert_int_equal(scan("{\"id\":-7}", f), 1);
    assert_int_equal(f[0].num, -7);
    assert_int_equal(scan("{\"id\":0}", f), 1);
    assert_int_equal(scan("{\"id\":999999999999999999}", f), 1);
    assert_int_equal(f[0].num, 999999999999999999LL);
}

static void refuses_what_it_does_not_fully_understand(void **state)
{
    static const char *const no[] = {
        "",
        "[]",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":\"x\\\"y\"}",
        "{\"a\":\"\\u0041\"}",
        "{\"a\\n\":1}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":1.5}",
        "{\"a\":1e3}",
        "{\"a\":-0.0}",
        "{\"a\":1234567890123456789}",
        "{\"a\":true}",
        "{\"a\":null}",
        "{\"a\":{}}",
        "{\"a\":[1]}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":\"unterminated}",
        "{a:1}",
        "{\"a\":+1}",
        "{\"a\":1 2}",
    };
    struct jsonflat_field f[8];
    (void)state;
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (scan(no[i], f) != -1) fail_msg("accepted %s", no[i]);
    /* more members than room for them */
    assert_int_equal(jsonflat_scan("{\"a\":1,\"b\":2,\"c\":3}", 19, f, 2), -1);
}

/* Random texts from a small alphabet of JSON pieces: every accepted one agrees with jansson. */
static void agrees_with_jansson(void **state)
{
    static const char *const pieces[] = {
        "{", "}", "\"",       ":",     ",",     " ",     "a",  "b",  "\\", "1", "0",    "-",  ".",
        "e", "x", "\xc3\xa9", "\"a\"", "\"b\"", "\"s\"", "12", "-3", "[",  "]", "true", "\n",
    };
    struct jsonflat_field f[8];
    char text[256];
    unsigned seed = 12345;
    int accepted = 0;
    (void)state;
    for (int round = 0; round < 200000; round++) {
        size_t len = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 14;
        for (int k = 0; k < parts; k++) {
            const char *pc = pieces[((seed = seed * 1103515245u + 12345u) >> 16) % 25];
            size_t pl = strlen(pc);
            if (len + pl >= sizeof(text)) break;
            memcpy(text + len, pc, pl);
            len += pl;
        }
        /* every third text gets a well-formed object, so acceptance is exercised */
        if (round % 3 == 0)
            len = (size_t)snprintf(text, sizeof(text), "{\"k%d\":%d,\"s\":\"v%d\"}", round % 7,
                                   round % 5 - 2, round);
        int n = jsonflat_scan(text, len, f, 8);
        if (n < 0) continue;
        accepted++;
        json_error_t err;
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(o) || json_object_size(o) != (size_t)n)
            fail_msg("accepted but jansson disagrees: %.*s", (int)len, text);
        for (int i = 0; i < n; i++) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)f[i].key_len, f[i].key);
            json_t *v = json_object_get(o, key);
            if (f[i].kind == JSONFLAT_INT) {
                if (!json_is_integer(v) || json_integer_value(v) != f[i].num)
                    fail_msg("integer %s differs in %.*s", key, (int)len, text);
            } else if (!json_is_string(v) || json_string_length(v) != f[i].val_len ||
                       memcmp(json_string_value(v), f[i].val, f[i].val_len) != 0) {
                fail_msg("string %s differs in %.*s", key, (int)len, text);
            }
        }
        json_decref(o);
    }
    assert_true(accepted > 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_the_send_shape),
        cmocka_unit_test(refuses_what_it_does_not_fully_understand),
        cmocka_unit_test(agrees_with_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
