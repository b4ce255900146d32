/* Opaque session ids (auth/session.c): drawn at random from a range far above the sequential
 * ids of older sessions, drawn again when taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "auth/session.h"
#include "util/status.h"

static void ids_are_random_and_large(void **state)
{
    int64_t prev = 0;
    (void)state;
    for (int i = 0; i < 1000; i++) {
        int64_t id = session_new_id();
        assert_true(id >= SESSION_ID_MIN);
        assert_true(id < SESSION_ID_MAX);
        if (i) assert_true(id != prev && id != prev + 1); /* not a sequence */
        prev = id;
    }
}

/* A store whose first `taken` draws collide. */
static int taken, calls;
static int64_t last_id;
static int fake_insert_id(struct store_conn *c, int64_t id, int64_t user_id, int64_t now_ms)
{
    (void)c;
    assert_int_equal(user_id, 42);
    assert_int_equal(now_ms, 1000);
    assert_true(id >= SESSION_ID_MIN && id < SESSION_ID_MAX);
    calls++;
    last_id = id;
    return calls <= taken ? CD_E_CONFLICT : CD_OK;
}

static void taken_ids_are_drawn_again(void **state)
{
    struct store_ops ops = {.session_insert_id = fake_insert_id};
    int64_t sid = 0;
    (void)state;
    taken = 3;
    calls = 0;
    assert_int_equal(session_create(&ops, NULL, 42, 1000, &sid), CD_OK);
    assert_int_equal(calls, 4);
    assert_true(sid == last_id);
    taken = 100; /* never free: gives up after a few draws */
    calls = 0;
    assert_int_equal(session_create(&ops, NULL, 42, 1000, &sid), CD_E_CONFLICT);
    assert_int_equal(calls, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_are_random_and_large),
        cmocka_unit_test(taken_ids_are_drawn_again),
    };
    if (sodium_init() < 0) return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
