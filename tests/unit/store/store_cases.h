/* store_cases.h - the store contract, one body for every backend: included by
 * test_store_sqlite.c and test_store_pg.c, which define the fixture (struct fx's database) and
 * run STORE_CASES(setup, teardown). Rooms, membership and the room log driven through a
 * struct store_ops without the writer thread: per-room seqs without gaps, idempotent appends
 * (duplicate client_msg_id) under the writer's savepoint-per-job discipline, paging, member
 * counts, read markers and unread counts.
 *
 * Before including: T_OPS (the backend's ops), STORE_CASES_BULK (appends in one transaction),
 * and after it a definition of fx_config() (the configuration that reopens f's database). */
#ifndef TEST_STORE_CASES_H
#define TEST_STORE_CASES_H

struct fx {
    char dir[64];
    char url[512];
    struct store *st;
    struct store_conn *c;
    const struct store_ops *ops;
    int64_t alice, bob, carol;
};

static void fx_config(struct fx *f, struct store_config *cfg);

/* Opens f's store (cfg from fx_config) and adds three users. */
static int fx_start(struct fx *f)
{
    struct store_config cfg;
    f->ops = T_OPS;
    fx_config(f, &cfg);
    if (f->ops->open(&cfg, &f->st) != CD_OK) return -1;
    if (f->ops->conn_open(f->st, 1, &f->c) != CD_OK) return -1;
    if (f->ops->user_insert(f->c, "alice", "h", 1, &f->alice) != CD_OK) return -1;
    if (f->ops->user_insert(f->c, "bob", "h", 1, &f->bob) != CD_OK) return -1;
    if (f->ops->user_insert(f->c, "carol", "h", 1, &f->carol) != CD_OK) return -1;
    return 0;
}

static void fx_stop(struct fx *f)
{
    f->ops->conn_close(f->c);
    f->ops->close(f->st);
}

static int64_t room_new(struct fx *f, const char *name, const char *dm_key)
{
    struct store_room r;
    memset(&r, 0, sizeof(r));
    r.kind = dm_key ? ROOM_DIRECT : ROOM_GROUP;
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.created_by = f->alice;
    r.created_at = 1000;
    assert_int_equal(f->ops->room_insert(f->c, &r, dm_key), CD_OK);
    assert_true(r.id > 0);
    return r.id;
}

/* Appends an entry on connection c; returns the status, *seq gets the assigned seq. */
static int append_on(struct store_conn *c, int64_t room, int kind, int64_t sender, const char *cmid,
                     const char *body, int64_t *seq)
{
    struct store_event ev;
    int rc;
    memset(&ev, 0, sizeof(ev));
    ev.room_id = room;
    ev.kind = kind;
    ev.sender = sender;
    ev.ts = 5000;
    ev.body = body;
    ev.body_len = strlen(body);
    ev.client_msg_id = cmid;
    ev.cmid_len = cmid ? strlen(cmid) : 0;
    ev.seq = -1;
    rc = T_OPS->event_append(c, &ev);
    if (seq) *seq = ev.seq;
    return rc;
}

static int append_full(struct fx *f, int64_t room, int kind, int64_t sender, const char *cmid,
                       const char *body, int64_t *seq)
{
    return append_on(f->c, room, kind, sender, cmid, body, seq);
}

static int64_t append(struct fx *f, int64_t room, int64_t sender, const char *cmid,
                      const char *body)
{
    int64_t seq;
    assert_int_equal(append_full(f, room, EV_MESSAGE, sender, cmid, body, &seq), CD_OK);
    return seq;
}

static int64_t last_seq(struct fx *f, int64_t room)
{
    struct store_room r;
    assert_int_equal(f->ops->room_get(f->c, room, &r), CD_OK);
    return r.last_seq;
}

/* Collects what a read callback sees. */
#define COLLECT_MAX 64
struct collect {
    int n, stop_after; /* stop_after 0: never stop */
    int64_t seq[COLLECT_MAX], room[COLLECT_MAX], user[COLLECT_MAX];
    int role[COLLECT_MAX], kind[COLLECT_MAX];
    char body[COLLECT_MAX][32];
    char cmid[COLLECT_MAX][32];
    int cmid_null[COLLECT_MAX];
    struct store_room rooms[COLLECT_MAX];
};

static int on_event(void *ud, const struct store_event *ev)
{
    struct collect *k = ud;
    assert_true(k->n < COLLECT_MAX);
    k->seq[k->n] = ev->seq;
    k->room[k->n] = ev->room_id;
    k->user[k->n] = ev->sender;
    k->kind[k->n] = ev->kind;
    snprintf(k->body[k->n], sizeof(k->body[0]), "%.*s", (int)ev->body_len, ev->body);
    k->cmid_null[k->n] = ev->client_msg_id == NULL;
    if (ev->client_msg_id)
        snprintf(k->cmid[k->n], sizeof(k->cmid[0]), "%.*s", (int)ev->cmid_len, ev->client_msg_id);
    k->n++;
    return k->stop_after && k->n >= k->stop_after;
}

static int on_member(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct collect *k = ud;
    assert_true(k->n < COLLECT_MAX);
    k->room[k->n] = m->room_id;
    k->user[k->n] = m->user_id;
    k->role[k->n] = m->role;
    if (room)
        k->rooms[k->n] = *room;
    else
        memset(&k->rooms[k->n], 0, sizeof(k->rooms[0]));
    k->n++;
    return k->stop_after && k->n >= k->stop_after;
}

static void page(struct fx *f, int64_t room, int64_t after, int64_t before, int limit, int desc,
                 struct collect *k)
{
    memset(k, 0, sizeof(*k));
    assert_int_equal(f->ops->events_page(f->c, room, after, before, limit, desc, on_event, k),
                     CD_OK);
}

static void put_member(struct fx *f, int64_t room, int64_t user, int role, int64_t joined_seq)
{
    struct store_member m = {
        .room_id = room, .user_id = user, .role = role, .joined_seq = joined_seq};
    assert_int_equal(f->ops->member_put(f->c, &m), CD_OK);
}

static int64_t member_count(struct fx *f, int64_t room)
{
    struct store_room r;
    assert_int_equal(f->ops->room_get(f->c, room, &r), CD_OK);
    return r.member_count;
}

static void seqs_are_contiguous_per_room(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL);
    int64_t seq;
    struct collect k;

    assert_int_equal(last_seq(f, r1), 0);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(append(f, r1, f->alice, NULL, "a"), i);
        if (i % 2) assert_int_equal(append(f, r2, f->bob, NULL, "b"), (i + 1) / 2);
    }
    /* non-message entries share the room's seq space */
    assert_int_equal(append_full(f, r1, EV_MEMBER, f->alice, NULL, "{}", &seq), CD_OK);
    assert_int_equal(seq, 6);
    assert_int_equal(last_seq(f, r1), 6);
    assert_int_equal(last_seq(f, r2), 3);
    page(f, r1, 0, 0, 1, 1, &k);
    assert_int_equal(k.kind[0], EV_MEMBER);
    assert_string_equal(k.body[0], "{}");
    assert_int_equal(append_full(f, 9999, EV_MESSAGE, f->alice, NULL, "x", &seq), CD_E_NOT_FOUND);
    assert_int_equal(seq, -1);
}

/* What the writer thread does with a job whose append fails: the job's savepoint is rolled back
 * and the next job still gets the next contiguous seq. */
static void duplicate_client_id_conflicts_without_consuming_seq(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL), seq = 0;
    struct collect k;

    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->savepoint(f->c), CD_OK);
    assert_int_equal(append(f, r, f->alice, "m-1", "first"), 1);
    assert_int_equal(f->ops->savepoint_release(f->c, 0), CD_OK);

    assert_int_equal(f->ops->savepoint(f->c), CD_OK);
    assert_int_equal(append_full(f, r, EV_MESSAGE, f->alice, "m-1", "resend", &seq), CD_E_CONFLICT);
    assert_int_equal(seq, -1); /* ev->seq untouched on failure */
    assert_int_equal(f->ops->savepoint_release(f->c, 1), CD_OK);

    assert_int_equal(f->ops->savepoint(f->c), CD_OK);
    assert_int_equal(append(f, r, f->alice, "m-2", "second"), 2);
    assert_int_equal(f->ops->savepoint_release(f->c, 0), CD_OK);
    assert_int_equal(f->ops->commit(f->c), CD_OK);

    assert_int_equal(last_seq(f, r), 2);
    page(f, r, 0, 0, 10, 0, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.seq[0], 1);
    assert_string_equal(k.body[0], "first");
    assert_int_equal(k.seq[1], 2);
    assert_string_equal(k.body[1], "second");
}

/* A job that answers a resend with the original succeeds, so its savepoint is kept: the refused
 * append itself must leave no trace (no counter bump, no row). */
static void conflict_changes_nothing_even_when_kept(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL);

    assert_int_equal(append(f, r, f->alice, "m-1", "first"), 1);
    assert_int_equal(append_full(f, r, EV_MESSAGE, f->alice, "m-1", "again", NULL), CD_E_CONFLICT);
    assert_int_equal(last_seq(f, r), 1);
    assert_int_equal(append(f, r, f->alice, NULL, "next"), 2);
}

static void client_id_is_per_room_and_sender(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL);

    assert_int_equal(append(f, r1, f->alice, "same", "from alice"), 1);
    assert_int_equal(append(f, r1, f->bob, "same", "from bob"), 2);
    /* the key is (room, sender, client_msg_id): another room is another message */
    assert_int_equal(append(f, r2, f->alice, "same", "x"), 1);
    assert_int_equal(append_full(f, r2, EV_MESSAGE, f->alice, "same", "y", NULL), CD_E_CONFLICT);
    assert_int_equal(last_seq(f, r2), 1);
    /* entries without a client_msg_id never collide */
    assert_int_equal(append(f, r1, f->alice, NULL, "a"), 3);
    assert_int_equal(append(f, r1, f->alice, NULL, "b"), 4);
}

