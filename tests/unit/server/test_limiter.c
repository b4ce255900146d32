/* Keyed limiter: take, peek (used / wait) without taking, disabled limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "server/limiter.h"

static void peek_does_not_take(void **state)
{
    struct limiter l;
    int used = -1;
    (void)state;
    limiter_init(&l, 1, 2, 1);
    assert_int_equal(limiter_peek(&l, "a", 1, 1000, &used), 0);
    assert_int_equal(used, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(limiter_peek(&l, "a", 1, 1000, NULL), 0);
    assert_int_equal(limiter_take(&l, "a", 1, 1000), 0);
    assert_int_equal(limiter_peek(&l, "a", 1, 1000, &used), 0);
    assert_int_equal(used, 1); /* one token gone */
    assert_int_equal(limiter_take(&l, "a", 1, 1000), 0);
    assert_int_equal(limiter_peek(&l, "a", 1, 1000, &used), 1000); /* empty: 1 s at 1/s */
    assert_int_equal(used, 1);
    /* another key is untouched */
    assert_int_equal(limiter_peek(&l, "b", 1, 1000, &used), 0);
    assert_int_equal(used, 0);
    /* refilled after 2 s: unused again */
    assert_int_equal(limiter_peek(&l, "a", 1, 3000, &used), 0);
    assert_int_equal(used, 0);
    limiter_free(&l);
}

static void disabled_never_limits(void **state)
{
    struct limiter l;
    int used = -1;
    (void)state;
    limiter_init(&l, 1, 1, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(limiter_take(&l, "a", 1, 1000), 0);
    assert_int_equal(limiter_peek(&l, "a", 1, 1000, &used), 0);
    assert_int_equal(used, 0);
    limiter_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(peek_does_not_take),
        cmocka_unit_test(disabled_never_limits),
    };
    if (sodium_init() < 0) return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
