/* blob.h - where attachment bytes live: a small interface with two backends.
 *
 * blob_fs (the default): one file per blob under <data-dir>/blobs, mode 0600, written to a
 * temporary name, fsync'ed and renamed before put_commit returns. blob_s3: an S3-compatible
 * object store over HTTP (libcurl, AWS Signature Version 4 written in blob_sigv4.c); a put is
 * spooled to a temporary file under <data-dir>/blobs-spool while it streams in, then sent in
 * one PUT with its SHA-256 as x-amz-content-sha256.
 *
 * Every function here BLOCKS (disk or network): call them on worker threads only, never on an
 * I/O thread. A blob_store is safe to use from several threads at once; a blob_writer belongs to
 * one caller at a time. Keys are what the caller names them (chatd: 32 lowercase hex digits);
 * the backends accept only [0-9a-z], 1-64 characters (CD_E_INVALID_FIELD otherwise).
 *
 * Errors: CD_E_NOT_FOUND (no such blob), CD_E_IO (disk or network failure, logged),
 * CD_E_UNAVAILABLE (the object store answered 5xx or could not be reached, logged),
 * CD_E_INVALID_FIELD (a bad key or URL).
 */
#ifndef CD_BLOB_H
#define CD_BLOB_H

#include <stddef.h>
#include <stdint.h>

struct blob_store;
struct blob_writer;

struct blob_ops {
    const char *name;
    /* Start a blob under key. *out is owned by the caller until put_commit or put_abort. */
    int (*put_begin)(struct blob_store *bs, const char *key, struct blob_writer **out);
    int (*put_write)(struct blob_writer *w, const void *p, size_t n);
    /* Make the blob durable and visible under its key (size bytes, SHA-256 sha256_hex), then
     * free w whatever the outcome. */
    int (*put_commit)(struct blob_writer *w, uint64_t size, const char *sha256_hex);
    /* Drop a blob being written; frees w. */
    void (*put_abort)(struct blob_writer *w);
    /* Read up to n bytes at offset off into buf; *got gets the count (less than n only at the
     * end of the blob). */
    int (*get)(struct blob_store *bs, const char *key, uint64_t off, void *buf, size_t n,
               size_t *got);
    /* Delete a blob; deleting one that does not exist is CD_OK. */
    int (*del)(struct blob_store *bs, const char *key);
    void (*close)(struct blob_store *bs);
};

struct blob_store {
    const struct blob_ops *ops;
};

/* S3 settings besides the URL (flags; NULL or "" = from the environment AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY). */
struct blob_s3_creds {
    const char *access_key, *secret_key;
};

/* Open the store named by url: "" or "fs" = files under data_dir/blobs; "s3://bucket?endpoint=
 * http://host:port&region=us-east-1" = an S3-compatible server (path-style requests). Blocks
 * (creates directories). Returns CD_OK, or CD_E_INVALID_FIELD / CD_E_IO after logging why. */
int blob_open(const char *url, const char *data_dir, const struct blob_s3_creds *creds,
              struct blob_store **out);

int blob_fs_open(const char *dir, struct blob_store **out);
int blob_s3_open(const char *url, const char *spool_dir, const struct blob_s3_creds *creds,
                 struct blob_store **out);

/* 1 when key is a valid blob key ([0-9a-z], 1-64 characters). */
int blob_key_valid(const char *key);

#endif
