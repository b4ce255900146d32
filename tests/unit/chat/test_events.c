/* The client JSON of log entries: member and room entries are stored without a seq (the store
 * assigns it at the append) and get type, room and seq when they are encoded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "chat/events.h"

static void expect_json(const struct store_event *ev, const char *want)
{
    struct jsonw w;
    jsonw_init(&w, 16);
    events_log_json(&w, ev);
    assert_int_equal(jsonw_text_len(&w), strlen(want));
    assert_memory_equal(jsonw_text(&w), want, strlen(want));
    jsonw_free(&w);
}

static void member_details_carry_no_seq(void **state)
{
    struct jsonw w;
    struct store_event ev = {.room_id = 7, .seq = 42, .kind = EV_MEMBER, .sender = 1};
    (void)state;
    jsonw_init(&w, 16);
    events_member_json(&w, 3, "join", ROLE_ADMIN, 1, 5, 1000);
    assert_null(memmem(jsonw_text(&w), jsonw_text_len(&w), "seq", 3));
    ev.body = jsonw_text(&w);
    ev.body_len = jsonw_text_len(&w);
    expect_json(&ev, "{\"type\":\"member\",\"room\":\"r_7\",\"seq\":42,\"user\":\"u_3\","
                     "\"action\":\"join\",\"role\":\"admin\",\"by\":\"u_1\",\"member_count\":5,"
                     "\"ts\":1000}");
    ev.seq = 43; /* the same stored details under another seq */
    expect_json(&ev, "{\"type\":\"member\",\"room\":\"r_7\",\"seq\":43,\"user\":\"u_3\","
                     "\"action\":\"join\",\"role\":\"admin\",\"by\":\"u_1\",\"member_count\":5,"
                     "\"ts\":1000}");
    jsonw_free(&w);
}

static void room_details_carry_no_seq(void **state)
{
    struct jsonw w;
    struct store_event ev = {.room_id = 9, .seq = 3, .kind = EV_ROOM, .sender = 2};
    (void)state;
    jsonw_init(&w, 16);
    events_room_json(&w, "n\"ame", "", 2, 5);
    ev.body = jsonw_text(&w);
    ev.body_len = jsonw_text_len(&w);
    expect_json(&ev, "{\"type\":\"room\",\"room\":\"r_9\",\"seq\":3,\"name\":\"n\\\"ame\","
                     "\"topic\":\"\",\"by\":\"u_2\",\"ts\":5}");
    jsonw_free(&w);
}

static void legacy_entries_are_copied(void **state)
{
    static const char old[] = "{\"type\":\"member\",\"room\":\"r_1\",\"seq\":2,\"user\":\"u_1\"}";
    struct store_event ev = {
        .room_id = 1, .seq = 2, .kind = EV_MEMBER, .body = old, .body_len = sizeof(old) - 1};
    (void)state;
    expect_json(&ev, old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(member_details_carry_no_seq),
        cmocka_unit_test(room_details_carry_no_seq),
        cmocka_unit_test(legacy_entries_are_copied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
