/* The webhook engine's pure parts: the signature (an HMAC-SHA256 test vector: RFC 4231 case 2
 * key and data, data prefixed with "<t>."), the backoff schedule with its jitter bounds, the type
 * filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "roles/roles_webhook.h"

/* The MAC covers "<t>.<body>" with the secret as the key. */
static void signature_format_and_value(void **state)
{
    char sig[ROLES_SIG_MAX];
    (void)state;
    roles_webhook_sign("Jefe", 1, "what do ya want for nothing?", 28, sig);
    /* HMAC-SHA256("Jefe", "1.what do ya want for nothing?"), computed independently with
     * `printf '1.what do ya want for nothing?' | openssl dgst -sha256 -hmac Jefe`. */
    assert_string_equal(sig,
                        "t=1,v1=a9049465ce89cfb8e9aac62333abda66f80e3403f51f57f6bae3c3a4485eca38");
}

static void backoff_doubles_caps_and_jitters(void **state)
{
    struct roles_webhook_cfg c = {.retry_base_ms = 1000, .retry_max_ms = 60000};
    (void)state;
    assert_int_equal(roles_webhook_backoff(&c, 1, 0.0), 500);
    assert_int_equal(roles_webhook_backoff(&c, 1, 0.999999), 999);
    assert_int_equal(roles_webhook_backoff(&c, 2, 0.0), 1000);
    assert_int_equal(roles_webhook_backoff(&c, 4, 0.0), 4000);
    assert_int_equal(roles_webhook_backoff(&c, 7, 0.0), 30000); /* 64000 capped at 60000 */
    assert_int_equal(roles_webhook_backoff(&c, 60, 0.0), 30000);
}

static void type_filter(void **state)
{
    (void)state;
    assert_true(roles_webhook_type_match("*", "message", 7));
    assert_true(roles_webhook_type_match("", "message", 7));
    assert_true(roles_webhook_type_match("member,message", "message", 7));
    assert_false(roles_webhook_type_match("member,room", "message", 7));
    assert_false(roles_webhook_type_match("messages", "message", 7));
    assert_false(roles_webhook_type_match("mess", "message", 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signature_format_and_value),
        cmocka_unit_test(backoff_doubles_caps_and_jitters),
        cmocka_unit_test(type_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
