/* The WAL write-gathering VFS under the SQLite backend: every commit is in the WAL file when
 * COMMIT returns (another connection reads it at once; a process that dies right after its
 * commits, without closing anything, loses none of them), whatever the size of the pages and
 * transactions, and a transaction larger than the gathering buffer stays intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"
#include "util/status.h"

struct fx {
    char dir[64];
    struct store *st;
    struct store_conn *w, *r;
    const struct store_ops *ops;
    int64_t user, room;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct store_config cfg = {0};
    struct store_room room;
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-walbuf-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    cfg.dir = f->dir;
    cfg.sync_mode = "normal";
    f->ops = &store_sqlite_ops;
    if (f->ops->open(&cfg, &f->st) != CD_OK) return -1;
    if (f->ops->conn_open(f->st, 1, &f->w) != CD_OK) return -1;
    if (f->ops->conn_open(f->st, 0, &f->r) != CD_OK) return -1;
    if (f->ops->user_insert(f->w, "w", "h", 1, &f->user) != CD_OK) return -1;
    memset(&room, 0, sizeof(room));
    room.kind = ROOM_GROUP;
    snprintf(room.name, sizeof(room.name), "r");
    room.created_by = f->user;
    if (f->ops->room_insert(f->w, &room, NULL) != CD_OK) return -1;
    f->room = room.id;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    f->ops->conn_close(f->r);
    f->ops->conn_close(f->w);
    f->ops->close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static int append(struct fx *f, struct store_conn *c, const char *body, size_t len)
{
    struct store_event ev = {
        .room_id = f->room, .kind = EV_MESSAGE, .sender = f->user, .body = body, .body_len = len};
    return f->ops->event_append(c, &ev);
}

struct last {
    int64_t seq;
    size_t len;
    char first;
};

static int on_event(void *ud, const struct store_event *ev)
{
    struct last *l = ud;
    l->seq = ev->seq;
    l->len = ev->body_len;
    l->first = ev->body_len ? ev->body[0] : 0;
    return 0;
}

static struct last newest(struct fx *f, struct store_conn *c)
{
    struct last l = {0};
    assert_int_equal(f->ops->events_page(c, f->room, 0, 0, 1, 1, on_event, &l), CD_OK);
    return l;
}

/* 300 commits of 1 to 40 messages with bodies from 1 byte to 60 KB (pages overflow, and some
 * transactions exceed the 127 KiB buffer): after each COMMIT the read-only connection sees it. */
static void every_commit_is_visible_at_once(void **state)
{
    struct fx *f = *state;
    char *body = malloc(60000);
    int64_t seq = 0;
    for (int i = 0; i < 300; i++) {
        int n = 1 + (i * 7) % 40;
        size_t len = i % 10 == 9 ? 60000 : (size_t)(1 + (i * 131) % 3000);
        memset(body, 'a' + i % 26, len);
        assert_int_equal(f->ops->begin(f->w), CD_OK);
        for (int k = 0; k < n; k++)
            assert_int_equal(append(f, f->w, body, len), CD_OK);
        assert_int_equal(f->ops->commit(f->w), CD_OK);
        seq += n;
        struct last l = newest(f, f->r);
        if (l.seq != seq || l.len != len || l.first != 'a' + i % 26)
            fail_msg("commit %d: reader saw seq %lld len %zu, want %lld len %zu", i,
                     (long long)l.seq, l.len, (long long)seq, len);
    }
    free(body);
}

/* A child process commits and dies with _exit (no close, no checkpoint, buffers abandoned): the
 * parent, opening the database afresh, finds every commit. */
static void commits_survive_an_abrupt_exit(void **state)
{
    struct fx *f = *state;
    struct store_config cfg = {.dir = f->dir, .sync_mode = "normal"};
    struct store *st2;
    struct store_conn *c;
    int status;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *st;
        struct store_conn *w;
        char body[500];
        memset(body, 'z', sizeof(body));
        if (f->ops->open(&cfg, &st) != CD_OK || f->ops->conn_open(st, 1, &w) != CD_OK) _exit(2);
        for (int i = 0; i < 200; i++) {
            if (f->ops->begin(w) != CD_OK) _exit(3);
            for (int k = 0; k < 5; k++)
                if (append(f, w, body, sizeof(body)) != CD_OK) _exit(4);
            if (f->ops->commit(w) != CD_OK) _exit(5);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(f->ops->open(&cfg, &st2), CD_OK);
    assert_int_equal(f->ops->conn_open(st2, 0, &c), CD_OK);
    struct last l = newest(f, c);
    assert_int_equal(l.seq, 1000);
    assert_int_equal(l.len, 500);
    f->ops->conn_close(c);
    f->ops->close(st2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_commit_is_visible_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(commits_survive_an_abrupt_exit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
