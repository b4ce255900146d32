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

/* Edit, delete and reaction entries: type by kind, then their stored details. */
static void op_entries_take_their_type(void **state)
{
    static const char details[] = "{\"target\":5,\"user\":\"u_2\",\"ts\":9}";
    struct store_event ev = {.room_id = 7, .seq = 12, .kind = EV_DELETE, .sender = 2};
    (void)state;
    ev.body = details;
    ev.body_len = sizeof(details) - 1;
    expect_json(&ev, "{\"type\":\"delete\",\"room\":\"r_7\",\"seq\":12,\"target\":5,"
                     "\"user\":\"u_2\",\"ts\":9}");
    ev.kind = EV_EDIT;
    expect_json(&ev, "{\"type\":\"edit\",\"room\":\"r_7\",\"seq\":12,\"target\":5,"
                     "\"user\":\"u_2\",\"ts\":9}");
    ev.kind = EV_REACTION;
    expect_json(&ev, "{\"type\":\"reaction\",\"room\":\"r_7\",\"seq\":12,\"target\":5,"
                     "\"user\":\"u_2\",\"ts\":9}");
}

/* A message read with its state: links, edit, thread counts, reactions (the store's
 * "emoji\tcount\tme" lines, emoji escaped as JSON), state_seq; a plain one has none of them. */
static void message_state_fields(void **state)
{
    static const char reactions[] = "\xf0\x9f\x91\x8d\t2\t1\n\"\t1\t0";
    struct store_event ev = {.room_id = 7,
                             .seq = 3,
                             .kind = EV_MESSAGE,
                             .sender = 1,
                             .ts = 100,
                             .body = "hi",
                             .body_len = 2};
    (void)state;
    expect_json(&ev, "{\"type\":\"message\",\"room\":\"r_7\",\"seq\":3,\"msg_id\":\"m_7_3\","
                     "\"sender\":\"u_1\",\"body\":\"hi\",\"ts\":100,\"client_msg_id\":null}");
    ev.reply_to = 2;
    ev.thread = 1;
    ev.edited_at = 150;
    ev.reply_count = 4;
    ev.last_reply_seq = 9;
    ev.state_seq = 10;
    ev.reactions = reactions;
    ev.reactions_len = sizeof(reactions) - 1;
    expect_json(&ev, "{\"type\":\"message\",\"room\":\"r_7\",\"seq\":3,\"msg_id\":\"m_7_3\","
                     "\"sender\":\"u_1\",\"body\":\"hi\",\"ts\":100,\"client_msg_id\":null,"
                     "\"reply_to\":2,\"thread\":1,\"edited_at\":150,\"reply_count\":4,"
                     "\"last_reply_seq\":9,\"reactions\":[{\"emoji\":\"\xf0\x9f\x91\x8d\","
                     "\"count\":2,\"me\":true},{\"emoji\":\"\\\"\",\"count\":1,\"me\":false}],"
                     "\"state_seq\":10}");
    ev.deleted = 1;
    ev.reactions = NULL;
    ev.reactions_len = 0;
    ev.reply_to = ev.thread = ev.edited_at = ev.reply_count = 0;
    ev.body_len = 0;
    expect_json(&ev, "{\"type\":\"message\",\"room\":\"r_7\",\"seq\":3,\"msg_id\":\"m_7_3\","
                     "\"sender\":\"u_1\",\"body\":\"\",\"ts\":100,\"client_msg_id\":null,"
                     "\"deleted\":true,\"state_seq\":10}");
}

/* A read for one user may mark a message "blocked" (the last member); the frame holds the same
 * text after its WebSocket header. */
static void blocked_mark(void **state)
{
    static const char want[] = "{\"type\":\"message\",\"room\":\"r_7\",\"seq\":3,"
                               "\"msg_id\":\"m_7_3\",\"sender\":\"u_1\",\"body\":\"hi\","
                               "\"ts\":100,\"client_msg_id\":null,\"blocked\":true}";
    struct store_event ev = {.room_id = 7,
                             .seq = 3,
                             .kind = EV_MESSAGE,
                             .sender = 1,
                             .ts = 100,
                             .body = "hi",
                             .body_len = 2};
    struct jsonw w;
    struct rbuf *f;
    (void)state;
    jsonw_init(&w, 16);
    events_log_json_mark(&w, &ev, 1);
    assert_int_equal(jsonw_text_len(&w), strlen(want));
    assert_memory_equal(jsonw_text(&w), want, strlen(want));
    jsonw_free(&w);
    f = events_log_frame_mark(&ev, 1);
    assert_true(f->len > strlen(want));
    assert_memory_equal(f->data + f->len - strlen(want), want, strlen(want));
    rbuf_unref(f);
    f = events_log_frame_mark(&ev, 0); /* unmarked: as events_log_frame */
    assert_memory_equal(f->data + f->len - 2, "l}", 2);
    rbuf_unref(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(member_details_carry_no_seq), cmocka_unit_test(room_details_carry_no_seq),
        cmocka_unit_test(legacy_entries_are_copied),   cmocka_unit_test(op_entries_take_their_type),
        cmocka_unit_test(message_state_fields),        cmocka_unit_test(blocked_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