static void event_by_client_id_finds_original(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL);
    /* slices of larger buffers: lengths, not NULs, delimit them */
    const char cmid_buf[] = "abc-123TRAILING", body_buf[] = "hello worldTRAILING";
    struct store_event ev = {.room_id = r,
                             .kind = EV_MESSAGE,
                             .sender = f->bob,
                             .ts = 42,
                             .body = body_buf,
                             .body_len = 11,
                             .client_msg_id = cmid_buf,
                             .cmid_len = 7};
    struct collect k;

    append(f, r, f->alice, NULL, "before");
    assert_int_equal(f->ops->event_append(f->c, &ev), CD_OK);
    assert_int_equal(ev.seq, 2);
    append(f, r, f->bob, "other", "after");

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->event_by_client_id(f->c, r, f->bob, "abc-123xyz", 7, on_event, &k),
                     CD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.seq[0], 2);
    assert_int_equal(k.room[0], r);
    assert_int_equal(k.user[0], f->bob);
    assert_int_equal(k.kind[0], EV_MESSAGE);
    assert_string_equal(k.body[0], "hello world");
    assert_string_equal(k.cmid[0], "abc-123");

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->event_by_client_id(f->c, r, f->alice, "abc-123", 7, on_event, &k),
                     CD_E_NOT_FOUND);
    assert_int_equal(f->ops->event_by_client_id(f->c, r, f->bob, "abc-12", 6, on_event, &k),
                     CD_E_NOT_FOUND);
    assert_int_equal(k.n, 0);
}

static void events_page_ranges(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL), other = room_new(f, "other", NULL);
    struct collect k;
    char body[16];

    for (int i = 1; i <= 10; i++) {
        snprintf(body, sizeof(body), "m%d", i);
        append(f, r, f->alice, NULL, body);
        append(f, other, f->alice, NULL, "noise");
    }
    /* ascending from `after` */
    page(f, r, 0, 0, 3, 0, &k);
    assert_int_equal(k.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(k.seq[i], i + 1);
        assert_int_equal(k.room[i], r);
        assert_true(k.cmid_null[i]);
    }
    assert_string_equal(k.body[0], "m1");
    page(f, r, 3, 0, 100, 0, &k);
    assert_int_equal(k.n, 7);
    assert_int_equal(k.seq[0], 4);
    assert_int_equal(k.seq[6], 10);
    /* newest first */
    page(f, r, 0, 0, 3, 1, &k);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.seq[0], 10);
    assert_int_equal(k.seq[2], 8);
    assert_string_equal(k.body[0], "m10");
    /* descending from `before` (exclusive) */
    page(f, r, 0, 8, 3, 1, &k);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.seq[0], 7);
    assert_int_equal(k.seq[2], 5);
    /* both bounds, both directions */
    page(f, r, 2, 6, 100, 0, &k);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.seq[0], 3);
    assert_int_equal(k.seq[2], 5);
    page(f, r, 2, 6, 100, 1, &k);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.seq[0], 5);
    assert_int_equal(k.seq[2], 3);
    page(f, r, 2, 6, 2, 1, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.seq[1], 4);
    /* empty ranges */
    page(f, r, 10, 0, 100, 0, &k);
    assert_int_equal(k.n, 0);
    page(f, r, 4, 5, 100, 1, &k);
    assert_int_equal(k.n, 0);
    page(f, r, 0, 0, 0, 0, &k);
    assert_int_equal(k.n, 0);
    /* the callback stops the walk */
    memset(&k, 0, sizeof(k));
    k.stop_after = 2;
    assert_int_equal(f->ops->events_page(f->c, r, 0, 0, 100, 0, on_event, &k), CD_OK);
    assert_int_equal(k.n, 2);
    /* the statement was reset: the next page starts afresh */
    page(f, r, 0, 0, 100, 0, &k);
    assert_int_equal(k.n, 10);
}

static void member_put_inserts_or_updates_role(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL);
    struct store_member m;

    put_member(f, r, f->alice, ROLE_OWNER, 1);
    assert_int_equal(member_count(f, r), 1);
    put_member(f, r, f->bob, ROLE_MEMBER, 2);
    assert_int_equal(member_count(f, r), 2);
    /* a role change is not a new member; joined_seq and read_seq stay */
    append(f, r, f->alice, NULL, "1");
    append(f, r, f->alice, NULL, "2");
    assert_int_equal(f->ops->read_mark(f->c, r, f->bob, 2, &m.read_seq), CD_OK);
    put_member(f, r, f->bob, ROLE_ADMIN, 77);
    assert_int_equal(member_count(f, r), 2);
    assert_int_equal(f->ops->member_get(f->c, r, f->bob, &m), CD_OK);
    assert_int_equal(m.room_id, r);
    assert_int_equal(m.user_id, f->bob);
    assert_int_equal(m.role, ROLE_ADMIN);
    assert_int_equal(m.joined_seq, 2);
    assert_int_equal(m.read_seq, 2);
    assert_int_equal(f->ops->member_get(f->c, r, f->carol, &m), CD_E_NOT_FOUND);

    /* a membership of an unknown room is refused before anything is written */
    m = (struct store_member){.room_id = 9999, .user_id = f->carol, .role = ROLE_MEMBER};
    assert_int_equal(f->ops->member_put(f->c, &m), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->member_get(f->c, 9999, f->carol, &m), CD_E_NOT_FOUND);
}

static void member_delete_keeps_count(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL);
    struct store_member m;

    put_member(f, r, f->alice, ROLE_OWNER, 1);
    put_member(f, r, f->bob, ROLE_MEMBER, 2);
    assert_int_equal(f->ops->member_delete(f->c, r, f->bob), CD_OK);
    assert_int_equal(member_count(f, r), 1);
    assert_int_equal(f->ops->member_get(f->c, r, f->bob, &m), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->member_delete(f->c, r, f->bob), CD_E_NOT_FOUND);
    assert_int_equal(member_count(f, r), 1);
    /* rejoining counts again */
    put_member(f, r, f->bob, ROLE_MEMBER, 5);
    assert_int_equal(member_count(f, r), 2);
    assert_int_equal(f->ops->member_get(f->c, r, f->bob, &m), CD_OK);
    assert_int_equal(m.joined_seq, 5);
}

static void members_list_in_user_order(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL), other = room_new(f, "other", NULL);
    struct collect k;

    put_member(f, r, f->carol, ROLE_MEMBER, 3);
    put_member(f, r, f->alice, ROLE_OWNER, 1);
    put_member(f, r, f->bob, ROLE_ADMIN, 2);
    put_member(f, other, f->alice, ROLE_OWNER, 1);

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->members_list(f->c, r, 100, on_member, &k), CD_OK);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.user[0], f->alice);
    assert_int_equal(k.role[0], ROLE_OWNER);
    assert_int_equal(k.user[1], f->bob);
    assert_int_equal(k.role[1], ROLE_ADMIN);
    assert_int_equal(k.user[2], f->carol);
    assert_int_equal(k.rooms[0].id, 0); /* no room given */

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->members_list(f->c, r, 2, on_member, &k), CD_OK);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.user[1], f->bob);

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->members_list(f->c, 9999, 100, on_member, &k), CD_OK);
    assert_int_equal(k.n, 0);
}

static void rooms_of_user_with_membership(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL);
    int64_t r3 = room_new(f, "three", NULL);
    struct collect k;

    put_member(f, r3, f->bob, ROLE_ADMIN, 1);
    put_member(f, r1, f->bob, ROLE_MEMBER, 1);
    put_member(f, r2, f->alice, ROLE_OWNER, 1);
    put_member(f, r3, f->alice, ROLE_MEMBER, 2);
    append(f, r3, f->alice, NULL, "x");
    assert_int_equal(f->ops->room_update(f->c, r3, NULL, "the topic"), CD_OK);

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_of_user(f->c, f->bob, 0, -1, on_member, &k), CD_OK);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.rooms[0].id, r1);
    assert_string_equal(k.rooms[0].name, "one");
    assert_int_equal(k.role[0], ROLE_MEMBER);
    assert_int_equal(k.room[0], r1);
    assert_int_equal(k.rooms[1].id, r3);
    assert_string_equal(k.rooms[1].name, "three");
    assert_string_equal(k.rooms[1].topic, "the topic");
    assert_int_equal(k.rooms[1].kind, ROOM_GROUP);
    assert_int_equal(k.rooms[1].created_by, f->alice);
    assert_int_equal(k.rooms[1].created_at, 1000);
    assert_int_equal(k.rooms[1].last_seq, 1);
    assert_int_equal(k.rooms[1].member_count, 2);
    assert_int_equal(k.role[1], ROLE_ADMIN);
    assert_int_equal(k.user[1], f->bob);

    /* pages: after a room id, at most limit */
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_of_user(f->c, f->bob, 0, 1, on_member, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.rooms[0].id, r1);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_of_user(f->c, f->bob, r1, 1, on_member, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.rooms[0].id, r3);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_of_user(f->c, f->bob, r3, 10, on_member, &k), CD_OK);
    assert_int_equal(k.n, 0);

    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_of_user(f->c, f->carol, 0, -1, on_member, &k), CD_OK);
    assert_int_equal(k.n, 0);
}

static void user_room_counts_for_quotas(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL);
    int64_t dm = room_new(f, "", "1:2"), groups = -1, owned = -1;

    put_member(f, r1, f->alice, ROLE_OWNER, 1);
    put_member(f, r2, f->alice, ROLE_ADMIN, 1);
    put_member(f, r2, f->bob, ROLE_OWNER, 1);
    put_member(f, dm, f->alice, ROLE_MEMBER, 1);
    assert_int_equal(f->ops->user_room_counts(f->c, f->alice, &groups, &owned), CD_OK);
    assert_int_equal(groups, 2); /* the direct room is not counted */
    assert_int_equal(owned, 1);
    assert_int_equal(f->ops->user_room_counts(f->c, f->bob, &groups, &owned), CD_OK);
    assert_int_equal(groups, 1);
    assert_int_equal(owned, 1);
    assert_int_equal(f->ops->user_room_counts(f->c, f->carol, &groups, &owned), CD_OK);
    assert_int_equal(groups, 0);
    assert_int_equal(owned, 0);
}

