/* The pure rules of chat/people.c: opaque ids, profile text, avatar ids, prefix ranges and the
 * in-memory block set that filters presence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "chat/people.h"
#include "util/status.h"

static void ids_are_random_and_large(void **state)
{
    int64_t prev = 0;
    (void)state;
    for (int i = 0; i < 1000; i++) {
        int64_t id = people_new_user_id();
        assert_true(id >= PEOPLE_ID_MIN);
        assert_true(id < PEOPLE_ID_MAX);
        if (i) assert_true(id != prev && id != prev + 1); /* not a sequence */
        prev = id;
    }
}

static void profile_text(void **state)
{
    (void)state;
    assert_true(people_text_valid("", 0, 10));
    assert_true(people_text_valid("Ada", 3, 10));
    assert_true(people_text_valid("\xd0\x90\xd0\xb4\xd0\xb0", 6, 10)); /* Ада */
    assert_false(people_text_valid("Ada", 3, 2));                      /* over max bytes */
    assert_false(people_text_valid("a\nb", 3, 10));                    /* C0 */
    assert_false(people_text_valid("a\x7f", 2, 10));                   /* DEL */
    assert_false(people_text_valid("a\xc2\x85", 3, 10));               /* C1 (NEL) */
    assert_true(people_text_valid("a\xc2\xa0", 3, 10));                /* NBSP is text */
    assert_false(people_text_valid("\xff", 1, 10));                    /* not UTF-8 */
    assert_false(people_text_valid("\xe2\x82", 2, 10));                /* truncated */
}

static void avatar_ids(void **state)
{
    (void)state;
    assert_true(people_avatar_valid("", 0));
    assert_true(people_avatar_valid("att_0123456789abcdef0123456789abcdef", 36));
    assert_false(people_avatar_valid("att_0123456789ABCDEF0123456789abcdef", 36)); /* lowercase */
    assert_false(people_avatar_valid("att_0123456789abcdef0123456789abcde", 35));
    assert_false(people_avatar_valid("a_Zz09-_", 8)); /* not an upload id */
    assert_false(people_avatar_valid("../x", 4));
    assert_false(people_avatar_valid("a b", 3));
}

/* Uploads for people_avatar_check: "aa..." is user 7's PNG, "bb..." user 7's text file,
 * "cc..." user 8's PNG. */
#define ATT_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ATT_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ATT_C "cccccccccccccccccccccccccccccccc"
static int fake_att_get(struct store_conn *c, const char *id, struct store_attachment *out)
{
    (void)c;
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", id);
    if (!strcmp(id, ATT_A) || !strcmp(id, ATT_C)) {
        out->owner = !strcmp(id, ATT_A) ? 7 : 8;
        snprintf(out->content_type, sizeof(out->content_type), "image/png");
        return CD_OK;
    }
    if (!strcmp(id, ATT_B)) {
        out->owner = 7;
        snprintf(out->content_type, sizeof(out->content_type), "text/plain");
        return CD_OK;
    }
    return CD_E_NOT_FOUND;
}

static void avatar_check(void **state)
{
    struct store_ops ops = {.attachment_get = fake_att_get};
    const char *why;
    (void)state;
    assert_int_equal(people_avatar_check(&ops, NULL, 7, "att_" ATT_A, &why), CD_OK);
    assert_null(why);
    assert_int_equal(people_avatar_check(&ops, NULL, 7, "att_" ATT_B, &why), CD_E_INVALID_FIELD);
    assert_non_null(strstr(why, "image"));
    assert_int_equal(people_avatar_check(&ops, NULL, 7, "att_" ATT_C, &why), CD_E_NOT_FOUND);
    assert_non_null(why); /* another user's upload: as if it did not exist */
    assert_int_equal(people_avatar_check(&ops, NULL, 8, "att_" ATT_C, &why), CD_OK);
    assert_int_equal(
        people_avatar_check(&ops, NULL, 7, "att_dddddddddddddddddddddddddddddddd", &why),
        CD_E_NOT_FOUND);
    assert_int_equal(people_avatar_check(&ops, NULL, 7, "att_x", &why), CD_E_INVALID_FIELD);
}

