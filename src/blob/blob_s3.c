/* blob_s3.c - blobs as objects of one bucket of an S3-compatible server, over libcurl, with
 * requests signed by AWS Signature Version 4 (blob_sigv4.c). Path-style URLs
 * (<endpoint>/<bucket>/<key>), so any host name works (a local server, MinIO, AWS).
 *
 * A put is spooled to <spool>/<key>.part while the upload streams in (the object's length and
 * SHA-256, which SigV4 signs, are known only at the end), then sent in one PUT with
 * x-amz-content-sha256 = the content's SHA-256, so the server checks the bytes it stored. A get
 * is one GET with a Range header. Each call uses its own curl handle (no shared state between
 * threads besides curl_global_init, done once at open). Timeouts: 10 s to connect, 300 s per
 * request. */
#include <curl/curl.h>
#include <sodium.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blob/blob.h"
#include "blob/blob_sigv4.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

struct s3_store {
    struct blob_store base; /* first */
    char *endpoint;         /* scheme://host[:port], no trailing '/' */
    char *host;             /* host[:port], the signed Host header */
    char *bucket, *region;
    char *access_key, *secret_key;
    char *spool;
};

struct blob_writer {
    struct s3_store *st;
    char key[65];
    char part[4200];
    FILE *f;
};

static int s3_fail(const char *op, const char *key, const char *why)
{
    log_error("blob_s3 error", "\"op\":\"%s\",\"key\":\"%s\",\"error\":\"%s\"", op, key, why);
    return CD_E_IO;
}

/* One signed request. body: a file to PUT (size bytes, sha256 its hex digest) or NULL. Range
 * (off, n) for a GET when n > 0. A 2xx response body goes to out (at most out_cap bytes); an
 * error body (XML) is kept in err for the log. */
struct s3_call {
    const char *method, *key;
    FILE *body;
    uint64_t size;
    const char *sha256;
    uint64_t range_off;
    size_t range_n;
    char *out;
    size_t out_cap, out_len;
    char err[256];
    size_t err_len;
    long status;
    CURL *curl;
};

static size_t on_data(char *p, size_t sz, size_t nm, void *ud)
{
    struct s3_call *k = ud;
    size_t n = sz * nm;
    long code = 0;
    curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) {
        size_t room = k->out ? k->out_cap - k->out_len : 0, take = n < room ? n : room;
        if (take) memcpy(k->out + k->out_len, p, take);
        k->out_len += take;
    } else {
        size_t room = sizeof(k->err) - 1 - k->err_len, take = n < room ? n : room;
        for (size_t i = 0; i < take; i++) /* for a JSON log line: printable ASCII, no quotes */
            k->err[k->err_len + i] =
                p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\' ? p[i] : ' ';
        k->err_len += take;
        k->err[k->err_len] = '\0';
    }
    return n;
}