static void users_share_room_checks(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL);
    int yes = -1;

    put_member(f, r1, f->alice, ROLE_OWNER, 1);
    put_member(f, r1, f->bob, ROLE_MEMBER, 1);
    put_member(f, r2, f->carol, ROLE_OWNER, 1);

    assert_int_equal(f->ops->users_share_room(f->c, f->alice, f->bob, &yes), CD_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(f->ops->users_share_room(f->c, f->bob, f->alice, &yes), CD_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(f->ops->users_share_room(f->c, f->alice, f->carol, &yes), CD_OK);
    assert_int_equal(yes, 0);
    assert_int_equal(f->ops->member_delete(f->c, r1, f->bob), CD_OK);
    assert_int_equal(f->ops->users_share_room(f->c, f->alice, f->bob, &yes), CD_OK);
    assert_int_equal(yes, 0);
}

static void read_mark_monotonic_and_clamped(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL), out = -1;
    struct store_member m;

    put_member(f, r, f->bob, ROLE_MEMBER, 0);
    for (int i = 0; i < 5; i++)
        append(f, r, f->alice, NULL, "x");

    assert_int_equal(f->ops->read_mark(f->c, r, f->bob, 3, &out), CD_OK);
    assert_int_equal(out, 3);
    assert_int_equal(f->ops->read_mark(f->c, r, f->bob, 2, &out), CD_OK); /* never backwards */
    assert_int_equal(out, 3);
    assert_int_equal(f->ops->read_mark(f->c, r, f->bob, 1000, &out), CD_OK); /* not the future */
    assert_int_equal(out, 5);
    assert_int_equal(f->ops->member_get(f->c, r, f->bob, &m), CD_OK);
    assert_int_equal(m.read_seq, 5);
    append(f, r, f->alice, NULL, "x");
    assert_int_equal(f->ops->read_mark(f->c, r, f->bob, 1000, &out), CD_OK);
    assert_int_equal(out, 6);

    out = -1;
    assert_int_equal(f->ops->read_mark(f->c, r, f->carol, 1, &out), CD_E_NOT_FOUND);
    assert_int_equal(out, -1);
    assert_int_equal(f->ops->read_mark(f->c, 9999, f->bob, 1, &out), CD_E_NOT_FOUND);
}

static void unread_count_counts_others_messages(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "r", NULL), other = room_new(f, "other", NULL), n = -1;
    int capped = -1;

    append(f, r, f->alice, NULL, "1");                        /* 1 */
    append(f, r, f->bob, NULL, "2 own");                      /* 2 */
    append_full(f, r, EV_MEMBER, f->alice, NULL, "{}", NULL); /* 3 */
    append(f, r, f->alice, "c", "4");                         /* 4 */
    append_full(f, r, EV_ROOM, f->carol, NULL, "{}", NULL);   /* 5 */
    append(f, r, f->carol, NULL, "6");                        /* 6 */
    append(f, other, f->alice, NULL, "elsewhere");

    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 0, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 1, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 4, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 6, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->unread_count(f->c, r, f->alice, 0, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(capped, 0);

    /* Bounded: only the first `max` entries after the marker are looked at. */
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 0, 4, &n, &capped), CD_OK);
    assert_int_equal(n, 2); /* entries 1-4: messages 1 and 4 are alice's */
    assert_int_equal(capped, 1);
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 0, 6, &n, &capped), CD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(capped, 0); /* nothing after seq 6 */
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 2, 1, &n, &capped), CD_OK);
    assert_int_equal(n, 0); /* entry 3 is a member event */
    assert_int_equal(capped, 1);
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 0, 0, &n, &capped), CD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(capped, 1);
}

static void dm_key_unique(void **state)
{
    struct fx *f = *state;
    struct store_room r;
    int64_t dm = room_new(f, "", "1:2"), id = 0;

    room_new(f, "g1", NULL); /* many groups, all with a NULL dm_key */
    room_new(f, "g2", NULL);
    memset(&r, 0, sizeof(r));
    r.kind = ROOM_DIRECT;
    r.created_by = f->bob;
    assert_int_equal(f->ops->room_insert(f->c, &r, "1:2"), CD_E_CONFLICT);
    assert_int_equal(f->ops->room_by_dm_key(f->c, "1:2", &id), CD_OK);
    assert_int_equal(id, dm);
    assert_int_equal(f->ops->room_by_dm_key(f->c, "1:3", &id), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->room_get(f->c, dm, &r), CD_OK);
    assert_int_equal(r.kind, ROOM_DIRECT);
}

static void room_get_and_update(void **state)
{
    struct fx *f = *state;
    struct store_room r;
    int64_t id = room_new(f, "name", NULL);

    assert_int_equal(f->ops->room_get(f->c, id, &r), CD_OK);
    assert_int_equal(r.id, id);
    assert_string_equal(r.name, "name");
    assert_string_equal(r.topic, "");
    assert_int_equal(r.last_seq, 0);
    assert_int_equal(r.member_count, 0);

    assert_int_equal(f->ops->room_update(f->c, id, NULL, "topic"), CD_OK);
    assert_int_equal(f->ops->room_update(f->c, id, "renamed", NULL), CD_OK);
    assert_int_equal(f->ops->room_get(f->c, id, &r), CD_OK);
    assert_string_equal(r.name, "renamed");
    assert_string_equal(r.topic, "topic");
    assert_int_equal(f->ops->room_update(f->c, id, "both", ""), CD_OK);
    assert_int_equal(f->ops->room_get(f->c, id, &r), CD_OK);
    assert_string_equal(r.name, "both");
    assert_string_equal(r.topic, "");

    assert_int_equal(f->ops->room_update(f->c, 9999, "x", NULL), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->room_get(f->c, 9999, &r), CD_E_NOT_FOUND);
}

/* Reads through a second, read-only connection (as worker threads do) and a reopen of the
 * database (migrations already applied) see the committed log. */
static void reader_and_reopen_see_log(void **state)
{
    struct fx *f = *state;
    struct store_config cfg;
    struct store_conn *rd;
    struct store *st2;
    struct collect k;
    int64_t r = room_new(f, "r", NULL);

    append(f, r, f->alice, "x", "one");
    append(f, r, f->bob, NULL, "two");

    fx_config(f, &cfg);
    cfg.sync_mode = "full";
    assert_int_equal(f->ops->open(&cfg, &st2), CD_OK);
    assert_int_equal(f->ops->conn_open(st2, 0, &rd), CD_OK);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->events_page(rd, r, 0, 0, 10, 1, on_event, &k), CD_OK);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.seq[0], 2);
    assert_string_equal(k.body[1], "one");
    assert_string_equal(k.cmid[1], "x");
    f->ops->conn_close(rd);
    f->ops->close(st2);
}

static void bulk_appends_in_one_transaction(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "bulk", NULL), seq = 0, n = 0;
    int capped = -1;
    struct collect k;
    char cmid[32];

    assert_int_equal(f->ops->begin(f->c), CD_OK);
    for (int i = 1; i <= STORE_CASES_BULK; i++) {
        snprintf(cmid, sizeof(cmid), "c%d", i);
        assert_int_equal(append_full(f, r, EV_MESSAGE, f->alice, cmid, "bulk message", &seq),
                         CD_OK);
        if (seq != i) fail_msg("seq %lld at append %d", (long long)seq, i);
    }
    assert_int_equal(f->ops->commit(f->c), CD_OK);
    assert_int_equal(seq, STORE_CASES_BULK);
    assert_int_equal(last_seq(f, r), STORE_CASES_BULK);
    page(f, r, 0, 0, 1, 1, &k);
    assert_int_equal(k.seq[0], STORE_CASES_BULK);
    snprintf(cmid, sizeof(cmid), "c%d", STORE_CASES_BULK);
    assert_string_equal(k.cmid[0], cmid);
    assert_int_equal(
        f->ops->unread_count(f->c, r, f->bob, STORE_CASES_BULK - 10, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, 10);
    assert_int_equal(capped, 0);
    /* from the start: 1000 looked at, the rest reported as capped */
    assert_int_equal(f->ops->unread_count(f->c, r, f->bob, 0, 1000, &n, &capped), CD_OK);
    assert_int_equal(n, STORE_CASES_BULK > 1000 ? 1000 : STORE_CASES_BULK);
    assert_int_equal(capped, STORE_CASES_BULK > 1000);
}

/* ---- the outbox ---- */

#define OB_MAX 64
struct ob_collect {
    int n, stop_after;
    int64_t pos[OB_MAX], room[OB_MAX], ts[OB_MAX];
    char id[OB_MAX][48], type[OB_MAX][24], json[OB_MAX][256];
};

static int on_outbox(void *ud, const struct store_outbox_event *ev)
{
    struct ob_collect *k = ud;
    assert_true(k->n < OB_MAX);
    k->pos[k->n] = ev->pos;
    k->room[k->n] = ev->room_id;
    k->ts[k->n] = ev->ts;
    snprintf(k->id[k->n], sizeof(k->id[0]), "%.*s", (int)ev->id_len, ev->id);
    snprintf(k->type[k->n], sizeof(k->type[0]), "%.*s", (int)ev->type_len, ev->type);
    snprintf(k->json[k->n], sizeof(k->json[0]), "%.*s", (int)ev->json_len, ev->json);
    k->n++;
    return k->stop_after && k->n >= k->stop_after;
}

static void outbox(struct store_conn *c, int64_t after, int limit, struct ob_collect *k)
{
    memset(k, 0, sizeof(*k));
    assert_int_equal(T_OPS->outbox_page(c, after, limit, on_outbox, k), CD_OK);
}

