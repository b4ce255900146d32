/* origin.h - which web origins may use the API: CORS for REST and the Origin check of the
 * WebSocket upgrade (--allowed-origins).
 *
 * A request without an Origin header (curl, servers, native apps) is not a browser's
 * cross-site request and is always allowed. A browser request whose Origin names the host the
 * request was sent to (the Host header) is same-origin and allowed. Any other origin must be
 * listed. Origins are compared as "scheme://host[:port]", case-insensitively.
 */
#ifndef CD_ORIGIN_H
#define CD_ORIGIN_H

#include <stddef.h>

#include "net/http.h"

#define ORIGIN_MAX_LEN 256 /* longest origin accepted in the list or a request */

struct origin_policy {
    char **origins; /* listed origins, lower-cased, without a trailing slash */
    size_t n;
    int any; /* "*": every origin */
};

/* Parse "https://a.example,http://localhost:3000" (or "*", or "" = none). Returns CD_OK, or
 * CD_E_INVALID_FIELD when an entry is not scheme://host[:port] (http or https, no path). The
 * policy owns its memory: origin_policy_free. */
int origin_policy_parse(struct origin_policy *p, const char *spec);
void origin_policy_free(struct origin_policy *p);

enum origin_verdict {
    ORIGIN_NONE = 0,  /* no Origin header */
    ORIGIN_SAME,      /* Origin names the Host the request went to */
    ORIGIN_ALLOWED,   /* another origin, listed */
    ORIGIN_FORBIDDEN, /* another origin, not listed (or malformed) */
};

/* Classify the request's Origin. *origin (may be NULL) gets the header's value. */
enum origin_verdict origin_check(const struct origin_policy *p, const struct http_request *r,
                                 struct slice *origin);
/* 1 when origin (a request's Origin value) is in the list. */
int origin_listed(const struct origin_policy *p, struct slice origin);

#endif
