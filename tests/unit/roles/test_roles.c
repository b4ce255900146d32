/* --roles parsing and formatting; roles_start with no worker registered for a role. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "roles/roles.h"
#include "util/status.h"

static void parse_and_format(void **state)
{
    unsigned m = 0;
    char bad[32], out[96];
    (void)state;
    assert_int_equal(roles_parse("all", &m, bad, sizeof(bad)), CD_OK);
    assert_int_equal(m, ROLES_ALL);
    assert_int_equal(roles_parse("gateway", &m, bad, sizeof(bad)), CD_OK);
    assert_int_equal(m, ROLES_GATEWAY);
    assert_int_equal(roles_parse(" relay , exporter", &m, bad, sizeof(bad)), CD_OK);
    assert_int_equal(m, ROLES_RELAY | ROLES_EXPORTER);
    roles_format(m, out, sizeof(out));
    assert_string_equal(out, "relay,exporter");
    assert_int_equal(roles_parse("notifier,indexer,gateway", &m, bad, sizeof(bad)), CD_OK);
    roles_format(m, out, sizeof(out));
    assert_string_equal(out, "gateway,notifier,indexer");
    assert_int_equal(roles_parse("gateway,bogus", &m, bad, sizeof(bad)), CD_E_INVALID_FIELD);
    assert_string_equal(bad, "bogus");
    assert_int_equal(roles_parse("gateway,,relay", &m, bad, sizeof(bad)), CD_E_INVALID_FIELD);
    assert_string_equal(bad, "");
    assert_int_equal(roles_parse("", &m, bad, sizeof(bad)), CD_E_INVALID_FIELD);
}

static void start_without_workers(void **state)
{
    struct roles_env env = {0};
    struct roles_run *run = NULL;
    size_t n = 99;
    (void)state;
    roles_workers(&n);
    assert_true(n < 99);
    /* Roles with no worker in the table (the relay, notifier and exporter workers need a
     * store and settings). */
    assert_int_equal(roles_start(ROLES_GATEWAY | ROLES_INDEXER, &env, &run), CD_OK);
    assert_non_null(run);
    roles_stop(run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_and_format),
        cmocka_unit_test(start_without_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
