/* blob_sigv4.h - AWS Signature Version 4 (the Authorization header of an S3 request).
 * Pure functions (libsodium's SHA-256 and HMAC-SHA-256); any thread. */
#ifndef CD_BLOB_SIGV4_H
#define CD_BLOB_SIGV4_H

#include <stddef.h>

struct sigv4_header {
    const char *name;  /* lowercase */
    const char *value; /* trimmed, as sent */
};

struct sigv4_req {
    const char *method;
    const char *path;                   /* canonical URI: already URI-encoded, starting with '/' */
    const char *query;                  /* canonical query string (sorted, encoded) or "" */
    const struct sigv4_header *headers; /* the signed headers, sorted by name (host included) */
    int nheaders;
    const char *payload_sha256; /* hex SHA-256 of the body (x-amz-content-sha256) */
    const char *amz_date;       /* YYYYMMDDTHHMMSSZ (x-amz-date) */
    const char *region, *service, *access_key, *secret_key;
};

#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* The Authorization header's value ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=...") into out. Returns 0, or -1 when it does not fit in cap. */
int sigv4_authorization(const struct sigv4_req *r, char *out, size_t cap);

#endif
