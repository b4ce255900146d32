/* Sessions on a real SQLite store: refresh rotation, reuse detection revokes the family,
 * expiry, logout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/session.h"
#include "util/status.h"

struct fx {
    char dir[64];
    struct store *st;
    struct store_conn *c;
    const struct store_ops *ops;
    int64_t user;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct store_config cfg = {0};
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-session-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    cfg.dir = f->dir;
    cfg.sync_mode = "normal";
    f->ops = &store_sqlite_ops;
    auth_init();
    if (f->ops->open(&cfg, &f->st) != CD_OK) return -1;
    if (f->ops->conn_open(f->st, 1, &f->c) != CD_OK) return -1;
    if (f->ops->user_insert(f->c, "alice", "hash", 1, &f->user) != CD_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    f->ops->conn_close(f->c);
    f->ops->close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static void hash_of(const char *tok, uint8_t h[32])
{
    auth_refresh_hash(tok, strlen(tok), h);
}

static void rotation_issues_new_token_and_spends_old(void **state)
{
    struct fx *f = *state;
    char t1[AUTH_REFRESH_LEN + 1], t2[AUTH_REFRESH_LEN + 1], t3[AUTH_REFRESH_LEN + 1];
    uint8_t h[32];
    int64_t sid, uid = 0, sid2 = 0;

    assert_int_equal(session_start(f->ops, f->c, f->user, 1000, 60000, t1, &sid), CD_OK);
    assert_int_equal(strlen(t1), AUTH_REFRESH_LEN);
    hash_of(t1, h);
    assert_int_equal(session_rotate(f->ops, f->c, h, 2000, 60000, t2, &uid, &sid2), CD_OK);
    assert_int_equal(uid, f->user);
    assert_int_equal(sid2, sid);
    assert_string_not_equal(t1, t2);
    hash_of(t2, h);
    assert_int_equal(session_rotate(f->ops, f->c, h, 3000, 60000, t3, &uid, &sid2), CD_OK);
}

static void reuse_revokes_whole_family(void **state)
{
    struct fx *f = *state;
    char t1[AUTH_REFRESH_LEN + 1], t2[AUTH_REFRESH_LEN + 1], t3[AUTH_REFRESH_LEN + 1];
    char other[AUTH_REFRESH_LEN + 1];
    uint8_t h1[32], h2[32], ho[32];
    int64_t sid, sid_other, uid, s;

    assert_int_equal(session_start(f->ops, f->c, f->user, 1000, 60000, t1, &sid), CD_OK);
    assert_int_equal(session_start(f->ops, f->c, f->user, 1000, 60000, other, &sid_other), CD_OK);
    hash_of(t1, h1);
    assert_int_equal(session_rotate(f->ops, f->c, h1, 2000, 60000, t2, &uid, &s), CD_OK);
    /* the thief (or the victim) presents the spent token: refused and the family is revoked,
     * named so that its access tokens can be ended too */
    uid = s = 0;
    assert_int_equal(session_rotate(f->ops, f->c, h1, 3000, 60000, t3, &uid, &s),
                     CD_E_INVALID_REFRESH);
    assert_int_equal(s, sid);
    assert_int_equal(uid, f->user);
    hash_of(t2, h2);
    assert_int_equal(session_rotate(f->ops, f->c, h2, 4000, 60000, t3, &uid, &s),
                     CD_E_INVALID_REFRESH);
    /* another session of the same user is untouched */
    hash_of(other, ho);
    assert_int_equal(session_rotate(f->ops, f->c, ho, 4000, 60000, t3, &uid, &s), CD_OK);
}

static void unknown_and_expired_refused(void **state)
{
    struct fx *f = *state;
    char t1[AUTH_REFRESH_LEN + 1], t2[AUTH_REFRESH_LEN + 1];
    uint8_t h[32];
    int64_t sid, uid, s;

    hash_of("not-a-token-we-issued", h);
    assert_int_equal(session_rotate(f->ops, f->c, h, 1000, 60000, t2, &uid, &s),
                     CD_E_INVALID_REFRESH);
    assert_int_equal(session_start(f->ops, f->c, f->user, 1000, 500, t1, &sid), CD_OK);
    hash_of(t1, h);
    assert_int_equal(session_rotate(f->ops, f->c, h, 1500, 60000, t2, &uid, &s),
                     CD_E_INVALID_REFRESH);
}

static void logout_revokes(void **state)
{
    struct fx *f = *state;
    char t1[AUTH_REFRESH_LEN + 1], t2[AUTH_REFRESH_LEN + 1];
    uint8_t h[32];
    int64_t sid, uid, s;

    assert_int_equal(session_start(f->ops, f->c, f->user, 1000, 60000, t1, &sid), CD_OK);
    hash_of(t1, h);
    assert_int_equal(session_end(f->ops, f->c, h, 2000, &uid, &s), CD_OK);
    assert_int_equal(s, sid);
    assert_int_equal(uid, f->user);
    assert_int_equal(session_rotate(f->ops, f->c, h, 3000, 60000, t2, &uid, &s),
                     CD_E_INVALID_REFRESH);
    hash_of("unknown", h);
    assert_int_equal(session_end(f->ops, f->c, h, 2000, &uid, &s), CD_E_INVALID_REFRESH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rotation_issues_new_token_and_spends_old, setup, teardown),
        cmocka_unit_test_setup_teardown(reuse_revokes_whole_family, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_and_expired_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(logout_revokes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