/* Users, rooms and log entries become events in the order they were written, positions 1..n
 * without gaps, with stable ids and the entries' JSON; paging by position. */
static void outbox_records_writes_in_order(void **state)
{
    struct fx *f = *state;
    struct ob_collect k;
    int64_t r, s1;
    char id[48];

    r = room_new(f, "ob", NULL);
    assert_int_equal(append_full(f, r, EV_MEMBER, f->alice, NULL, "{\"user\":\"u_1\"}", NULL),
                     CD_OK);
    s1 = append(f, r, f->bob, "c1", "hello \"you\"");
    outbox(f->c, 0, 100, &k);
    assert_int_equal(k.n, 6); /* 3 users (fixture), the room, 2 entries */
    for (int i = 0; i < k.n; i++)
        assert_int_equal(k.pos[i], i + 1);
    assert_string_equal(k.type[0], "user.created");
    snprintf(id, sizeof(id), "uc_%lld", (long long)f->alice);
    assert_string_equal(k.id[0], id);
    assert_non_null(strstr(k.json[0], "\"username\":\"alice\""));
    assert_int_equal(k.room[0], 0);
    assert_string_equal(k.type[3], "room.created");
    assert_int_equal(k.room[3], r);
    assert_int_equal(k.ts[3], 1000);
    assert_non_null(strstr(k.json[3], "\"name\":\"ob\""));
    assert_string_equal(k.type[4], "member");
    snprintf(id, sizeof(id), "e_%lld_1", (long long)r);
    assert_string_equal(k.id[4], id);
    assert_non_null(strstr(k.json[4], "\"type\":\"member\""));
    assert_string_equal(k.type[5], "message");
    snprintf(id, sizeof(id), "m_%lld_%lld", (long long)r, (long long)s1);
    assert_string_equal(k.id[5], id);
    assert_int_equal(k.ts[5], 5000);
    assert_non_null(strstr(k.json[5], "\"body\":\"hello \\\"you\\\"\""));
    assert_non_null(strstr(k.json[5], "\"client_msg_id\":\"c1\""));

    /* a refused duplicate adds nothing */
    assert_int_equal(append_full(f, r, EV_MESSAGE, f->bob, "c1", "again", NULL), CD_E_CONFLICT);
    outbox(f->c, 4, 100, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.pos[0], 5);
    outbox(f->c, 0, 2, &k);
    assert_int_equal(k.n, 2);
    outbox(f->c, 6, 100, &k);
    assert_int_equal(k.n, 0);
    k.stop_after = 1;
    k.n = 0;
    assert_int_equal(T_OPS->outbox_page(f->c, 0, 10, on_outbox, &k), CD_OK);
    assert_int_equal(k.n, 1);
}

/* A job's rolled-back savepoint takes its outbox rows with it; a committed transaction's rows
 * follow the earlier ones without a gap, readable on a read connection. */
static void outbox_follows_savepoints_and_commits(void **state)
{
    struct fx *f = *state;
    struct store_conn *rd;
    struct ob_collect k;
    int64_t r = room_new(f, "tx", NULL);

    assert_int_equal(f->ops->begin(f->c), CD_OK);
    assert_int_equal(f->ops->savepoint(f->c), CD_OK);
    append(f, r, f->alice, NULL, "undone");
    assert_int_equal(f->ops->savepoint_release(f->c, 1), CD_OK);
    assert_int_equal(f->ops->savepoint(f->c), CD_OK);
    append(f, r, f->alice, NULL, "kept");
    assert_int_equal(f->ops->savepoint_release(f->c, 0), CD_OK);
    append(f, r, f->bob, NULL, "kept too");
    assert_int_equal(f->ops->commit(f->c), CD_OK);

    assert_int_equal(f->ops->begin(f->c), CD_OK);
    append(f, r, f->alice, NULL, "rolled back");
    assert_int_equal(f->ops->rollback(f->c), CD_OK);

    assert_int_equal(f->ops->conn_open(f->st, 0, &rd), CD_OK);
    outbox(rd, 4, 100, &k);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.pos[0], 5);
    assert_int_equal(k.pos[1], 6);
    assert_non_null(strstr(k.json[0], "\"body\":\"kept\""));
    assert_non_null(strstr(k.json[1], "\"body\":\"kept too\""));
    f->ops->conn_close(rd);
}

static void consumer_positions_are_monotonic(void **state)
{
    struct fx *f = *state;
    int64_t pos = -1;

    assert_int_equal(f->ops->consumer_get(f->c, "webhooks", &pos), CD_OK);
    assert_int_equal(pos, 0);
    assert_int_equal(f->ops->consumer_put(f->c, "webhooks", 7), CD_OK);
    assert_int_equal(f->ops->consumer_put(f->c, "webhooks", 5), CD_OK); /* never back */
    assert_int_equal(f->ops->consumer_put(f->c, "kafka", 2), CD_OK);
    assert_int_equal(f->ops->consumer_get(f->c, "webhooks", &pos), CD_OK);
    assert_int_equal(pos, 7);
    assert_int_equal(f->ops->consumer_put(f->c, "webhooks", 9), CD_OK);
    assert_int_equal(f->ops->consumer_get(f->c, "webhooks", &pos), CD_OK);
    assert_int_equal(pos, 9);
    assert_int_equal(f->ops->consumer_get(f->c, "kafka", &pos), CD_OK);
    assert_int_equal(pos, 2);
}

static int on_apikey(void *ud, const struct store_apikey *k)
{
    struct collect *c = ud;
    assert_true(c->n < COLLECT_MAX);
    c->seq[c->n] = k->id;
    c->user[c->n] = k->revoked_at;
    snprintf(c->body[c->n], sizeof(c->body[0]), "%.31s", k->name);
    c->n++;
    return 0;
}

/* Keys are found by hash only; revoking is once; the list shows both. */
static void apikeys_by_hash_and_revoke(void **state)
{
    struct fx *f = *state;
    uint8_t h1[32], h2[32], h3[32];
    struct store_apikey k;
    struct collect c;
    int64_t id1 = 0, id2 = 0;

    memset(h1, 1, sizeof(h1));
    memset(h2, 2, sizeof(h2));
    memset(h3, 3, sizeof(h3));
    assert_int_equal(f->ops->apikey_insert(f->c, "backend", h1, 100, &id1), CD_OK);
    assert_int_equal(f->ops->apikey_insert(f->c, "other", h2, 200, &id2), CD_OK);
    assert_true(id2 > id1);
    assert_int_equal(f->ops->apikey_insert(f->c, "dup", h1, 300, &id2), CD_E_CONFLICT);
    assert_int_equal(f->ops->apikey_by_hash(f->c, h1, &k), CD_OK);
    assert_int_equal(k.id, id1);
    assert_string_equal(k.name, "backend");
    assert_int_equal(k.created_at, 100);
    assert_int_equal(k.revoked_at, 0);
    assert_int_equal(f->ops->apikey_by_hash(f->c, h3, &k), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->apikey_revoke(f->c, id1, 500), CD_OK);
    assert_int_equal(f->ops->apikey_revoke(f->c, id1, 600), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->apikey_revoke(f->c, 9999, 600), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->apikey_by_hash(f->c, h1, &k), CD_OK);
    assert_int_equal(k.revoked_at, 500);
    memset(&c, 0, sizeof(c));
    assert_int_equal(f->ops->apikey_list(f->c, on_apikey, &c), CD_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.body[0], "backend");
    assert_int_equal(c.user[0], 500);
    assert_int_equal(c.user[1], 0);
}

/* Webhook endpoints: insert, get, list in id order, delete. */
static int count_webhook(void *ud, const struct store_webhook *w)
{
    (void)w;
    (*(int *)ud)++;
    return 0;
}

