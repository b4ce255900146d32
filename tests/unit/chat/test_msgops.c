/* The rules of chat/msgops.c on a real SQLite store in a temp dir: who may edit, delete and
 * react; what a delete erases; reactions are sets; replies and thread roots; delivered
 * watermarks; when a read receipt is published; what edits and deletes do to search and
 * attachments; the emoji rule (pure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat/events.h"
#include "chat/msgops.h"
#include "chat/rooms.h"
#include "util/status.h"

#define OPS (&store_sqlite_ops)

struct fx {
    char dir[64];
    struct store *st;
    struct store_conn *c;
    int64_t owner, alice, bob, outsider, room;
    struct chat_out out;
};

static int64_t user(struct fx *f, const char *name)
{
    int64_t id = 0;
    assert_int_equal(OPS->user_insert(f->c, name, "h", 1, &id), CD_OK);
    return id;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct store_config cfg = {.sync_mode = "normal"};
    struct store_room r;
    int64_t members[2];
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-msgops-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    cfg.dir = f->dir;
    if (OPS->open(&cfg, &f->st) != CD_OK || OPS->conn_open(f->st, 1, &f->c) != CD_OK) return -1;
    chat_member_cache_reset(); /* a new store each test: memberships of the last one are void */
    OPS->begin(f->c);
    f->owner = user(f, "owner");
    f->alice = user(f, "alice");
    f->bob = user(f, "bob");
    f->outsider = user(f, "out");
    members[0] = f->alice;
    members[1] = f->bob;
    assert_int_equal(chat_room_create(OPS, f->c, f->owner, "r", NULL, members, 2, 1, &f->out, &r),
                     CD_OK);
    f->room = r.id; /* seqs 1-3: the joins */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    chat_out_discard(&f->out);
    OPS->commit(f->c);
    OPS->conn_close(f->c);
    OPS->close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static int64_t send_msg(struct fx *f, int64_t who, const char *body)
{
    struct chat_sent s;
    assert_int_equal(
        chat_send(OPS, f->c, f->room, who, body, strlen(body), NULL, 0, 10, &f->out, &s), CD_OK);
    return s.seq;
}

static int op(struct fx *f, int kind, int64_t who, int64_t target, const char *text, int on,
              struct chat_sent *res)
{
    struct chat_op o = {.kind = kind, .room = f->room, .user = who, .target = target, .on = on};
    struct chat_sent tmp;
    if (kind == EV_EDIT) {
        o.body = text;
        o.body_len = strlen(text);
    } else if (kind == EV_REACTION) {
        o.emoji = text;
        o.emoji_len = strlen(text);
    }
    return chat_msg_op(OPS, f->c, &o, 20, &f->out, res ? res : &tmp);
}

struct page {
    int n;
    struct {
        int64_t seq, state_seq;
        int kind, deleted;
        char body[128], reactions[128];
    } e[32];
};

static int page_row(void *ud, const struct store_event *ev)
{
    struct page *p = ud;
    if (p->n == 32) return 1;
    p->e[p->n].seq = ev->seq;
    p->e[p->n].kind = ev->kind;
    p->e[p->n].deleted = ev->deleted;
    p->e[p->n].state_seq = ev->state_seq;
    snprintf(p->e[p->n].body, sizeof(p->e[0].body), "%.*s", (int)ev->body_len, ev->body);
    snprintf(p->e[p->n].reactions, sizeof(p->e[0].reactions), "%.*s", (int)ev->reactions_len,
             ev->reactions ? ev->reactions : "");
    p->n++;
    return 0;
}

/* The entry at seq as viewer reads it. */
static void read_at(struct fx *f, int64_t viewer, int64_t seq, struct page *p)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(
        OPS->messages_page(f->c, f->room, seq - 1, seq + 1, 1, 0, viewer, 0, page_row, p), CD_OK);
    assert_int_equal(p->n, 1);
}

static void edit_only_by_author(void **state)
{
    struct fx *f = *state;
    int64_t m = send_msg(f, f->alice, "helo");
    struct chat_sent s;
    struct page p;

    assert_int_equal(op(f, EV_EDIT, f->bob, m, "x", 0, NULL), CD_E_FORBIDDEN);
    assert_int_equal(op(f, EV_EDIT, f->owner, m, "x", 0, NULL),
                     CD_E_FORBIDDEN); /* not even the owner */
    assert_int_equal(op(f, EV_EDIT, f->outsider, m, "x", 0, NULL), CD_E_NOT_MEMBER);
    assert_int_equal(op(f, EV_EDIT, f->alice, 1, "x", 0, NULL), CD_E_NOT_FOUND); /* a join */
    assert_int_equal(op(f, EV_EDIT, f->alice, 999, "x", 0, NULL), CD_E_NOT_FOUND);
    assert_int_equal(op(f, EV_EDIT, f->alice, m, "hello", 0, &s), CD_OK);
    assert_int_equal(s.seq, m + 1);
    read_at(f, f->bob, m, &p);
    assert_string_equal(p.e[0].body, "hello");
    assert_int_equal(p.e[0].state_seq, s.seq);
}

