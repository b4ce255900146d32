/* The ended-sessions set: membership until each entry's end, the later end wins, expired
 * entries are swept as the set grows, and concurrent adds and lookups from several threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <uv.h>

#include "auth/revoked.h"

static void member_until_its_end(void **state)
{
    struct revoked *r = revoked_new();
    (void)state;
    assert_false(revoked_has(r, 7, 100));
    revoked_add(r, 7, 100, 200);
    assert_true(revoked_has(r, 7, 100));
    assert_true(revoked_has(r, 7, 199));
    assert_false(revoked_has(r, 7, 200));
    assert_false(revoked_has(r, 8, 150));
    revoked_add(r, 7, 150, 180); /* an earlier end does not shorten it */
    assert_true(revoked_has(r, 7, 190));
    revoked_add(r, 7, 150, 300);
    assert_true(revoked_has(r, 7, 250));
    revoked_free(r);
}

static void expired_entries_are_swept(void **state)
{
    struct revoked *r = revoked_new();
    (void)state;
    for (int64_t sid = 1; sid <= 1000; sid++)
        revoked_add(r, sid, 100, 200);
    assert_int_equal(revoked_count(r), 1000);
    /* Past their end, the next adds sweep them once the set reaches its sweep size. */
    for (int64_t sid = 1001; sid <= 1100; sid++)
        revoked_add(r, sid, 500, 600);
    assert_true(revoked_count(r) <= 100);
    assert_false(revoked_has(r, 5, 500));
    assert_true(revoked_has(r, 1050, 500));
    revoked_free(r);
}

#define THREADS 4
#define PER     5000

struct adder_arg {
    struct revoked *r;
    int64_t base;
};

static void adder(void *arg)
{
    struct adder_arg *a = arg;
    for (int64_t i = 0; i < PER; i++) {
        revoked_add(a->r, a->base + i, 10, 1000);
        if (!revoked_has(a->r, a->base + i, 20)) abort();
    }
}

static void concurrent_adds_and_lookups(void **state)
{
    struct revoked *r = revoked_new();
    struct adder_arg args[THREADS];
    uv_thread_t t[THREADS];
    (void)state;
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct adder_arg){r, (int64_t)i * PER + 1};
        assert_int_equal(uv_thread_create(&t[i], adder, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
    assert_int_equal(revoked_count(r), THREADS * PER);
    for (int64_t sid = 1; sid <= THREADS * PER; sid++)
        assert_true(revoked_has(r, sid, 500));
    revoked_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(member_until_its_end),
        cmocka_unit_test(expired_entries_are_swept),
        cmocka_unit_test(concurrent_adds_and_lookups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