static void webhooks_insert_list_delete(void **state)
{
    struct fx *f = *state;
    struct store_webhook w, got;
    int n = 0;
    memset(&w, 0, sizeof(w));
    snprintf(w.url, sizeof(w.url), "http://127.0.0.1:9/hook");
    snprintf(w.secret, sizeof(w.secret), "0123456789abcdef");
    snprintf(w.types, sizeof(w.types), "message,member");
    w.created_at = 77;
    assert_int_equal(f->ops->webhook_insert(f->c, &w), CD_OK);
    assert_true(w.id > 0);
    assert_int_equal(f->ops->webhook_get(f->c, w.id, &got), CD_OK);
    assert_string_equal(got.url, w.url);
    assert_string_equal(got.secret, w.secret);
    assert_string_equal(got.types, "message,member");
    assert_int_equal(got.created_at, 77);
    assert_int_equal(f->ops->webhooks_list(f->c, count_webhook, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->webhook_delete(f->c, w.id), CD_OK);
    assert_int_equal(f->ops->webhook_delete(f->c, w.id), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->webhook_get(f->c, w.id, &got), CD_E_NOT_FOUND);
}

struct dl_seen {
    int n;
    int64_t ids[8];
    char body[64];
    int attempts;
    char err[STORE_DELIVERY_ERROR_MAX + 1];
};

static int dl_row(void *ud, const struct store_delivery *d)
{
    struct dl_seen *s = ud;
    if (s->n < 8) s->ids[s->n] = d->id;
    snprintf(s->body, sizeof(s->body), "%.*s", (int)d->body_len, d->body);
    s->attempts = d->attempts;
    snprintf(s->err, sizeof(s->err), "%s", d->last_error);
    s->n++;
    return 0;
}

/* Deliveries: one row per (endpoint, event id); due rows by next_at; an attempt's outcome;
 * dead rows listed and replayed (only dead ones). */
static void deliveries_lifecycle(void **state)
{
    struct fx *f = *state;
    struct store_delivery d;
    struct dl_seen s;
    int inserted = -1;
    memset(&d, 0, sizeof(d));
    d.endpoint_id = -1;
    snprintf(d.event_id, sizeof(d.event_id), "ev-1");
    d.body = "{\"a\":1}";
    d.body_len = 7;
    d.next_at = 1000;
    d.created_at = 1000;
    assert_int_equal(f->ops->delivery_insert(f->c, &d, &inserted), CD_OK);
    assert_int_equal(inserted, 1);
    assert_int_equal(f->ops->delivery_insert(f->c, &d, &inserted), CD_OK);
    assert_int_equal(inserted, 0); /* same (endpoint, event id) */
    d.endpoint_id = 5;             /* another endpoint: its own row */
    assert_int_equal(f->ops->delivery_insert(f->c, &d, &inserted), CD_OK);
    assert_int_equal(inserted, 1);

    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_PENDING, 999, 0, 10, dl_row, &s),
                     CD_OK);
    assert_int_equal(s.n, 0); /* not due yet */
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_PENDING, 1000, 0, 10, dl_row, &s),
                     CD_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.body, "{\"a\":1}");

    /* A claim is a lease: the first worker gets the row, a second one (same due time) not. */
    assert_int_equal(f->ops->delivery_claim(f->c, s.ids[0], 1000, 1500), CD_OK);
    assert_int_equal(f->ops->delivery_claim(f->c, s.ids[0], 1000, 1500), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->delivery_claim(f->c, s.ids[0], 1500, 1600), CD_OK); /* expired */
    /* A failed attempt moves next_at; the last one makes the row dead. */
    assert_int_equal(f->ops->delivery_update(f->c, s.ids[0], DELIVERY_PENDING, 1, 5000, "HTTP 500"),
                     CD_OK);
    assert_int_equal(f->ops->delivery_update(f->c, s.ids[1], DELIVERY_DEAD, 3, 6000, "timeout"),
                     CD_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_PENDING, 4999, 0, 10, dl_row, &s),
                     CD_OK);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_DEAD, 0, 0, 10, dl_row, &s), CD_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.attempts, 3);
    assert_string_equal(s.err, "timeout");
    int64_t dead = s.ids[0];
    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_PENDING, 5000, 0, 10, dl_row, &s),
                     CD_OK);
    assert_int_equal(s.n, 1);
    int64_t pending = s.ids[0];
    assert_int_equal(f->ops->delivery_replay(f->c, pending, 7000), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->delivery_replay(f->c, dead, 7000), CD_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_PENDING, 7000, 0, 10, dl_row, &s),
                     CD_OK);
    assert_int_equal(s.n, 2);
    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_DEAD, 0, 0, 10, dl_row, &s), CD_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(f->ops->delivery_update(f->c, 999999, DELIVERY_DONE, 1, 0, NULL),
                     CD_E_NOT_FOUND);
}

/* Retention: only delivered rows older than the cutoff go, at most `limit` per call; dead rows
 * are deleted one by one (and only dead ones); the counts per state; the notifier's stored
 * window (taken once per window, per pair) and its pruning. */
static void deliveries_prune_and_notify_windows(void **state)
{
    struct fx *f = *state;
    struct store_delivery d;
    struct dl_seen s;
    int64_t n = -1, ids[5];
    int inserted, taken = -1;
    memset(&d, 0, sizeof(d));
    d.endpoint_id = -1;
    d.body = "{}";
    d.body_len = 2;
    for (int i = 0; i < 5; i++) {
        snprintf(d.event_id, sizeof(d.event_id), "pr-%d", i);
        d.next_at = d.created_at = 100;
        assert_int_equal(f->ops->delivery_insert(f->c, &d, &inserted), CD_OK);
    }
    memset(&s, 0, sizeof(s));
    assert_int_equal(f->ops->deliveries_list(f->c, DELIVERY_PENDING, 100, 0, 10, dl_row, &s),
                     CD_OK);
    assert_int_equal(s.n, 5);
    memcpy(ids, s.ids, sizeof(ids));
    /* 0..2 delivered at 1000, 1001, 1002; 3 dead; 4 pending */
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->ops->delivery_update(f->c, ids[i], DELIVERY_DONE, 1, 1000 + i, NULL),
                         CD_OK);
    assert_int_equal(f->ops->delivery_update(f->c, ids[3], DELIVERY_DEAD, 2, 500, "HTTP 500"),
                     CD_OK);
    assert_int_equal(f->ops->deliveries_count(f->c, DELIVERY_DONE, &n), CD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(f->ops->deliveries_count(f->c, DELIVERY_DEAD, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->deliveries_count(f->c, DELIVERY_PENDING, &n), CD_OK);
    assert_int_equal(n, 1);
    /* cutoff 1002: rows delivered at 1000 and 1001 qualify; limit 1 takes the oldest first */
    assert_int_equal(f->ops->deliveries_prune(f->c, 1002, 1, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->deliveries_prune(f->c, 1002, 10, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->deliveries_prune(f->c, 1002, 10, &n), CD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->deliveries_prune(f->c, INT64_MAX, 10, &n), CD_OK);
    assert_int_equal(n, 1); /* the last delivered one; dead and pending rows stay */
    assert_int_equal(f->ops->deliveries_count(f->c, DELIVERY_DONE, &n), CD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->deliveries_count(f->c, DELIVERY_DEAD, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->delivery_delete(f->c, ids[4]), CD_E_NOT_FOUND); /* pending */
    assert_int_equal(f->ops->delivery_delete(f->c, ids[3]), CD_OK);
    assert_int_equal(f->ops->delivery_delete(f->c, ids[3]), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->deliveries_count(f->c, DELIVERY_DEAD, &n), CD_OK);
    assert_int_equal(n, 0);

    /* windows of 1000 ms per (user, room) */
    assert_int_equal(f->ops->notify_take(f->c, 7, 9, 5000, 1000, &taken), CD_OK);
    assert_int_equal(taken, 1);
    assert_int_equal(f->ops->notify_take(f->c, 7, 9, 5999, 1000, &taken), CD_OK);
    assert_int_equal(taken, 0);
    assert_int_equal(f->ops->notify_take(f->c, 8, 9, 5999, 1000, &taken), CD_OK);
    assert_int_equal(taken, 1); /* another user */
    assert_int_equal(f->ops->notify_take(f->c, 7, 10, 5999, 1000, &taken), CD_OK);
    assert_int_equal(taken, 1); /* another room */
    assert_int_equal(f->ops->notify_take(f->c, 7, 9, 6000, 1000, &taken), CD_OK);
    assert_int_equal(taken, 1); /* the window passed: a new one from 6000 */
    assert_int_equal(f->ops->notify_take(f->c, 7, 9, 6500, 1000, &taken), CD_OK);
    assert_int_equal(taken, 0);
    /* pairs older than 6000: (8,9) and (7,10) at 5999 */
    assert_int_equal(f->ops->notify_prune(f->c, 6000, 1, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->notify_prune(f->c, 6000, 10, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->notify_prune(f->c, 6000, 10, &n), CD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->notify_take(f->c, 7, 9, 6500, 1000, &taken), CD_OK);
    assert_int_equal(taken, 0); /* (7,9) kept: its window is still open */
}

/* Mute: per (room, user), 0 without a row, last write wins. */
static void room_mute_per_user(void **state)
{
    struct fx *f = *state;
    int64_t room = room_new(f, "mute", NULL);
    int muted = -1;
    assert_int_equal(f->ops->room_mute_get(f->c, room, f->bob, &muted), CD_OK);
    assert_int_equal(muted, 0);
    assert_int_equal(f->ops->room_mute_put(f->c, room, f->bob, 1), CD_OK);
    assert_int_equal(f->ops->room_mute_get(f->c, room, f->bob, &muted), CD_OK);
    assert_int_equal(muted, 1);
    assert_int_equal(f->ops->room_mute_get(f->c, room, f->carol, &muted), CD_OK);
    assert_int_equal(muted, 0);
    assert_int_equal(f->ops->room_mute_put(f->c, room, f->bob, 0), CD_OK);
    assert_int_equal(f->ops->room_mute_get(f->c, room, f->bob, &muted), CD_OK);
    assert_int_equal(muted, 0);
}

/* Search: the index is keyed by (room, seq); a search sees only the user's rooms and entries
 * after their joined_seq, newest first, paged by position; put replaces (an edit), delete
 * removes (a delete: the text is never found again). */
struct hits {
    int n;
    int64_t room[COLLECT_MAX], seq[COLLECT_MAX], pos[COLLECT_MAX];
    char snippet[COLLECT_MAX][128];
};

static int on_hit(void *ud, const struct store_search_hit *h)
{
    struct hits *k = ud;
    assert_true(k->n < COLLECT_MAX);
    k->room[k->n] = h->room_id;
    k->seq[k->n] = h->seq;
    k->pos[k->n] = h->pos;
    snprintf(k->snippet[k->n], sizeof(k->snippet[0]), "%.*s", (int)h->snippet_len, h->snippet);
    k->n++;
    return 0;
}

static void find(struct fx *f, int64_t user, int64_t room, const char *terms, int64_t before,
                 int limit, struct hits *k)
{
    struct store_search_q q = {
        .user = user, .room = room, .before = before, .match = terms, .limit = limit};
    memset(k, 0, sizeof(*k));
    assert_int_equal(f->ops->search(f->c, &q, on_hit, k), CD_OK);
}

static int64_t say(struct fx *f, int64_t room, int64_t sender, const char *cmid, const char *body)
{
    int64_t seq = append(f, room, sender, cmid, body);
    assert_int_equal(f->ops->search_index_put(f->c, room, seq, body, strlen(body)), CD_OK);
    return seq;
}

static void search_rooms_window_edit_delete(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL), s1, s2, s3, s4;
    struct hits k;

    put_member(f, r1, f->alice, ROLE_OWNER, 0);
    put_member(f, r2, f->alice, ROLE_OWNER, 0);
    s1 = say(f, r1, f->alice, "a1", "the quick brown fox");
    s2 = say(f, r2, f->alice, "a2", "a quick reply");
    put_member(f, r1, f->bob, ROLE_MEMBER, s1); /* bob joins r1 after s1 */
    s3 = say(f, r1, f->alice, "a3", "Quick thinking");
    find(f, f->alice, 0, "quick", 0, 10, &k);
    assert_int_equal(k.n, 3);
    assert_int_equal(k.seq[0], s3); /* newest first */
    assert_int_equal(k.room[1], r2);
    assert_int_equal(k.seq[1], s2);
    assert_int_equal(k.seq[2], s1);
    assert_true(k.pos[0] > k.pos[1] && k.pos[1] > k.pos[2]);
    assert_non_null(strstr(k.snippet[0], "\x01Quick\x02"));
    find(f, f->alice, 0, "quick", k.pos[0], 10, &k); /* the next page */
    assert_int_equal(k.n, 2);
    find(f, f->alice, r1, "quick", 0, 10, &k);
    assert_int_equal(k.n, 2);
    find(f, f->alice, 0, "quick fox", 0, 10, &k); /* every term */
    assert_int_equal(k.n, 1);
    find(f, f->bob, 0, "quick", 0, 10, &k); /* only r1, only after joining */
    assert_int_equal(k.n, 1);
    assert_int_equal(k.seq[0], s3);
    find(f, f->carol, 0, "quick", 0, 10, &k);
    assert_int_equal(k.n, 0);
    /* an edit replaces the text */
    assert_int_equal(f->ops->search_index_put(f->c, r1, s3, "slow thinking", 13), CD_OK);
    find(f, f->alice, 0, "quick", 0, 10, &k);
    assert_int_equal(k.n, 2);
    find(f, f->alice, 0, "slow", 0, 10, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.seq[0], s3);
    /* a delete removes it */
    assert_int_equal(f->ops->search_index_delete(f->c, r1, s1), CD_OK);
    find(f, f->alice, 0, "fox", 0, 10, &k);
    assert_int_equal(k.n, 0);
    s4 = say(f, r2, f->alice, "a4", "fox again");
    find(f, f->alice, 0, "fox", 0, 1, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.seq[0], s4);
}

/* Attachments: rows, who may read one, references and extras shown with the entry, expiry of
 * unreferenced uploads only, and the references of a deleted message. */
struct ids {
    int n;
    char body[8][STORE_ATT_ID_LEN + 1];
};

static int on_id(void *ud, const char *id)
{
    struct ids *k = ud;
    assert_true(k->n < 8);
    snprintf(k->body[k->n++], sizeof(k->body[0]), "%s", id);
    return 0;
}

static int on_extra(void *ud, const struct store_event *ev)
{
    char *out = ud;
    snprintf(out, 128, "%.*s", (int)ev->extra_len, ev->extra ? ev->extra : "");
    return 0;
}

static void attachments_refs_readable_expire(void **state)
{
    struct fx *f = *state;
    struct store_attachment a = {.owner = 0, .size = 5, .created_at = 100}, b, got;
    int64_t r = room_new(f, "files", NULL), seq;
    struct collect pk;
    struct ids k;
    char extra[128];
    int ok = -1;

    snprintf(a.id, sizeof(a.id), "%032d", 1);
    a.owner = f->alice;
    snprintf(a.content_type, sizeof(a.content_type), "text/plain");
    snprintf(a.name, sizeof(a.name), "a.txt");
    snprintf(a.sha256, sizeof(a.sha256), "%064d", 7);
    b = a;
    snprintf(b.id, sizeof(b.id), "%032d", 2);
    assert_int_equal(f->ops->attachment_insert(f->c, &a), CD_OK);
    assert_int_equal(f->ops->attachment_insert(f->c, &b), CD_OK);
    assert_int_equal(f->ops->attachment_get(f->c, a.id, &got), CD_OK);
    assert_string_equal(got.name, "a.txt");
    assert_int_equal(got.size, 5);
    assert_int_equal(got.owner, f->alice);
    assert_int_equal(f->ops->attachment_get(f->c, "ffff", &got), CD_E_NOT_FOUND);

    put_member(f, r, f->alice, ROLE_OWNER, 0);
    put_member(f, r, f->bob, ROLE_MEMBER, 0);
    seq = append(f, r, f->alice, "f1", "file");
    put_member(f, r, f->carol, ROLE_MEMBER, seq); /* joined after the post */
    assert_int_equal(f->ops->attachment_ref(f->c, a.id, r, seq), CD_OK);
    assert_int_equal(f->ops->attachment_ref(f->c, a.id, r, seq), CD_OK); /* idempotent */
    assert_int_equal(f->ops->event_extra_put(f->c, r, seq, "\"attachments\":[]", 16), CD_OK);
    page(f, r, 0, 0, 10, 0, &pk);
    assert_int_equal(pk.n, 1);
    assert_int_equal(f->ops->events_page(f->c, r, seq - 1, 0, 1, 0, on_extra, extra), CD_OK);
    assert_string_equal(extra, "\"attachments\":[]");
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->alice, &ok), CD_OK);
    assert_int_equal(ok, 1);
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 1);
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->carol, &ok), CD_OK);
    assert_int_equal(ok, 0);
    assert_int_equal(f->ops->attachment_readable(f->c, b.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 0);

    /* only b (unreferenced, old enough) expires */
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->attachments_expire(f->c, 50, 10, on_id, &k), CD_OK);
    assert_int_equal(k.n, 0); /* not old enough */
    assert_int_equal(f->ops->attachments_expire(f->c, 1000, 10, on_id, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.body[0], b.id);
    assert_int_equal(f->ops->attachment_get(f->c, b.id, &got), CD_E_NOT_FOUND);

    /* the message is deleted: no reference, no extras, then a expires too */
    assert_int_equal(f->ops->attachments_unref_message(f->c, r, seq), CD_OK);
    assert_int_equal(f->ops->events_page(f->c, r, seq - 1, 0, 1, 0, on_extra, extra), CD_OK);
    assert_string_equal(extra, "");
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 0);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->attachments_expire(f->c, 1000, 10, on_id, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.body[0], a.id);
}

