/* web.c - static files of the web client (see web.h). */
#include <dirent.h>
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/web.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".woff2", "font/woff2"},
};

const char *web_content_type(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && !strcmp(name + n - e, types[i].ext)) return types[i].type;
    }
    return NULL;
}

/* FNV-1a, 64 bits: a strong enough validator for a fixed set of files. */
static void etag_of(struct web_file *f)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < f->len; i++) {
        h ^= f->data[i];
        h *= 1099511628211ULL;
    }
    snprintf(f->etag, sizeof(f->etag), "\"%016llx\"", (unsigned long long)h);
}

static int add_file(struct web *w, const char *path, const unsigned char *data, size_t len,
                    int owned)
{
    const char *type = web_content_type(path);
    struct web_file *f;
    if (!type) return 0;
    if (w->n >= WEB_MAX_FILES) return -1;
    w->files = xrealloc(w->files, (w->n + 1) * sizeof(*w->files));
    f = &w->files[w->n++];
    f->path = xstrndup(path, strlen(path));
    f->type = type;
    f->data = data;
    f->len = len;
    f->owned = owned;
    etag_of(f);
    return 1;
}

struct walk {
    struct web *w;
    size_t bytes;
};

/* Read the regular files under dir/rel, recursively (symbolic links are followed: the
 * directory is the operator's). */
static int walk_dir(struct walk *wk, const char *root, const char *rel, int depth)
{
    char dpath[4096];
    DIR *d;
    struct dirent *e;
    int rc = CD_OK;

    if (depth > WEB_MAX_DEPTH) return CD_OK;
    snprintf(dpath, sizeof(dpath), "%s%s", root, rel);
    if (!(d = opendir(dpath))) {
        log_error("cannot read --web-dir", "\"dir\":\"%s\",\"error\":\"%s\"", dpath,
                  strerror(errno));
        return CD_E_IO;
    }
    while (rc == CD_OK && (e = readdir(d))) {
        char fpath[4096], urlpath[4096];
        struct stat st;
        if (e->d_name[0] == '.') continue; /* ., .., dot-files */
        int ul = snprintf(urlpath, sizeof(urlpath), "%s/%s", rel, e->d_name);
        int fl = snprintf(fpath, sizeof(fpath), "%s%s", root, urlpath);
        if (ul < 0 || (size_t)ul >= sizeof(urlpath) || fl < 0 || (size_t)fl >= sizeof(fpath))
            continue; /* a path too long to serve */
        if (stat(fpath, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(wk, root, urlpath, depth + 1);
        } else if (S_ISREG(st.st_mode) && web_content_type(e->d_name)) {
            unsigned char *data;
            FILE *f;
            size_t got;
            if (wk->bytes + (size_t)st.st_size > WEB_MAX_BYTES) {
                log_error("--web-dir holds too much", "\"max_bytes\":%d", WEB_MAX_BYTES);
                rc = CD_E_TOO_LARGE;
                break;
            }
            data = xmalloc((size_t)st.st_size + 1);
            f = fopen(fpath, "rb");
            got = f ? fread(data, 1, (size_t)st.st_size, f) : 0;
            if (f) fclose(f);
            if (!f || got != (size_t)st.st_size) {
                log_error("cannot read a --web-dir file", "\"path\":\"%s\"", fpath);
                free(data);
                rc = CD_E_IO;
                break;
            }
            wk->bytes += got;
            if (add_file(wk->w, urlpath, data, got, 1) < 0) {
                free(data);
                log_error("--web-dir holds too many files", "\"max_files\":%d", WEB_MAX_FILES);
                rc = CD_E_TOO_LARGE;
            }
        }
    }
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct web_file *)a)->path, ((const struct web_file *)b)->path);
}

int web_init(struct web *w, const char *dir)
{
    int rc = CD_OK;
    memset(w, 0, sizeof(*w));
    if (dir && *dir) {
        struct walk wk = {w, 0};
        char root[4096];
        size_t n = strlen(dir);
        snprintf(root, sizeof(root), "%.*s", (int)(n > 1 && dir[n - 1] == '/' ? n - 1 : n), dir);
        rc = walk_dir(&wk, root, "", 0);
    } else {
        for (size_t i = 0; i < web_assets_count; i++)
            add_file(w, web_assets[i].path, web_assets[i].data, web_assets[i].len, 0);
    }
    if (rc != CD_OK) {
        web_free(w);
        return rc;
    }
    if (w->n) qsort(w->files, w->n, sizeof(*w->files), by_path);
    return CD_OK;
}

void web_free(struct web *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->files[i].path);
        if (w->files[i].owned) free((void *)w->files[i].data);
    }
    free(w->files);
    memset(w, 0, sizeof(*w));
}

const struct web_file *web_find(const struct web *w, struct slice path)
{
    size_t lo = 0, hi = w->n;
    if (path.len == 1 && path.p[0] == '/') path = SLICE_LIT("/index.html");
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *p = w->files[mid].path;
        size_t plen = strlen(p);
        int c = memcmp(p, path.p, plen < path.len ? plen : path.len);
        if (c == 0) c = plen < path.len ? -1 : plen > path.len ? 1 : 0;
        if (c == 0) return &w->files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* If-None-Match: a list of entity tags, or "*". */
static int etag_matches(const struct http_request *req, const char *etag)
{
    struct slice v;
    size_t n = strlen(etag);
    if (!http_header(req, "if-none-match", &v)) return 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] == '*') return 1;
        if (v.len - i >= n && !memcmp(v.p + i, etag, n)) return 1;
    }
    return 0;
}

int web_respond(struct conn *c, const struct http_request *req, const struct web_file *f)
{
    char hdrs[768];
    int html = !strncmp(f->type, "text/html", 9);
    struct http_response r = {.status = 200,
                              .content_type = f->type,
                              .body = f->data,
                              .len = f->len,
                              .extra_headers = hdrs,
                              /* revalidate every time (cheap: 304), so a new build shows at once */
                              .cache_control = "no-cache",
                              .head_only = req->method == HTTP_HEAD};
    snprintf(hdrs, sizeof(hdrs),
             "ETag: %s\r\nReferrer-Policy: no-referrer\r\n%s", /* nosniff: on every response */
             f->etag,
             html ? "X-Frame-Options: DENY\r\nContent-Security-Policy: default-src 'self'; "
                    "connect-src 'self'; img-src 'self' data:; object-src 'none'; "
                    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'\r\n"
                  : "");
    if (etag_matches(req, f->etag)) {
        r.status = 304;
        r.head_only = 1;
    }
    http_respond_full(c, &r);
    return r.status;
}