static int s3_do(struct s3_store *st, struct s3_call *k)
{
    char url[1024], path[512], date[20], auth[512], hdr[4][600];
    struct sigv4_header sh[3];
    struct sigv4_req sr;
    struct curl_slist *hl = NULL;
    struct tm tm;
    time_t now = time(NULL);
    CURLcode cc;
    int rc;

    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(path, sizeof(path), "/%s/%s", st->bucket, k->key);
    snprintf(url, sizeof(url), "%s%s", st->endpoint, path);
    sh[0] = (struct sigv4_header){"host", st->host};
    sh[1] =
        (struct sigv4_header){"x-amz-content-sha256", k->sha256 ? k->sha256 : SIGV4_EMPTY_SHA256};
    sh[2] = (struct sigv4_header){"x-amz-date", date};
    sr = (struct sigv4_req){.method = k->method,
                            .path = path,
                            .query = "",
                            .headers = sh,
                            .nheaders = 3,
                            .payload_sha256 = sh[1].value,
                            .amz_date = date,
                            .region = st->region,
                            .service = "s3",
                            .access_key = st->access_key,
                            .secret_key = st->secret_key};
    if (sigv4_authorization(&sr, auth, sizeof(auth)) != 0)
        return s3_fail(k->method, k->key, "sign");
    snprintf(hdr[0], sizeof(hdr[0]), "Authorization: %s", auth);
    snprintf(hdr[1], sizeof(hdr[1]), "x-amz-content-sha256: %s", sh[1].value);
    snprintf(hdr[2], sizeof(hdr[2]), "x-amz-date: %s", date);
    hl = curl_slist_append(hl, hdr[0]);
    hl = curl_slist_append(hl, hdr[1]);
    hl = curl_slist_append(hl, hdr[2]);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    if (k->range_n) {
        snprintf(hdr[3], sizeof(hdr[3]), "Range: bytes=%llu-%llu", (unsigned long long)k->range_off,
                 (unsigned long long)(k->range_off + k->range_n - 1));
        hl = curl_slist_append(hl, hdr[3]);
    }
    if (!(k->curl = curl_easy_init())) {
        curl_slist_free_all(hl);
        return s3_fail(k->method, k->key, "curl_easy_init");
    }
    curl_easy_setopt(k->curl, CURLOPT_URL, url);
    curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(k->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(k->curl, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(k->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(k->curl, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(k->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!strcmp(k->method, "PUT")) {
        curl_easy_setopt(k->curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(k->curl, CURLOPT_READDATA, k->body);
        curl_easy_setopt(k->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)k->size);
    } else if (strcmp(k->method, "GET")) {
        curl_easy_setopt(k->curl, CURLOPT_CUSTOMREQUEST, k->method);
    }
    cc = curl_easy_perform(k->curl);
    curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &k->status);
    curl_easy_cleanup(k->curl);
    curl_slist_free_all(hl);
    if (cc != CURLE_OK) {
        log_error("blob_s3 error", "\"op\":\"%s\",\"key\":\"%s\",\"error\":\"%s\"", k->method,
                  k->key, curl_easy_strerror(cc));
        return CD_E_UNAVAILABLE;
    }
    if (k->status >= 200 && k->status < 300) return CD_OK;
    if (k->status == 404) return CD_E_NOT_FOUND;
    rc = k->status >= 500 ? CD_E_UNAVAILABLE : CD_E_IO;
    log_error("blob_s3 error", "\"op\":\"%s\",\"key\":\"%s\",\"status\":%ld,\"body\":\"%s\"",
              k->method, k->key, k->status, k->err);
    return rc;
}

static int s3_put_begin(struct blob_store *bs, const char *key, struct blob_writer **out)
{
    struct s3_store *st = (struct s3_store *)bs;
    struct blob_writer *w;
    int fd;
    if (!blob_key_valid(key)) return CD_E_INVALID_FIELD;
    w = xcalloc(1, sizeof(*w));
    w->st = st;
    snprintf(w->key, sizeof(w->key), "%s", key);
    snprintf(w->part, sizeof(w->part), "%s/%s.part", st->spool, key);
    fd = open(w->part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || !(w->f = fdopen(fd, "w+"))) {
        int rc = s3_fail("spool", key, strerror(errno));
        if (fd >= 0) close(fd);
        free(w);
        return rc;
    }
    *out = w;
    return CD_OK;
}

static int s3_put_write(struct blob_writer *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n) return s3_fail("spool write", w->key, strerror(errno));
    return CD_OK;
}

static void s3_put_abort(struct blob_writer *w)
{
    if (w->f) fclose(w->f);
    unlink(w->part);
    free(w);
}

static int s3_put_commit(struct blob_writer *w, uint64_t size, const char *sha256_hex)
{
    struct s3_call k = {.method = "PUT", .key = w->key, .size = size, .sha256 = sha256_hex};
    int rc = CD_OK;
    if (fflush(w->f) != 0 || fseek(w->f, 0, SEEK_SET) != 0)
        rc = s3_fail("spool flush", w->key, strerror(errno));
    k.body = w->f;
    if (rc == CD_OK) rc = s3_do(w->st, &k);
    s3_put_abort(w); /* the spool file goes either way */
    return rc;
}

static int s3_get(struct blob_store *bs, const char *key, uint64_t off, void *buf, size_t n,
                  size_t *got)
{
    struct s3_call k = {
        .method = "GET", .key = key, .range_off = off, .range_n = n, .out = buf, .out_cap = n};
    int rc;
    *got = 0;
    if (!blob_key_valid(key)) return CD_E_INVALID_FIELD;
    if (n == 0) return CD_OK;
    rc = s3_do((struct s3_store *)bs, &k);
    if (rc == CD_E_IO && k.status == 416) return CD_OK; /* at or past the end: nothing */
    if (rc == CD_OK && k.status == 200 && off > 0) return s3_fail("get", key, "range ignored");
    *got = k.out_len;
    return rc;
}

static int s3_del(struct blob_store *bs, const char *key)
{
    struct s3_call k = {.method = "DELETE", .key = key};
    int rc;
    if (!blob_key_valid(key)) return CD_E_INVALID_FIELD;
    rc = s3_do((struct s3_store *)bs, &k);
    return rc == CD_E_NOT_FOUND ? CD_OK : rc;
}

static void s3_close(struct blob_store *bs)
{
    struct s3_store *st = (struct s3_store *)bs;
    free(st->endpoint);
    free(st->host);
    free(st->bucket);
    free(st->region);
    if (st->secret_key) sodium_memzero(st->secret_key, strlen(st->secret_key));
    free(st->access_key);
    free(st->secret_key);
    free(st->spool);
    free(st);
}

static const struct blob_ops s3_ops = {
    .name = "s3",
    .put_begin = s3_put_begin,
    .put_write = s3_put_write,
    .put_commit = s3_put_commit,
    .put_abort = s3_put_abort,
    .get = s3_get,
    .del = s3_del,
    .close = s3_close,
};

/* The value of name in a query string "a=b&c=d" (no decoding: URLs here have none), or NULL. */
static char *query_get(const char *q, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (!strncmp(p, name, n) && p[n] == '=') {
            const char *v = p + n + 1, *e = strchr(v, '&');
            return xstrndup(v, e ? (size_t)(e - v) : strlen(v));
        }
    }
    return NULL;
}

static int bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
              b[i] == '.'))
            return 0;
    return 1;
}

