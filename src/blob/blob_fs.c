/* blob_fs.c - blobs as files under one directory: <dir>/<key>, mode 0600. A put writes
 * <dir>/<key>.part (O_EXCL), fsyncs it, renames it over the key and fsyncs the directory, so a
 * committed blob survives a crash and a torn one is never visible under its key. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob/blob.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

struct fs_store {
    struct blob_store base; /* first */
    char *dir;
};

struct blob_writer {
    struct fs_store *st;
    int fd;
    char path[4200], part[4200];
};

static int fs_err(const char *what, const char *path)
{
    log_error("blob_fs error", "\"op\":\"%s\",\"path\":\"%s\",\"error\":\"%s\"", what, path,
              strerror(errno));
    return CD_E_IO;
}

static int fs_put_begin(struct blob_store *bs, const char *key, struct blob_writer **out)
{
    struct fs_store *st = (struct fs_store *)bs;
    struct blob_writer *w;
    if (!blob_key_valid(key)) return CD_E_INVALID_FIELD;
    w = xcalloc(1, sizeof(*w));
    w->st = st;
    snprintf(w->path, sizeof(w->path), "%s/%s", st->dir, key);
    snprintf(w->part, sizeof(w->part), "%s/%s.part", st->dir, key);
    w->fd = open(w->part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        int rc = fs_err("open", w->part);
        free(w);
        return rc;
    }
    *out = w;
    return CD_OK;
}

static int fs_put_write(struct blob_writer *w, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t k = write(w->fd, b, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return fs_err("write", w->part);
        }
        b += k;
        n -= (size_t)k;
    }
    return CD_OK;
}

static void fs_put_abort(struct blob_writer *w)
{
    if (w->fd >= 0) close(w->fd);
    unlink(w->part);
    free(w);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = CD_OK;
    if (fd < 0) return fs_err("open dir", dir);
    if (fsync(fd) != 0) rc = fs_err("fsync dir", dir);
    close(fd);
    return rc;
}

static int fs_put_commit(struct blob_writer *w, uint64_t size, const char *sha256_hex)
{
    int rc = CD_OK;
    (void)size;
    (void)sha256_hex;
    if (fsync(w->fd) != 0) rc = fs_err("fsync", w->part);
    if (close(w->fd) != 0 && rc == CD_OK) rc = fs_err("close", w->part);
    w->fd = -1;
    if (rc == CD_OK && rename(w->part, w->path) != 0) rc = fs_err("rename", w->path);
    if (rc == CD_OK) rc = fsync_dir(w->st->dir);
    if (rc != CD_OK) unlink(w->part);
    free(w);
    return rc;
}

static int fs_get(struct blob_store *bs, const char *key, uint64_t off, void *buf, size_t n,
                  size_t *got)
{
    struct fs_store *st = (struct fs_store *)bs;
    char path[4200];
    size_t have = 0;
    int fd;

    *got = 0;
    if (!blob_key_valid(key)) return CD_E_INVALID_FIELD;
    snprintf(path, sizeof(path), "%s/%s", st->dir, key);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? CD_E_NOT_FOUND : fs_err("open", path);
    while (have < n) {
        ssize_t k = pread(fd, (char *)buf + have, n - have, (off_t)(off + have));
        if (k < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return fs_err("read", path);
        }
        if (k == 0) break;
        have += (size_t)k;
    }
    close(fd);
    *got = have;
    return CD_OK;
}

static int fs_del(struct blob_store *bs, const char *key)
{
    struct fs_store *st = (struct fs_store *)bs;
    char path[4200];
    if (!blob_key_valid(key)) return CD_E_INVALID_FIELD;
    snprintf(path, sizeof(path), "%s/%s", st->dir, key);
    if (unlink(path) != 0 && errno != ENOENT) return fs_err("unlink", path);
    return CD_OK;
}

static void fs_close(struct blob_store *bs)
{
    struct fs_store *st = (struct fs_store *)bs;
    free(st->dir);
    free(st);
}

static const struct blob_ops fs_ops = {
    .name = "fs",
    .put_begin = fs_put_begin,
    .put_write = fs_put_write,
    .put_commit = fs_put_commit,
    .put_abort = fs_put_abort,
    .get = fs_get,
    .del = fs_del,
    .close = fs_close,
};

int blob_fs_open(const char *dir, struct blob_store **out)
{
    struct fs_store *st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return fs_err("mkdir", dir);
    st = xcalloc(1, sizeof(*st));
    st->base.ops = &fs_ops;
    st->dir = xstrndup(dir, strlen(dir));
    *out = &st->base;
    return CD_OK;
}