static void prefix_ranges(void **state)
{
    char lo[STORE_USERNAME_MAX + 1], hi[STORE_USERNAME_MAX + 1];
    (void)state;
    assert_true(people_prefix_range("ab", 2, lo, hi));
    assert_string_equal(lo, "ab");
    assert_string_equal(hi, "ac");
    assert_true(people_prefix_range("a_", 2, lo, hi));
    assert_string_equal(hi, "a`"); /* '_' + 1: every name starting "a_" sorts below */
    assert_true(people_prefix_range("z9", 2, lo, hi));
    assert_string_equal(hi, "z:");
    assert_false(people_prefix_range("a", 1, lo, hi)); /* under the minimum */
    assert_false(people_prefix_range("aB", 2, lo, hi));
    assert_false(people_prefix_range("a%", 2, lo, hi)); /* no LIKE wildcards or others */
    assert_false(people_prefix_range("abcdefghijklmnopqrstuvwxyz0123456", 33, lo, hi));
}

static void block_set(void **state)
{
    (void)state;
    assert_false(people_blocks(1, 2));
    people_blocks_note(1, 2, 1);
    people_blocks_note(1, 2, 1); /* idempotent */
    assert_true(people_blocks(1, 2));
    assert_false(people_blocks(2, 1)); /* directed */
    for (int64_t i = 10; i < 2000; i++)
        people_blocks_note(i, i + 1, 1); /* grows */
    assert_true(people_blocks(1, 2));
    assert_true(people_blocks(1999, 2000));
    people_blocks_note(1, 2, 0);
    assert_false(people_blocks(1, 2));
    people_blocks_note(5, 500, 1);
    people_blocks_note(500, 6, 1);
    people_blocks_forget_user(500);
    assert_false(people_blocks(5, 500));
    assert_false(people_blocks(500, 6));
    assert_true(people_blocks(10, 11));
}

/* A store whose blocks table is a fixed list: pair_list reports the rows after `after`, at most
 * limit, as the backends do (ascending other id). */
static const int64_t fake_blocks[] = {3, 7, 11, 40, 41, INT64_C(1) << 40};
static int fake_fail;
static int fake_pair_list(struct store_conn *c, int table, int64_t user, int64_t after, int limit,
                          store_profile_cb cb, void *ud)
{
    int n = 0;
    (void)c;
    assert_int_equal(table, STORE_BLOCKS);
    assert_int_equal(user, 99);
    if (fake_fail) return CD_E_IO;
    for (size_t i = 0; i < sizeof(fake_blocks) / sizeof(fake_blocks[0]) && n < limit; i++) {
        struct store_profile p = {.id = fake_blocks[i]};
        if (fake_blocks[i] <= after) continue;
        n++;
        if (cb(ud, &p, NULL, 0)) break;
    }
    return CD_OK;
}

static void blocklist_marks(void **state)
{
    struct store_ops ops = {.pair_list = fake_pair_list};
    struct people_blocklist bl;
    struct store_event msg = {.kind = EV_MESSAGE, .sender = 40},
                       member = {.kind = EV_MEMBER, .sender = 40};
    (void)state;
    assert_int_equal(people_blocklist_read(&ops, NULL, 99, &bl), CD_OK);
    assert_int_equal(bl.n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_true(people_blocklist_has(&bl, fake_blocks[i]));
    assert_false(people_blocklist_has(&bl, 0));
    assert_false(people_blocklist_has(&bl, 8));
    assert_false(people_blocklist_has(&bl, 42));
    assert_false(people_blocklist_has(&bl, INT64_MAX));
    assert_true(people_blocklist_marks(&bl, &msg));
    assert_false(people_blocklist_marks(&bl, &member)); /* only messages are marked */
    msg.sender = 12;
    assert_false(people_blocklist_marks(&bl, &msg));
    people_blocklist_free(&bl);
    assert_int_equal(bl.n, 0);
    assert_false(people_blocklist_has(&bl, 3));
    fake_fail = 1; /* a failed read marks nothing */
    assert_int_equal(people_blocklist_read(&ops, NULL, 99, &bl), CD_E_IO);
    assert_int_equal(bl.n, 0);
    assert_null(bl.ids);
    fake_fail = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_are_random_and_large),
        cmocka_unit_test(profile_text),
        cmocka_unit_test(avatar_ids),
        cmocka_unit_test(avatar_check),
        cmocka_unit_test(prefix_ranges),
        cmocka_unit_test(block_set),
        cmocka_unit_test(blocklist_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
