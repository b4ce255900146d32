/* web.h - the web client's static files, served at / (--web, --web-dir).
 *
 * The set of files is fixed when chatd starts: the copy embedded in the binary at build time
 * (web/ and the SDK, turned into a C array by cmake/embed_web.cmake), or the files of
 * --web-dir read once at start. A request path is only ever a key into that table, never a
 * file-system path, so no request can reach a file outside it. Only GET and HEAD; ETag +
 * If-None-Match (304); every response carries X-Content-Type-Options: nosniff, HTML pages a
 * Content-Security-Policy that allows nothing but this origin.
 */
#ifndef CD_WEB_H
#define CD_WEB_H

#include <stddef.h>
#include <stdint.h>

#include "net/http.h"

/* One embedded file (generated web_assets.c). */
struct web_asset {
    const char *path; /* "/index.html", "/sdk/client.js" */
    const unsigned char *data;
    size_t len;
};
extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

#define WEB_MAX_FILES 512                /* --web-dir: files loaded at most */
#define WEB_MAX_BYTES (32 * 1024 * 1024) /* --web-dir: total bytes at most */
#define WEB_MAX_DEPTH 6                  /* --web-dir: directory levels */

struct web_file {
    char *path; /* URL path, e.g. "/app.js" */
    const char *type;
    const unsigned char *data;
    size_t len;
    char etag[20]; /* "\"<16 hex>\"" */
    int owned;     /* data is malloc'ed (--web-dir) */
};

struct web {
    struct web_file *files; /* sorted by path */
    size_t n;
};

/* Load the embedded files (dir NULL or "") or the regular files under dir (dot-files skipped,
 * unknown extensions skipped, limits above). Returns CD_OK, or CD_E_IO / CD_E_TOO_LARGE after
 * logging why. Blocks (disk): call before the I/O threads start. */
int web_init(struct web *w, const char *dir);
void web_free(struct web *w);

/* The file served for a URL path ("/" is "/index.html"), or NULL. */
const struct web_file *web_find(const struct web *w, struct slice path);
/* Content-Type of a file name by its extension, or NULL when not served. */
const char *web_content_type(const char *name);

/* Answer a GET or HEAD for f (200, or 304 when If-None-Match matches). Returns the status. */
int web_respond(struct conn *c, const struct http_request *req, const struct web_file *f);

#endif