/* The asynchronous indexer: new messages are found once search_index_log has run; an edit or a
 * delete that came before it wins (the deleted text is never indexed). PostgreSQL runs it on a
 * connection of its own, beside the writer. */
static void search_indexer_catches_up(void **state)
{
    struct fx *f = *state;
    int64_t r = room_new(f, "ix", NULL), s1, s2, s3;
    struct store_conn *ixc = f->c;
    struct hits k;
    int n = 0;

    assert_non_null(f->ops->search_index_log);
    if (f->ops->search_index_own_conn) assert_int_equal(f->ops->conn_open(f->st, 0, &ixc), CD_OK);
    put_member(f, r, f->alice, ROLE_OWNER, 0);
    s1 = append(f, r, f->alice, "i1", "alpha one");
    s2 = append(f, r, f->alice, "i2", "alpha two");
    s3 = append(f, r, f->alice, "i3", "alpha three");
    find(f, f->alice, 0, "alpha", 0, 10, &k);
    assert_int_equal(k.n, 0); /* not indexed yet */
    assert_int_equal(f->ops->search_index_put(f->c, r, s2, "beta two", 8), CD_OK); /* edit */
    assert_int_equal(f->ops->search_index_delete(f->c, r, s3), CD_OK);             /* delete */
    assert_int_equal(f->ops->search_index_log(ixc, 2, &n), CD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(f->ops->search_index_log(ixc, 100, &n), CD_OK);
    assert_true(n >= 1);
    assert_int_equal(f->ops->search_index_log(ixc, 100, &n), CD_OK);
    assert_int_equal(n, 0); /* caught up */
    find(f, f->alice, 0, "alpha", 0, 10, &k);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.seq[0], s1);
    find(f, f->alice, 0, "beta", 0, 10, &k);
    assert_int_equal(k.n, 1);
    find(f, f->alice, 0, "three", 0, 10, &k);
    assert_int_equal(k.n, 0);
    if (ixc != f->c) f->ops->conn_close(ixc);
}

static int on_ahead(void *ud, int64_t room, int64_t last)
{
    struct collect *k = ud;
    assert_true(k->n < COLLECT_MAX);
    k->room[k->n] = room;
    k->seq[k->n] = last;
    k->n++;
    return k->stop_after && k->n >= k->stop_after;
}

/* Only the rooms whose log passed what the caller saw come back, with their heads. */
static void rooms_ahead_reports_lagging_rooms(void **state)
{
    struct fx *f = *state;
    int64_t r1 = room_new(f, "one", NULL), r2 = room_new(f, "two", NULL),
            r3 = room_new(f, "three", NULL);
    struct collect k;
    int64_t ids[4], seen[4] = {2, 1, 0, 0};

    ids[0] = r1, ids[1] = r2, ids[2] = r3, ids[3] = r3 + 1000; /* the last is unknown */
    for (int i = 0; i < 2; i++)
        append(f, r1, f->alice, NULL, "a");
    for (int i = 0; i < 3; i++)
        append(f, r2, f->alice, NULL, "b");
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_ahead(f->c, ids, seen, 4, on_ahead, &k), CD_OK);
    assert_int_equal(k.n, 1); /* r1 is at 2 (seen), r3 is empty, the unknown room is left out */
    assert_int_equal(k.room[0], r2);
    assert_int_equal(k.seq[0], 3);
    seen[0] = 0;
    memset(&k, 0, sizeof(k));
    k.stop_after = 1;
    assert_int_equal(f->ops->rooms_ahead(f->c, ids, seen, 4, on_ahead, &k), CD_OK);
    assert_int_equal(k.n, 1);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_ahead(f->c, ids, seen, 0, on_ahead, &k), CD_OK);
    assert_int_equal(k.n, 0);
}

/* ---- people and room features (issue 14 part 5) ---- */