static void delete_by_author_or_admin_erases_text(void **state)
{
    struct fx *f = *state;
    int64_t a = send_msg(f, f->alice, "secret");
    int64_t b = send_msg(f, f->bob, "bob's");
    struct chat_sent e, d;
    struct page p;

    assert_int_equal(op(f, EV_EDIT, f->alice, a, "secret 2", 0, &e), CD_OK);
    assert_int_equal(op(f, EV_DELETE, f->bob, a, NULL, 0, NULL), CD_E_FORBIDDEN); /* a member */
    assert_int_equal(op(f, EV_DELETE, f->alice, a, NULL, 0, &d), CD_OK);
    assert_int_equal(op(f, EV_DELETE, f->owner, b, NULL, 0, NULL), CD_OK); /* the owner may */
    read_at(f, f->alice, a, &p);
    assert_int_equal(p.e[0].deleted, 1);
    assert_string_equal(p.e[0].body, "");
    assert_int_equal(p.e[0].state_seq, d.seq);
    read_at(f, f->alice, e.seq, &p); /* the edit entry keeps no text */
    assert_int_equal(p.e[0].kind, EV_EDIT);
    assert_null(strstr(p.e[0].body, "secret"));
    /* nothing more on a tombstone */
    assert_int_equal(op(f, EV_EDIT, f->alice, a, "again", 0, NULL), CD_E_GONE);
    assert_int_equal(op(f, EV_REACTION, f->bob, a, "\xf0\x9f\x91\x8d", 1, NULL), CD_E_GONE);
    assert_int_equal(op(f, EV_DELETE, f->alice, a, NULL, 0, NULL), CD_E_GONE);
}

static int count_hit(void *ud, const struct store_search_hit *h)
{
    (void)h;
    (*(int *)ud)++;
    return 0;
}

static int found(struct fx *f, const char *terms)
{
    struct store_search_q q = {.user = f->bob, .match = terms, .limit = 10};
    int n = 0;
    assert_int_equal(OPS->search(f->c, &q, count_hit, &n), CD_OK);
    return n;
}

static int extra_row(void *ud, const struct store_event *ev)
{
    snprintf(ud, 64, "%.*s", (int)ev->extra_len, ev->extra ? ev->extra : "");
    return 0;
}

/* An edit re-indexes the message for search, a delete removes it from the index and drops its
 * attachments (no longer shown with it, nor readable through it), in the operation's
 * transaction. */
