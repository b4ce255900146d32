/* The JSON builder's number and id output (written without printf on the hot path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util/jsonw.h"

static void numbers_and_ids_match_printf(void **state)
{
    static const int64_t v[] = {0,   1,         -1,         9,         10,        99,
                                100, 123456789, -987654321, INT64_MAX, INT64_MIN, 1764612345678LL};
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct jsonw w;
        char want[128];
        jsonw_init(&w, 4);
        jsonw_int(&w, v[i]);
        jsonw_lit(&w, " ");
        jsonw_id(&w, 'r', v[i]);
        jsonw_lit(&w, " ");
        jsonw_msg_id(&w, v[i], v[(i + 1) % (sizeof(v) / sizeof(v[0]))]);
        snprintf(want, sizeof(want), "%lld \"r_%lld\" \"m_%lld_%lld\"", (long long)v[i],
                 (long long)v[i], (long long)v[i],
                 (long long)v[(i + 1) % (sizeof(v) / sizeof(v[0]))]);
        assert_int_equal(jsonw_text_len(&w), strlen(want));
        assert_memory_equal(jsonw_text(&w), want, strlen(want));
        jsonw_free(&w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_and_ids_match_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