static void user_insert_id_distinguishes_conflicts(void **state)
{
    struct fx *f = *state;
    struct store_profile p;
    const int64_t id = INT64_C(5000000000123);
    assert_int_equal(f->ops->user_insert_id(f->c, id, "dave", "h", 7), CD_OK);
    assert_int_equal(f->ops->user_insert_id(f->c, id, "erin", "h", 7), CD_E_CONFLICT);
    assert_int_equal(f->ops->user_insert_id(f->c, id + 1, "dave", "h", 7), CD_E_USERNAME_TAKEN);
    assert_int_equal(f->ops->profile_get(f->c, id, &p), CD_OK);
    assert_string_equal(p.username, "dave");
    assert_int_equal(p.created_at, 7);
    assert_int_equal(p.deleted_at, 0);
}

struct names {
    char v[8][STORE_USERNAME_MAX + 1];
    int n;
};

static int on_profile(void *ud, const struct store_profile *p, const struct store_member *m,
                      int64_t at)
{
    struct names *k = ud;
    (void)m;
    (void)at;
    if (k->n < 8) snprintf(k->v[k->n++], sizeof(k->v[0]), "%s", p->username);
    return 0;
}

static void profiles_prefix_and_erase(void **state)
{
    struct fx *f = *state;
    struct store_profile p;
    struct names k = {0};
    int64_t id;
    assert_int_equal(f->ops->user_insert(f->c, "al_b", "h", 1, &id), CD_OK);
    assert_int_equal(f->ops->user_insert(f->c, "al.c", "h", 1, &id), CD_OK);
    assert_int_equal(f->ops->profile_set(f->c, f->alice, "Alice A", NULL, "busy"), CD_OK);
    assert_int_equal(f->ops->profile_set(f->c, f->alice, NULL, "up_1", NULL), CD_OK);
    assert_int_equal(f->ops->profile_get(f->c, f->alice, &p), CD_OK);
    assert_string_equal(p.display_name, "Alice A");
    assert_string_equal(p.avatar, "up_1");
    assert_string_equal(p.status_text, "busy");
    /* byte order on both stores: '.' < '_' < 'i' */
    assert_int_equal(f->ops->users_by_prefix(f->c, "al", "am", "", 10, on_profile, &k), CD_OK);
    assert_int_equal(k.n, 3);
    assert_string_equal(k.v[0], "al.c");
    assert_string_equal(k.v[1], "al_b");
    assert_string_equal(k.v[2], "alice");
    k.n = 0;
    assert_int_equal(f->ops->users_by_prefix(f->c, "al", "am", "al_b", 10, on_profile, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_string_equal(k.v[0], "alice");
    /* erase: the username is freed, the profile emptied, the row and id stay */
    assert_int_equal(f->ops->pair_put(f->c, STORE_BLOCKS, f->bob, f->alice, 5), CD_OK);
    assert_int_equal(f->ops->pair_put(f->c, STORE_CONTACTS, f->alice, f->bob, 5), CD_OK);
    assert_int_equal(f->ops->user_erase(f->c, f->alice, 99), CD_OK);
    assert_int_equal(f->ops->profile_get(f->c, f->alice, &p), CD_OK);
    assert_int_equal(p.deleted_at, 99);
    assert_string_equal(p.display_name, "");
    assert_int_equal(p.username[0], '#');
    k.n = 0;
    assert_int_equal(f->ops->users_by_prefix(f->c, "al", "am", "", 10, on_profile, &k), CD_OK);
    assert_int_equal(k.n, 2);
    assert_int_equal(f->ops->user_insert(f->c, "alice", "h", 1, &id), CD_OK);
    assert_int_equal(f->ops->profile_set(f->c, f->alice, "x", NULL, NULL), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->user_set_pwhash(f->c, f->alice, "h2"), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->user_erase(f->c, f->alice, 100), CD_E_NOT_FOUND);
    {
        int b = 1;
        assert_int_equal(f->ops->pair_exists(f->c, STORE_BLOCKS, f->bob, f->alice, &b), CD_OK);
        assert_int_equal(b, 0);
    }
}

static int count_pair(void *ud, int64_t user, int64_t other)
{
    (void)user;
    (void)other;
    ++*(int *)ud;
    return 0;
}

static void pairs_put_list_delete(void **state)
{
    struct fx *f = *state;
    struct names k = {0};
    int b = 0, n = 0;
    assert_int_equal(f->ops->pair_put(f->c, STORE_CONTACTS, f->alice, f->carol, 10), CD_OK);
    assert_int_equal(f->ops->pair_put(f->c, STORE_CONTACTS, f->alice, f->bob, 11), CD_OK);
    assert_int_equal(f->ops->pair_put(f->c, STORE_CONTACTS, f->alice, f->bob, 12), CD_OK);
    assert_int_equal(f->ops->pair_list(f->c, STORE_CONTACTS, f->alice, 0, 10, on_profile, &k),
                     CD_OK);
    assert_int_equal(k.n, 2); /* idempotent, in user id order */
    assert_string_equal(k.v[0], f->bob < f->carol ? "bob" : "carol");
    assert_int_equal(f->ops->pair_exists(f->c, STORE_BLOCKS, f->alice, f->bob, &b), CD_OK);
    assert_int_equal(b, 0); /* the tables are separate */
    assert_int_equal(f->ops->pair_put(f->c, STORE_BLOCKS, f->alice, f->bob, 13), CD_OK);
    assert_int_equal(f->ops->pair_exists(f->c, STORE_BLOCKS, f->alice, f->bob, &b), CD_OK);
    assert_int_equal(b, 1);
    assert_int_equal(f->ops->pair_exists(f->c, STORE_BLOCKS, f->bob, f->alice, &b), CD_OK);
    assert_int_equal(b, 0);
    assert_int_equal(f->ops->blocks_all(f->c, count_pair, &n), CD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->pair_delete(f->c, STORE_CONTACTS, f->alice, f->bob), CD_OK);
    assert_int_equal(f->ops->pair_delete(f->c, STORE_CONTACTS, f->alice, f->bob), CD_E_NOT_FOUND);
    k.n = 0;
    assert_int_equal(f->ops->pair_list(f->c, STORE_CONTACTS, f->alice, 0, 10, on_profile, &k),
                     CD_OK);
    assert_int_equal(k.n, 1);
}

static void member_access_states_and_blocks(void **state)
{
    struct fx *f = *state;
    struct store_access a;
    int64_t g = room_new(f, "g", NULL), dm = room_new(f, "", "1:2");
    put_member(f, g, f->alice, ROLE_OWNER, 1);
    put_member(f, dm, f->alice, ROLE_MEMBER, 1);
    put_member(f, dm, f->bob, ROLE_MEMBER, 2);
    assert_int_equal(f->ops->member_access(f->c, 9999, f->alice, &a), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->member_access(f->c, g, f->alice, &a), CD_OK);
    assert_true(a.member && a.state == ROOM_ACTIVE && !a.dm_blocked && a.kind == ROOM_GROUP);
    assert_int_equal(f->ops->member_access(f->c, g, f->bob, &a), CD_OK);
    assert_false(a.member);
    assert_int_equal(f->ops->room_set_flags(f->c, g, -1, ROOM_ARCHIVED), CD_OK);
    assert_int_equal(f->ops->member_access(f->c, g, f->alice, &a), CD_OK);
    assert_int_equal(a.state, ROOM_ARCHIVED);
    assert_int_equal(f->ops->pair_put(f->c, STORE_BLOCKS, f->alice, f->bob, 1), CD_OK);
    assert_int_equal(f->ops->member_access(f->c, dm, f->bob, &a), CD_OK);
    assert_true(a.member && a.dm_blocked && a.kind == ROOM_DIRECT);
    assert_int_equal(f->ops->member_access(f->c, dm, f->alice, &a), CD_OK);
    assert_false(a.dm_blocked); /* directed: alice blocks bob */
    assert_int_equal(f->ops->room_set_flags(f->c, 9999, 1, -1), CD_E_NOT_FOUND);
}

static int on_room(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct collect *k = ud;
    assert_null(m);
    assert_true(k->n < COLLECT_MAX);
    k->rooms[k->n++] = *room;
    return 0;
}

static void public_rooms_and_hidden_dms(void **state)
{
    struct fx *f = *state;
    struct collect k;
    struct store_room r;
    int64_t g1 = room_new(f, "g1", NULL), g2 = room_new(f, "g2", NULL),
            g3 = room_new(f, "g3", NULL);
    int64_t dm = room_new(f, "", "1:2");
    (void)g2;
    assert_int_equal(f->ops->room_set_flags(f->c, g1, 1, -1), CD_OK);
    assert_int_equal(f->ops->room_set_flags(f->c, g3, 1, -1), CD_OK);
    assert_int_equal(f->ops->room_get(f->c, g1, &r), CD_OK);
    assert_int_equal(r.is_public, 1);
    assert_int_equal(r.state, ROOM_ACTIVE);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_public(f->c, 0, 10, on_room, &k), CD_OK);
    assert_int_equal(k.n, 2);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_public(f->c, g1, 10, on_room, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(f->ops->room_set_flags(f->c, g3, -1, ROOM_ARCHIVED), CD_OK);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_public(f->c, 0, 10, on_room, &k), CD_OK);
    assert_int_equal(k.n, 1); /* archived rooms are not listed */
    /* a hidden direct room comes back with a newer message only */
    put_member(f, dm, f->alice, ROLE_MEMBER, 1);
    put_member(f, dm, f->bob, ROLE_MEMBER, 2);
    append(f, dm, f->bob, "h1", "one");
    assert_int_equal(f->ops->member_hide(f->c, dm, f->alice, last_seq(f, dm)), CD_OK);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_visible(f->c, f->alice, 0, 10, on_member, &k), CD_OK);
    assert_int_equal(k.n, 0);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_of_user(f->c, f->alice, 0, 10, on_member, &k), CD_OK);
    assert_int_equal(k.n, 1); /* still a member */
    append(f, dm, f->bob, "h2", "two");
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->rooms_visible(f->c, f->alice, 0, 10, on_member, &k), CD_OK);
    assert_int_equal(k.n, 1);
    assert_int_equal(f->ops->member_hide(f->c, dm, f->carol, 1), CD_E_NOT_FOUND);
}