static void edit_and_delete_reach_search_and_attachments(void **state)
{
    struct fx *f = *state;
    int64_t a = send_msg(f, f->alice, "quick brown fox"), b = send_msg(f, f->alice, "lazy dog");
    struct store_attachment att = {.owner = 0, .size = 1, .created_at = 1};
    char extra[64];
    int n = 0, ok = -1;

    assert_int_equal(OPS->search_index_log(f->c, 100, &n), CD_OK); /* SQLite's indexer */
    assert_int_equal(found(f, "quick"), 1);
    assert_int_equal(op(f, EV_EDIT, f->alice, a, "slow green turtle", 0, NULL), CD_OK);
    assert_int_equal(found(f, "quick"), 0);
    assert_int_equal(found(f, "green"), 1);
    assert_int_equal(op(f, EV_DELETE, f->alice, a, NULL, 0, NULL), CD_OK);
    assert_int_equal(found(f, "green"), 0);
    assert_int_equal(found(f, "turtle"), 0);

    snprintf(att.id, sizeof(att.id), "%032d", 5);
    att.owner = f->alice;
    snprintf(att.content_type, sizeof(att.content_type), "text/plain");
    snprintf(att.name, sizeof(att.name), "a.txt");
    snprintf(att.sha256, sizeof(att.sha256), "%064d", 5);
    assert_int_equal(OPS->attachment_insert(f->c, &att), CD_OK);
    assert_int_equal(OPS->attachment_ref(f->c, att.id, f->room, b), CD_OK);
    assert_int_equal(OPS->event_extra_put(f->c, f->room, b, "\"attachments\":[]", 16), CD_OK);
    assert_int_equal(op(f, EV_EDIT, f->alice, b, "lazy cat", 0, NULL), CD_OK); /* kept */
    assert_int_equal(
        OPS->messages_page(f->c, f->room, b - 1, b + 1, 1, 0, f->bob, 0, extra_row, extra), CD_OK);
    assert_string_equal(extra, "\"attachments\":[]");
    assert_int_equal(OPS->attachment_readable(f->c, att.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 1);
    assert_int_equal(op(f, EV_DELETE, f->alice, b, NULL, 0, NULL), CD_OK);
    assert_int_equal(
        OPS->messages_page(f->c, f->room, b - 1, b + 1, 1, 0, f->bob, 0, extra_row, extra), CD_OK);
    assert_string_equal(extra, "");
    assert_int_equal(OPS->attachment_readable(f->c, att.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 0);
    assert_int_equal(found(f, "lazy"), 0);
}

static void reactions_are_sets(void **state)
{
    struct fx *f = *state;
    int64_t m = send_msg(f, f->alice, "react");
    const char *up = "\xf0\x9f\x91\x8d";
    struct chat_sent s;
    struct page p;

    assert_int_equal(op(f, EV_REACTION, f->bob, m, up, 1, &s), CD_OK);
    assert_int_equal(s.changed, 1);
    assert_int_equal(op(f, EV_REACTION, f->bob, m, up, 1, &s), CD_OK);
    assert_int_equal(s.changed, 0);
    assert_int_equal(s.seq, 0);
    assert_int_equal(op(f, EV_REACTION, f->alice, m, up, 1, &s), CD_OK);
    read_at(f, f->bob, m, &p);
    assert_string_equal(p.e[0].reactions, "\xf0\x9f\x91\x8d\t2\t1");
    read_at(f, f->owner, m, &p);
    assert_string_equal(p.e[0].reactions, "\xf0\x9f\x91\x8d\t2\t0");
    assert_int_equal(op(f, EV_REACTION, f->bob, m, up, 0, &s), CD_OK);
    assert_int_equal(s.changed, 1);
    read_at(f, f->bob, m, &p);
    assert_string_equal(p.e[0].reactions, "\xf0\x9f\x91\x8d\t1\t0");
    assert_int_equal(op(f, EV_REACTION, f->bob, m, "ok", 1, NULL), CD_E_INVALID_FIELD);
}

static void resend_answers_the_original(void **state)
{
    struct fx *f = *state;
    int64_t m = send_msg(f, f->alice, "x");
    struct chat_op o = {.kind = EV_EDIT,
                        .room = f->room,
                        .user = f->alice,
                        .target = m,
                        .body = "y",
                        .body_len = 1,
                        .cmid = "c1",
                        .cmid_len = 2};
    struct chat_sent s1, s2;
    assert_int_equal(chat_msg_op(OPS, f->c, &o, 20, &f->out, &s1), CD_OK);
    assert_int_equal(chat_msg_op(OPS, f->c, &o, 20, &f->out, &s2), CD_OK);
    assert_int_equal(s2.duplicate, 1);
    assert_int_equal(s2.seq, s1.seq);
    o.kind = EV_DELETE; /* the same id for another kind of request */
    assert_int_equal(chat_msg_op(OPS, f->c, &o, 20, &f->out, &s2), CD_E_CONFLICT);
}

static void replies_and_threads(void **state)
{
    struct fx *f = *state;
    int64_t root = send_msg(f, f->alice, "root"), r1;
    struct chat_sent s;
    struct page p;

    assert_int_equal(
        chat_send_linked(OPS, f->c, f->room, f->bob, "r", 1, NULL, 0, 999, 0, 1, &f->out, &s),
        CD_E_NOT_FOUND);
    assert_int_equal(
        chat_send_linked(OPS, f->c, f->room, f->bob, "r", 1, NULL, 0, 0, 2, 1, &f->out, &s),
        CD_E_NOT_FOUND); /* a join is no root */
    assert_int_equal(
        chat_send_linked(OPS, f->c, f->room, f->outsider, "r", 1, NULL, 0, root, 0, 1, &f->out, &s),
        CD_E_NOT_MEMBER);
    assert_int_equal(
        chat_send_linked(OPS, f->c, f->room, f->bob, "r", 1, NULL, 0, root, root, 1, &f->out, &s),
        CD_OK);
    r1 = s.seq;
    assert_int_equal(
        chat_send_linked(OPS, f->c, f->room, f->bob, "r", 1, NULL, 0, 0, r1, 1, &f->out, &s),
        CD_E_INVALID_FIELD); /* a reply is no root */
    assert_int_equal(
        chat_send_linked(OPS, f->c, f->room, f->alice, "r2", 2, NULL, 0, 0, root, 1, &f->out, &s),
        CD_OK);
    memset(&p, 0, sizeof(p));
    assert_int_equal(OPS->messages_page(f->c, f->room, 0, 0, 10, 0, f->bob, root, page_row, &p),
                     CD_OK);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.e[0].seq, r1);
    assert_int_equal(p.e[1].seq, s.seq);
}

static void delivered_is_monotonic_and_clamped(void **state)
{
    struct fx *f = *state;
    int64_t m = send_msg(f, f->alice, "d"), w = 0;
    assert_int_equal(chat_delivered(OPS, f->c, f->room, f->bob, 7, m, &w), CD_OK);
    assert_int_equal(w, m);
    assert_int_equal(chat_delivered(OPS, f->c, f->room, f->bob, 7, 1, &w), CD_OK);
    assert_int_equal(w, m);
    assert_int_equal(chat_delivered(OPS, f->c, f->room, f->bob, 8, 1000, &w), CD_OK);
    assert_int_equal(w, m); /* clamped to the log */
    assert_int_equal(chat_delivered(OPS, f->c, f->room, f->outsider, 9, 1, &w), CD_E_NOT_MEMBER);
}

static void read_receipt_only_when_shared_and_moved(void **state)
{
    struct fx *f = *state;
    uint32_t n0 = f->out.n;
    assert_int_equal(chat_read_receipt(OPS, f->c, f->room, f->bob, 3, 3, &f->out), CD_OK);
    assert_int_equal(f->out.n, n0); /* not moved */
    assert_int_equal(chat_read_receipt(OPS, f->c, f->room, f->bob, 2, 3, &f->out), CD_OK);
    assert_int_equal(f->out.n, n0 + 1);
    assert_int_equal(f->out.ev[n0].kind, FAN_RECEIPT);
    assert_int_equal(f->out.ev[n0].user, f->bob);
    assert_int_equal(OPS->settings_put(f->c, f->bob, 0), CD_OK);
    assert_int_equal(chat_read_receipt(OPS, f->c, f->room, f->bob, 3, 4, &f->out), CD_OK);
    assert_int_equal(f->out.n, n0 + 1); /* sharing off */
}

static void emoji_rule(void **state)
{
    (void)state;
    assert_true(chat_emoji_valid("\xf0\x9f\x91\x8d", 4));                 /* thumbs up */
    assert_true(chat_emoji_valid("\xe2\x9d\xa4\xef\xb8\x8f", 6));         /* heart + VS16 */
    assert_true(chat_emoji_valid("1\xef\xb8\x8f\xe2\x83\xa3", 7));        /* keycap 1 */
    assert_true(chat_emoji_valid("\xf0\x9f\x87\xab\xf0\x9f\x87\xb7", 8)); /* flag */
    assert_false(chat_emoji_valid("", 0));
    assert_false(chat_emoji_valid("ok", 2));
    assert_false(chat_emoji_valid("1", 1)); /* a keycap base alone is plain ASCII */
    assert_false(chat_emoji_valid("\xf0\x9f\x91\x8d ", 5));
    assert_false(chat_emoji_valid("\xf0\x9f\x91\x8d\n", 5));
    assert_false(chat_emoji_valid("\xc2\x85", 2));     /* C1 control */
    assert_false(chat_emoji_valid("\xed\xa0\x80", 3)); /* a surrogate */
    assert_false(chat_emoji_valid("\xc0\xaf", 2));     /* overlong */
    assert_false(chat_emoji_valid("\xf0\x9f\x91", 3)); /* truncated */
    assert_false(chat_emoji_valid("\xe2\x80\x83", 3)); /* em space */
    {
        char many[64] = {0};
        for (int i = 0; i < 11; i++) /* 11 code points, 33 bytes */
            memcpy(many + 3 * i, "\xe2\x9c\x85", 3);
        assert_false(chat_emoji_valid(many, 33));
        assert_true(chat_emoji_valid(many, 30)); /* 10 of them */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(edit_only_by_author, setup, teardown),
        cmocka_unit_test_setup_teardown(delete_by_author_or_admin_erases_text, setup, teardown),
        cmocka_unit_test_setup_teardown(edit_and_delete_reach_search_and_attachments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reactions_are_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(resend_answers_the_original, setup, teardown),
        cmocka_unit_test_setup_teardown(replies_and_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(delivered_is_monotonic_and_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(read_receipt_only_when_shared_and_moved, setup, teardown),
        cmocka_unit_test(emoji_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
