/* bus_local: members of one group receive each other's messages on the channels they are
 * interested in (the control channel always), in publish order, never their own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bus/bus.h"
#include "util/status.h"

struct got {
    int n;
    int64_t room[16];
    char text[16][16];
};

static void recv_cb(void *ud, int64_t room, const uint8_t *data, size_t len)
{
    struct got *g = ud;
    if (g->n >= 16) return;
    g->room[g->n] = room;
    snprintf(g->text[g->n], sizeof(g->text[0]), "%.*s", (int)len, (const char *)data);
    g->n++;
}

static void interest_routes_and_no_echo(void **state)
{
    struct got ga = {0}, gb = {0}, gc = {0};
    struct bus *a, *b, *c;
    struct bus_stats st;
    (void)state;
    assert_int_equal(bus_local_open(&a, "g1", recv_cb, &ga), CD_OK);
    assert_int_equal(bus_local_open(&b, "g1", recv_cb, &gb), CD_OK);
    assert_int_equal(bus_local_open(&c, "other", recv_cb, &gc), CD_OK);

    a->ops->publish(a, 5, "x", 1); /* nobody interested in room 5 */
    assert_int_equal(gb.n, 0);
    b->ops->interest(b, 5, 1);
    a->ops->publish(a, 5, "m1", 2);
    a->ops->publish(a, 5, "m2", 2);
    a->ops->publish(a, 0, "ctl", 3);
    assert_int_equal(ga.n, 0); /* never its own */
    assert_int_equal(gb.n, 3);
    assert_string_equal(gb.text[0], "m1");
    assert_string_equal(gb.text[1], "m2");
    assert_int_equal(gb.room[1], 5);
    assert_int_equal(gb.room[2], 0);
    assert_int_equal(gc.n, 0); /* another group */
    b->ops->interest(b, 5, 0);
    a->ops->publish(a, 5, "m3", 2);
    assert_int_equal(gb.n, 3);
    b->ops->stats(b, &st);
    assert_int_equal(st.received, 3);
    assert_int_equal(st.interest_rooms, 0);
    a->ops->close(a);
    b->ops->close(b);
    c->ops->close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(interest_routes_and_no_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
