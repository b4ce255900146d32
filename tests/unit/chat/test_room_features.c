/* The room-feature and people rules of chat/rooms.c and chat/people.c on a real SQLite store:
 * blocks on every path, archive, delete, public join, invites (expiry, uses), leaving a direct
 * room, account deletion (ownership handed over, sessions revoked, username freed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat/people.h"
#include "chat/rooms.h"
#include "util/status.h"

struct fx {
    char dir[64];
    const struct store_ops *ops;
    struct store *st;
    struct store_conn *c;
    int64_t a, b, c3; /* three users */
    struct chat_out out;
};

static int64_t user(struct fx *f, const char *name)
{
    int64_t id = people_new_user_id();
    assert_int_equal(f->ops->user_insert_id(f->c, id, name, "h", 1), CD_OK);
    return id;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct store_config cfg = {0};
    struct chat_quota q = {0};
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-chat-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    cfg.dir = f->dir;
    cfg.sync_mode = "normal";
    f->ops = &store_sqlite_ops;
    if (f->ops->open(&cfg, &f->st) != CD_OK || f->ops->conn_open(f->st, 1, &f->c) != CD_OK)
        return -1;
    chat_quota_set(&q);
    chat_member_cache_reset();
    f->a = user(f, "ann");
    f->b = user(f, "bob");
    f->c3 = user(f, "cy");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[96];
    chat_out_discard(&f->out);
    f->ops->conn_close(f->c);
    f->ops->close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static int64_t group(struct fx *f, int64_t owner, const int64_t *members, size_t n)
{
    struct store_room r;
    assert_int_equal(chat_room_create(f->ops, f->c, owner, "g", "", members, n, 10, &f->out, &r),
                     CD_OK);
    return r.id;
}

static int send_as(struct fx *f, int64_t room, int64_t who, const char *cmid)
{
    struct chat_sent res;
    return chat_send(f->ops, f->c, room, who, "hi", 2, cmid, strlen(cmid), 20, &f->out, &res);
}

static void blocks_on_every_path(void **state)
{
    struct fx *f = *state;
    struct store_room dm;
    int created = 0;
    int64_t retry = 0, room;
    int64_t dmid;
    assert_int_equal(chat_dm_open(f->ops, f->c, f->a, f->b, 1, &f->out, &dm, &created, &retry),
                     CD_OK);
    dmid = dm.id;
    assert_int_equal(send_as(f, dmid, f->b, "b1"), CD_OK); /* cached now */
    assert_int_equal(people_block_exec(f->ops, f->c, f->a, f->b, 2), CD_OK);
    assert_int_equal(send_as(f, dmid, f->b, "b2"), CD_E_BLOCKED); /* the cache was dropped */
    assert_int_equal(send_as(f, dmid, f->a, "a1"), CD_OK);        /* directed */
    assert_int_equal(chat_dm_open(f->ops, f->c, f->b, f->a, 3, &f->out, &dm, &created, &retry),
                     CD_E_BLOCKED);
    assert_int_equal(chat_room_create(f->ops, f->c, f->b, "x", "", &f->a, 1, 4, &f->out, &dm),
                     CD_E_BLOCKED);
    room = group(f, f->b, &f->c3, 1);
    assert_int_equal(chat_member_add(f->ops, f->c, room, f->b, f->a, -1, 5, &f->out), CD_E_BLOCKED);
    assert_int_equal(chat_member_add(f->ops, f->c, room, f->b, f->c3, -1, 5, &f->out), CD_OK);
    assert_int_equal(people_block_exec(f->ops, f->c, f->a, f->a, 6), CD_E_INVALID_FIELD);
    assert_int_equal(people_block_exec(f->ops, f->c, f->a, 12345, 6), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->pair_delete(f->c, STORE_BLOCKS, f->a, f->b), CD_OK);
    assert_int_equal(send_as(f, dmid, f->b, "b3"), CD_OK); /* unblocked */
}

static void archive_and_delete(void **state)
{
    struct fx *f = *state;
    int64_t room = group(f, f->a, &f->b, 1);
    assert_int_equal(send_as(f, room, f->b, "m1"), CD_OK);
    assert_int_equal(chat_room_set_flags(f->ops, f->c, room, f->b, -1, 1, 30, &f->out),
                     CD_E_FORBIDDEN);
    assert_int_equal(chat_room_set_flags(f->ops, f->c, room, f->a, -1, 1, 30, &f->out), CD_OK);
    assert_int_equal(send_as(f, room, f->b, "m2"), CD_E_ROOM_ARCHIVED);
    assert_int_equal(chat_member_add(f->ops, f->c, room, f->a, f->c3, -1, 31, &f->out),
                     CD_E_ROOM_ARCHIVED);
    assert_int_equal(chat_room_set_flags(f->ops, f->c, room, f->a, -1, 0, 32, &f->out), CD_OK);
    assert_int_equal(send_as(f, room, f->b, "m3"), CD_OK);
    assert_int_equal(chat_room_delete(f->ops, f->c, room, f->b, 33, &f->out), CD_E_FORBIDDEN);
    assert_int_equal(chat_room_delete(f->ops, f->c, room, f->a, 33, &f->out), CD_OK);
    assert_int_equal(send_as(f, room, f->b, "m4"), CD_E_NOT_FOUND);
    assert_int_equal(chat_room_delete(f->ops, f->c, room, f->a, 34, &f->out), CD_E_NOT_FOUND);
}

static void public_join_and_invites(void **state)
{
    struct fx *f = *state;
    struct store_invite inv = {0};
    int64_t room = group(f, f->a, NULL, 0), got = 0, d = user(f, "dee");
    assert_int_equal(chat_room_join(f->ops, f->c, room, f->b, 40, &f->out), CD_E_NOT_FOUND);
    assert_int_equal(chat_room_set_flags(f->ops, f->c, room, f->a, 1, -1, 41, &f->out), CD_OK);
    assert_int_equal(chat_room_join(f->ops, f->c, room, f->b, 42, &f->out), CD_OK);
    assert_int_equal(send_as(f, room, f->b, "j1"), CD_OK);
    /* invites: admins only, expiry and uses checked at acceptance */
    inv.hash[0] = 7;
    inv.room_id = room;
    inv.created_by = f->a;
    inv.expires_at = 100;
    inv.max_uses = 1;
    assert_int_equal(chat_invite_create(f->ops, f->c, room, f->b, &inv), CD_E_FORBIDDEN);
    assert_int_equal(chat_invite_create(f->ops, f->c, room, f->a, &inv), CD_OK);
    assert_int_equal(chat_invite_accept(f->ops, f->c, inv.hash, f->b, 50, &f->out, &got), CD_OK);
    assert_int_equal(got, room); /* a member already: not spent */
    assert_int_equal(chat_invite_accept(f->ops, f->c, inv.hash, f->c3, 50, &f->out, &got), CD_OK);
    assert_int_equal(chat_invite_accept(f->ops, f->c, inv.hash, d, 50, &f->out, &got),
                     CD_E_INVITE_GONE); /* used up */
    inv.hash[0] = 8;
    assert_int_equal(chat_invite_create(f->ops, f->c, room, f->a, &inv), CD_OK);
    assert_int_equal(chat_invite_accept(f->ops, f->c, inv.hash, d, 100, &f->out, &got),
                     CD_E_INVITE_GONE); /* expired */
    inv.hash[0] = 9;
    assert_int_equal(chat_invite_accept(f->ops, f->c, inv.hash, d, 60, &f->out, &got),
                     CD_E_NOT_FOUND);
}

static int count_room(void *ud, const struct store_room *r, const struct store_member *m)
{
    (void)r;
    (void)m;
    ++*(int *)ud;
    return 0;
}

static void leaving_a_direct_room_hides_it(void **state)
{
    struct fx *f = *state;
    struct store_room dm;
    int created, n = 0;
    int64_t retry;
    assert_int_equal(chat_dm_open(f->ops, f->c, f->a, f->b, 1, &f->out, &dm, &created, &retry),
                     CD_OK);
    assert_int_equal(send_as(f, dm.id, f->b, "d1"), CD_OK);
    assert_int_equal(chat_room_leave(f->ops, f->c, dm.id, f->a, 2, &f->out), CD_OK);
    assert_int_equal(f->ops->rooms_visible(f->c, f->a, 0, 10, count_room, &n), CD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(send_as(f, dm.id, f->b, "d2"), CD_OK);
    assert_int_equal(f->ops->rooms_visible(f->c, f->a, 0, 10, count_room, &n), CD_OK);
    assert_int_equal(n, 1);
}

static void account_deletion(void **state)
{
    struct fx *f = *state;
    int64_t members[] = {f->b, f->c3}, sid, *sids = NULL;
    struct store_refresh rt = {0};
    size_t nsids = 0;
    int64_t room = group(f, f->a, members, 2);
    struct store_member m;
    struct store_profile p;
    assert_int_equal(chat_member_add(f->ops, f->c, room, f->a, f->c3, ROLE_ADMIN, 2, &f->out),
                     CD_OK);
    assert_int_equal(f->ops->session_insert(f->c, f->a, 3, &sid), CD_OK);
    rt.session_id = sid; /* a live session has a refresh token */
    rt.user_id = f->a;
    rt.created_at = 3;
    rt.expires_at = 1000;
    assert_int_equal(f->ops->refresh_insert(f->c, &rt), CD_OK);
    assert_int_equal(people_account_delete(f->ops, f->c, f->a, 4, &f->out, &sids, &nsids), CD_OK);
    assert_int_equal(nsids, 1);
    assert_int_equal(sids[0], sid);
    free(sids);
    assert_int_equal(f->ops->member_get(f->c, room, f->a, &m), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->member_get(f->c, room, f->c3, &m), CD_OK);
    assert_int_equal(m.role, ROLE_OWNER); /* the admin inherits, not the first member */
    assert_int_equal(f->ops->profile_get(f->c, f->a, &p), CD_OK);
    assert_true(p.deleted_at > 0);
    assert_int_equal(f->ops->user_insert_id(f->c, people_new_user_id(), "ann", "h", 5), CD_OK);
    assert_int_equal(chat_member_add(f->ops, f->c, room, f->c3, f->a, -1, 6, &f->out),
                     CD_E_NOT_FOUND); /* nobody adds a deleted user */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(blocks_on_every_path, setup, teardown),
        cmocka_unit_test_setup_teardown(archive_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(public_join_and_invites, setup, teardown),
        cmocka_unit_test_setup_teardown(leaving_a_direct_room_hides_it, setup, teardown),
        cmocka_unit_test_setup_teardown(account_deletion, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
