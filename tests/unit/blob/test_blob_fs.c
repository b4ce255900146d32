/* The filesystem blob store: put (streamed in pieces), get with offsets, a torn put never
 * visible, delete, key validation, file mode 0600. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "blob/blob.h"
#include "util/status.h"

struct fx {
    char dir[64];
    struct blob_store *bs;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/chatd-blob-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (blob_open("", f->dir, NULL, &f->bs) != CD_OK) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    f->bs->ops->close(f->bs);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static void put_get_delete(void **state)
{
    struct fx *f = *state;
    const struct blob_ops *o = f->bs->ops;
    struct blob_writer *w;
    char buf[64], path[128];
    size_t got = 0;
    struct stat sb;

    assert_int_equal(o->put_begin(f->bs, "abc123", &w), CD_OK);
    assert_int_equal(o->put_write(w, "hello ", 6), CD_OK);
    /* not visible before the commit */
    assert_int_equal(o->get(f->bs, "abc123", 0, buf, sizeof(buf), &got), CD_E_NOT_FOUND);
    assert_int_equal(o->put_write(w, "world", 5), CD_OK);
    assert_int_equal(o->put_commit(w, 11, "x"), CD_OK);
    assert_int_equal(o->get(f->bs, "abc123", 0, buf, sizeof(buf), &got), CD_OK);
    assert_int_equal(got, 11);
    assert_memory_equal(buf, "hello world", 11);
    assert_int_equal(o->get(f->bs, "abc123", 6, buf, 3, &got), CD_OK);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "wor", 3);
    assert_int_equal(o->get(f->bs, "abc123", 20, buf, 3, &got), CD_OK);
    assert_int_equal(got, 0);
    snprintf(path, sizeof(path), "%s/blobs/abc123", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(o->del(f->bs, "abc123"), CD_OK);
    assert_int_equal(o->del(f->bs, "abc123"), CD_OK); /* already gone: fine */
    assert_int_equal(o->get(f->bs, "abc123", 0, buf, sizeof(buf), &got), CD_E_NOT_FOUND);
}

static void abort_leaves_nothing(void **state)
{
    struct fx *f = *state;
    const struct blob_ops *o = f->bs->ops;
    struct blob_writer *w;
    char path[128], buf[4];
    size_t got;
    struct stat sb;

    assert_int_equal(o->put_begin(f->bs, "k1", &w), CD_OK);
    assert_int_equal(o->put_write(w, "part", 4), CD_OK);
    o->put_abort(w);
    snprintf(path, sizeof(path), "%s/blobs/k1.part", f->dir);
    assert_int_not_equal(stat(path, &sb), 0);
    assert_int_equal(o->get(f->bs, "k1", 0, buf, sizeof(buf), &got), CD_E_NOT_FOUND);
}

static void keys_are_validated(void **state)
{
    struct fx *f = *state;
    const struct blob_ops *o = f->bs->ops;
    struct blob_writer *w;
    char buf[4];
    size_t got;
    assert_int_equal(o->put_begin(f->bs, "../x", &w), CD_E_INVALID_FIELD);
    assert_int_equal(o->put_begin(f->bs, "", &w), CD_E_INVALID_FIELD);
    assert_int_equal(o->put_begin(f->bs, "ABC", &w), CD_E_INVALID_FIELD);
    assert_int_equal(o->get(f->bs, "a/b", 0, buf, 4, &got), CD_E_INVALID_FIELD);
    assert_int_equal(o->del(f->bs, "a.b"), CD_E_INVALID_FIELD);
    assert_true(blob_key_valid("0123456789abcdef0123456789abcdef"));
    assert_false(
        blob_key_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"));
}

static void bad_urls_are_refused(void **state)
{
    struct blob_store *bs;
    struct blob_s3_creds creds = {"ak", "sk"};
    (void)state;
    assert_int_equal(blob_open("ftp://x", "/tmp", NULL, &bs), CD_E_INVALID_FIELD);
    assert_int_equal(blob_open("s3://UPPER?endpoint=http://127.0.0.1:1", "/tmp", &creds, &bs),
                     CD_E_INVALID_FIELD);
    assert_int_equal(blob_open("s3://bucket?endpoint=file:///etc", "/tmp", &creds, &bs),
                     CD_E_INVALID_FIELD);
    assert_int_equal(blob_open("s3://bucket?endpoint=http://h:1/path", "/tmp", &creds, &bs),
                     CD_E_INVALID_FIELD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_are_validated, setup, teardown),
        cmocka_unit_test(bad_urls_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