int blob_s3_open(const char *url, const char *spool_dir, const struct blob_s3_creds *creds,
                 struct blob_store **out)
{
    static int curl_ready;
    const char *b = url + 5, *q = strchr(b, '?');
    const char *ak = creds && creds->access_key && *creds->access_key ? creds->access_key
                                                                      : getenv("AWS_ACCESS_KEY_ID");
    const char *sk = creds && creds->secret_key && *creds->secret_key
                         ? creds->secret_key
                         : getenv("AWS_SECRET_ACCESS_KEY");
    struct s3_store *st = xcalloc(1, sizeof(*st));
    const char *hp;

    st->base.ops = &s3_ops;
    st->bucket = xstrndup(b, q ? (size_t)(q - b) : strlen(b));
    st->region = q ? query_get(q + 1, "region") : NULL;
    if (!st->region) st->region = xstrndup("us-east-1", 9);
    st->endpoint = q ? query_get(q + 1, "endpoint") : NULL;
    if (!st->endpoint) {
        char def[128];
        snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com", st->region);
        st->endpoint = xstrndup(def, strlen(def));
    }
    while (*st->endpoint && st->endpoint[strlen(st->endpoint) - 1] == '/')
        st->endpoint[strlen(st->endpoint) - 1] = '\0';
    hp = strstr(st->endpoint, "://");
    if (!bucket_valid(st->bucket) || !hp || hp[3] == '\0' || strchr(hp + 3, '/') ||
        (strncmp(st->endpoint, "http://", 7) && strncmp(st->endpoint, "https://", 8))) {
        log_error("blob url", "\"error\":\"%s\"",
                  "expected s3://bucket?endpoint=http(s)://host[:port]&region=...");
        s3_close(&st->base);
        return CD_E_INVALID_FIELD;
    }
    st->host = xstrndup(hp + 3, strlen(hp + 3));
    if (!ak || !*ak || !sk || !*sk) {
        log_error("blob url", "\"error\":\"%s\"",
                  "S3 needs credentials: --blob-access-key/--blob-secret-key or "
                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
        s3_close(&st->base);
        return CD_E_INVALID_FIELD;
    }
    st->access_key = xstrndup(ak, strlen(ak));
    st->secret_key = xstrndup(sk, strlen(sk));
    st->spool = xstrndup(spool_dir, strlen(spool_dir));
    if (mkdir(spool_dir, 0700) != 0 && errno != EEXIST) {
        int rc = s3_fail("mkdir", spool_dir, strerror(errno));
        s3_close(&st->base);
        return rc;
    }
    if (!curl_ready) { /* before any thread uses curl (blob_open runs at start, single-threaded) */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    log_info("blob store", "\"kind\":\"s3\",\"endpoint\":\"%s\",\"bucket\":\"%s\"", st->endpoint,
             st->bucket);
    *out = &st->base;
    return CD_OK;
}
