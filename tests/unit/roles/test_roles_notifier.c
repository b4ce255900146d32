/* The notifier's text rules: the excerpt is cut on a UTF-8 boundary, a mention is "@name" as a
 * whole name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "roles/roles_notifier.h"

static void excerpt_cuts_on_character_boundaries(void **state)
{
    const char *t = "ab\xe2\x82\xac\xe2\x82\xac"; /* "ab€€": 2 + 3 + 3 bytes */
    (void)state;
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 100), 8);
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 8), 8);
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 7), 5); /* not inside the second € */
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 6), 5);
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 5), 5);
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 4), 2);
    assert_int_equal(roles_notifier_excerpt_len(t, 8, 0), 0);
    /* a 4-byte character (U+1F600) */
    assert_int_equal(roles_notifier_excerpt_len("x\xf0\x9f\x98\x80", 5, 4), 1);
}

static void mentions_whole_names_only(void **state)
{
    const char *t = "hi @bob and @bobby, @al.";
    (void)state;
    assert_true(roles_notifier_mentions(t, strlen(t), "bob"));
    assert_true(roles_notifier_mentions(t, strlen(t), "bobby"));
    assert_false(roles_notifier_mentions(t, strlen(t), "bo"));
    assert_false(roles_notifier_mentions(t, strlen(t), "al")); /* "@al." continues the name */
    assert_true(roles_notifier_mentions("@al", 3, "al"));
    assert_false(roles_notifier_mentions("mail@bob", 8, "bobx"));
    assert_false(roles_notifier_mentions("no at sign", 10, "bob"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(excerpt_cuts_on_character_boundaries),
        cmocka_unit_test(mentions_whole_names_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
