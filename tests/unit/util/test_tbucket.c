/* Token bucket: burst, refill, retry hints, unlimited rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/tbucket.h"

static void burst_then_refuse(void **state)
{
    struct tbucket_rule rule = {.rate = 10, .burst = 5};
    struct tbucket b;
    (void)state;
    tbucket_init(&b, &rule, 1000);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tbucket_take(&b, &rule, 1000, 1), 0);
    /* empty: one token comes back after 100 ms at 10/s */
    assert_int_equal(tbucket_take(&b, &rule, 1000, 1), 100);
    assert_int_equal(tbucket_take(&b, &rule, 1050, 1), 50);
    assert_int_equal(tbucket_take(&b, &rule, 1100, 1), 0);
    assert_true(tbucket_take(&b, &rule, 1100, 1) > 0);
}

static void refill_caps_at_burst(void **state)
{
    struct tbucket_rule rule = {.rate = 100, .burst = 3};
    struct tbucket b;
    (void)state;
    tbucket_init(&b, &rule, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tbucket_take(&b, &rule, 0, 1), 0);
    /* an hour later the bucket holds burst tokens, not 360000 */
    for (int i = 0; i < 3; i++)
        assert_int_equal(tbucket_take(&b, &rule, 3600000, 1), 0);
    assert_true(tbucket_take(&b, &rule, 3600000, 1) > 0);
}

static void refused_take_does_not_consume(void **state)
{
    struct tbucket_rule rule = {.rate = 1, .burst = 1};
    struct tbucket b;
    (void)state;
    tbucket_init(&b, &rule, 0);
    assert_int_equal(tbucket_take(&b, &rule, 0, 1), 0);
    for (int i = 0; i < 10; i++)
        assert_true(tbucket_take(&b, &rule, 500, 1) > 0);
    assert_int_equal(tbucket_take(&b, &rule, 1000, 1), 0);
}

static void clock_going_backwards_is_harmless(void **state)
{
    struct tbucket_rule rule = {.rate = 1, .burst = 2};
    struct tbucket b;
    (void)state;
    tbucket_init(&b, &rule, 5000);
    assert_int_equal(tbucket_take(&b, &rule, 4000, 1), 0);
    assert_int_equal(tbucket_take(&b, &rule, 4000, 1), 0);
    assert_true(tbucket_take(&b, &rule, 4000, 1) > 0);
}

static void cost_above_burst_never_passes(void **state)
{
    struct tbucket_rule rule = {.rate = 1, .burst = 2};
    struct tbucket b;
    (void)state;
    tbucket_init(&b, &rule, 0);
    assert_int_equal(tbucket_take(&b, &rule, 0, 3), INT64_MAX);
}

static void zero_rate_is_unlimited(void **state)
{
    struct tbucket_rule rule = {.rate = 0, .burst = 0};
    struct tbucket b;
    (void)state;
    tbucket_init(&b, &rule, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tbucket_take(&b, &rule, 0, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refuse),
        cmocka_unit_test(refill_caps_at_burst),
        cmocka_unit_test(refused_take_does_not_consume),
        cmocka_unit_test(clock_going_backwards_is_harmless),
        cmocka_unit_test(cost_above_burst_never_passes),
        cmocka_unit_test(zero_rate_is_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