static int on_session(void *ud, const struct store_session *s)
{
    int64_t *v = ud;
    v[v[0] + 1] = s->last_used;
    v[0]++;
    return 0;
}

static int on_session_id(void *ud, const struct store_session *s)
{
    int64_t *v = ud;
    v[v[0] + 1] = s->id;
    v[0]++;
    return 0;
}

/* Opaque session ids: a chosen id is stored as given, a taken one is CD_E_CONFLICT (the caller
 * draws again), and the sessions list is in login order whatever the ids. */
static void session_insert_id_conflicts(void **state)
{
    struct fx *f = *state;
    struct store_refresh rt;
    int64_t big = (INT64_C(1) << 52) + 7, small = INT64_C(1) << 33, v[8] = {0};
    assert_int_equal(f->ops->session_insert_id(f->c, big, f->alice, 100), CD_OK);
    assert_int_equal(f->ops->session_insert_id(f->c, big, f->alice, 101), CD_E_CONFLICT);
    assert_int_equal(f->ops->session_insert_id(f->c, small, f->alice, 200), CD_OK);
    memset(&rt, 0, sizeof(rt));
    rt.user_id = f->alice;
    rt.expires_at = 1000;
    rt.session_id = big;
    rt.created_at = 100;
    rt.hash[0] = 7;
    assert_int_equal(f->ops->refresh_insert(f->c, &rt), CD_OK);
    rt.session_id = small;
    rt.created_at = 200;
    rt.hash[0] = 8;
    assert_int_equal(f->ops->refresh_insert(f->c, &rt), CD_OK);
    assert_int_equal(f->ops->sessions_of_user(f->c, f->alice, 500, on_session_id, v), CD_OK);
    assert_int_equal(v[0], 2);
    assert_true(v[1] == big && v[2] == small); /* the older login first, not the lower id */
    assert_int_equal(f->ops->refresh_by_hash(f->c, rt.hash, &rt), CD_OK);
    assert_true(rt.session_id == small);
}

/* An upload that is some user's current avatar: readable by anyone, never expired; once the
 * avatar changes, neither. */
static void avatar_attachments_readable_and_kept(void **state)
{
    struct fx *f = *state;
    struct store_attachment a = {.size = 5, .created_at = 100};
    struct ids k;
    char avatar[48];
    int ok = -1;

    snprintf(a.id, sizeof(a.id), "%032d", 9);
    a.owner = f->alice;
    snprintf(a.content_type, sizeof(a.content_type), "image/png");
    snprintf(a.name, sizeof(a.name), "me.png");
    snprintf(a.sha256, sizeof(a.sha256), "%064d", 9);
    assert_int_equal(f->ops->attachment_insert(f->c, &a), CD_OK);
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 0);
    snprintf(avatar, sizeof(avatar), "att_%s", a.id);
    assert_int_equal(f->ops->profile_set(f->c, f->alice, NULL, avatar, NULL), CD_OK);
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 1);
    memset(&k, 0, sizeof(k));
    assert_int_equal(f->ops->attachments_expire(f->c, 1000, 10, on_id, &k), CD_OK);
    assert_int_equal(k.n, 0); /* the avatar stays */
    assert_int_equal(f->ops->profile_set(f->c, f->alice, NULL, "", NULL), CD_OK);
    assert_int_equal(f->ops->attachment_readable(f->c, a.id, f->bob, &ok), CD_OK);
    assert_int_equal(ok, 0);
    assert_int_equal(f->ops->attachments_expire(f->c, 1000, 10, on_id, &k), CD_OK);
    assert_int_equal(k.n, 1);
}

static void sessions_and_invites(void **state)
{
    struct fx *f = *state;
    struct store_refresh rt;
    struct store_invite inv, got;
    int64_t s1, s2, v[8] = {0};
    assert_int_equal(f->ops->session_insert(f->c, f->alice, 100, &s1), CD_OK);
    assert_int_equal(f->ops->session_insert(f->c, f->alice, 200, &s2), CD_OK);
    memset(&rt, 0, sizeof(rt));
    rt.session_id = s1;
    rt.user_id = f->alice;
    rt.created_at = 100;
    rt.expires_at = 1000;
    rt.hash[0] = 1;
    assert_int_equal(f->ops->refresh_insert(f->c, &rt), CD_OK);
    rt.created_at = 150; /* a refresh: the newest token is the last use */
    rt.hash[0] = 2;
    assert_int_equal(f->ops->refresh_insert(f->c, &rt), CD_OK);
    rt.session_id = s2;
    rt.created_at = 200;
    rt.expires_at = 300; /* expires before now = 500 */
    rt.hash[0] = 3;
    assert_int_equal(f->ops->refresh_insert(f->c, &rt), CD_OK);
    assert_int_equal(f->ops->sessions_of_user(f->c, f->alice, 500, on_session, v), CD_OK);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 150);
    assert_int_equal(f->ops->session_revoke(f->c, s1, 600), CD_OK);
    v[0] = 0;
    assert_int_equal(f->ops->sessions_of_user(f->c, f->alice, 500, on_session, v), CD_OK);
    assert_int_equal(v[0], 0);

    memset(&inv, 0, sizeof(inv));
    inv.hash[5] = 9;
    inv.room_id = room_new(f, "r", NULL);
    inv.created_by = f->alice;
    inv.created_at = 1;
    inv.expires_at = 2;
    inv.max_uses = 3;
    assert_int_equal(f->ops->invite_insert(f->c, &inv), CD_OK);
    assert_int_equal(f->ops->invite_use(f->c, inv.hash), CD_OK);
    assert_int_equal(f->ops->invite_get(f->c, inv.hash, &got), CD_OK);
    assert_int_equal(got.room_id, inv.room_id);
    assert_int_equal(got.expires_at, 2);
    assert_int_equal(got.max_uses, 3);
    assert_int_equal(got.uses, 1);
    inv.hash[5] = 8;
    assert_int_equal(f->ops->invite_get(f->c, inv.hash, &got), CD_E_NOT_FOUND);
    assert_int_equal(f->ops->invite_use(f->c, inv.hash), CD_E_NOT_FOUND);
}

#define STORE_CASES(setup, teardown)                                                               \
    cmocka_unit_test_setup_teardown(seqs_are_contiguous_per_room, setup, teardown),                \
        cmocka_unit_test_setup_teardown(duplicate_client_id_conflicts_without_consuming_seq,       \
                                        setup, teardown),                                          \
        cmocka_unit_test_setup_teardown(conflict_changes_nothing_even_when_kept, setup, teardown), \
        cmocka_unit_test_setup_teardown(client_id_is_per_room_and_sender, setup, teardown),        \
        cmocka_unit_test_setup_teardown(event_by_client_id_finds_original, setup, teardown),       \
        cmocka_unit_test_setup_teardown(events_page_ranges, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(member_put_inserts_or_updates_role, setup, teardown),      \
        cmocka_unit_test_setup_teardown(member_delete_keeps_count, setup, teardown),               \
        cmocka_unit_test_setup_teardown(members_list_in_user_order, setup, teardown),              \
        cmocka_unit_test_setup_teardown(rooms_of_user_with_membership, setup, teardown),           \
        cmocka_unit_test_setup_teardown(user_room_counts_for_quotas, setup, teardown),             \
        cmocka_unit_test_setup_teardown(users_share_room_checks, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(read_mark_monotonic_and_clamped, setup, teardown),         \
        cmocka_unit_test_setup_teardown(unread_count_counts_others_messages, setup, teardown),     \
        cmocka_unit_test_setup_teardown(dm_key_unique, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(room_get_and_update, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(rooms_ahead_reports_lagging_rooms, setup, teardown),       \
        cmocka_unit_test_setup_teardown(reader_and_reopen_see_log, setup, teardown),               \
        cmocka_unit_test_setup_teardown(bulk_appends_in_one_transaction, setup, teardown),         \
        cmocka_unit_test_setup_teardown(outbox_records_writes_in_order, setup, teardown),          \
        cmocka_unit_test_setup_teardown(outbox_follows_savepoints_and_commits, setup, teardown),   \
        cmocka_unit_test_setup_teardown(consumer_positions_are_monotonic, setup, teardown),        \
        cmocka_unit_test_setup_teardown(apikeys_by_hash_and_revoke, setup, teardown),              \
        cmocka_unit_test_setup_teardown(webhooks_insert_list_delete, setup, teardown),             \
        cmocka_unit_test_setup_teardown(deliveries_lifecycle, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(deliveries_prune_and_notify_windows, setup, teardown),     \
        cmocka_unit_test_setup_teardown(room_mute_per_user, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(user_insert_id_distinguishes_conflicts, setup, teardown),  \
        cmocka_unit_test_setup_teardown(profiles_prefix_and_erase, setup, teardown),               \
        cmocka_unit_test_setup_teardown(pairs_put_list_delete, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(member_access_states_and_blocks, setup, teardown),         \
        cmocka_unit_test_setup_teardown(public_rooms_and_hidden_dms, setup, teardown),             \
        cmocka_unit_test_setup_teardown(sessions_and_invites, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(session_insert_id_conflicts, setup, teardown),             \
        cmocka_unit_test_setup_teardown(avatar_attachments_readable_and_kept, setup, teardown),    \
        cmocka_unit_test_setup_teardown(search_rooms_window_edit_delete, setup, teardown),         \
        cmocka_unit_test_setup_teardown(attachments_refs_readable_expire, setup, teardown),        \
        cmocka_unit_test_setup_teardown(search_indexer_catches_up, setup, teardown),

#endif
