/* util/log: every line is one valid JSON object whatever the values hold (quotes, backslashes,
 * control characters, invalid UTF-8, huge strings), the values survive the round trip, and the
 * thread's request id is on every line while it is set. Lines are captured by pointing stderr at
 * a temporary file and parsed back with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "util/log.h"

static char path[64];
static int saved_fd;

/* Redirect stderr to a fresh file. */
static void capture(void)
{
    int fd;
    snprintf(path, sizeof(path), "/tmp/chatd-log-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* Restore stderr; return the captured lines parsed (an array), failing on any invalid line. */
static json_t *captured(void)
{
    char line[16384];
    json_t *arr = json_array();
    FILE *f;

    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        json_error_t err;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (!json_is_object(o)) fail_msg("not a JSON object (%s): %s", err.text, line);
        json_array_append_new(arr, o);
    }
    fclose(f);
    unlink(path);
    return arr;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void values_are_escaped(void **state)
{
    const char nasty[] = "a\"b\\c\x01\x1f\n\t\x7f/\xc3\xa9}";
    const char bad_utf8[] = "x\xff\xc3y\xed\xa0\x80z";
    const char slice[] = {'p', '\0', 'q', '"'};
    json_t *lines, *o;
    (void)state;

    capture();
    log_info("msg with \"quotes\"", "\"v\":\"%s\",\"n\":%d,\"u\":%llu", nasty, -5, 7ULL);
    log_warn("bad utf8", "\"v\":\"%s\"", bad_utf8);
    log_info("slice", "\"v\":\"%.*s\",\"c\":\"%c\",\"z\":%zu", (int)sizeof(slice), slice, '"',
             (size_t)3);
    {
        const char *volatile none = NULL; /* hidden from the compiler's format check */
        log_error("null", "\"v\":\"%s\"", none);
    }
    log_info("no fields", "%s", "");
    lines = captured();
    assert_int_equal(json_array_size(lines), 5);

    o = json_array_get(lines, 0);
    assert_string_equal(str(o, "msg"), "msg with \"quotes\"");
    assert_string_equal(str(o, "v"), nasty);
    assert_int_equal(json_integer_value(json_object_get(o, "n")), -5);
    assert_int_equal(json_integer_value(json_object_get(o, "u")), 7);
    assert_string_equal(str(o, "level"), "info");

    o = json_array_get(lines, 1);
    assert_string_equal(str(o, "v"),
                        "x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz");

    o = json_array_get(lines, 2);
    assert_int_equal(json_string_length(json_object_get(o, "v")), 4);
    assert_memory_equal(json_string_value(json_object_get(o, "v")), slice, 4);
    assert_string_equal(str(o, "c"), "\"");
    assert_int_equal(json_integer_value(json_object_get(o, "z")), 3);

    assert_string_equal(str(json_array_get(lines, 3), "v"), "");
    json_decref(lines);
}

static void long_values_are_cut_never_broken(void **state)
{
    char *big = malloc(100000);
    json_t *lines, *o;
    (void)state;
    memset(big, '"', 99999);
    big[99999] = '\0';

    capture();
    log_info("big", "\"v\":\"%s\",\"after\":1", big);
    log_info("many", "\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\",\"d\":\"%s\",\"e\":\"%s\"", big, big,
             big, big, big);
    lines = captured();
    assert_int_equal(json_array_size(lines), 2);
    o = json_array_get(lines, 0);
    assert_true(strlen(str(o, "v")) < 1024);
    assert_int_equal(json_integer_value(json_object_get(o, "after")), 1);
    o = json_array_get(lines, 1);
    assert_true(json_is_true(json_object_get(o, "log_truncated")));
    assert_string_equal(str(o, "msg"), "many");
    json_decref(lines);
    free(big);
}

static void request_id_on_every_line(void **state)
{
    json_t *lines;
    const char *prev;
    (void)state;

    capture();
    prev = log_request_id_set("r-1\"x");
    log_info("one", "\"k\":%d", 1);
    log_error("two", "%s", "");
    log_request_id_set(prev);
    log_info("three", "\"k\":%d", 3);
    lines = captured();
    assert_int_equal(json_array_size(lines), 3);
    assert_string_equal(str(json_array_get(lines, 0), "request_id"), "r-1\"x");
    assert_string_equal(str(json_array_get(lines, 1), "request_id"), "r-1\"x");
    assert_null(json_object_get(json_array_get(lines, 2), "request_id"));
    json_decref(lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_escaped),
        cmocka_unit_test(long_values_are_cut_never_broken),
        cmocka_unit_test(request_id_on_every_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
