/* origin.c - the allowed-origins list and the same-origin test (see origin.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/origin.h"
#include "util/rbuf.h"
#include "util/status.h"

/* scheme://host[:port] with nothing after it. */
static int origin_valid(const char *s, size_t len)
{
    size_t off;
    if (len > 7 && !strncasecmp(s, "http://", 7))
        off = 7;
    else if (len > 8 && !strncasecmp(s, "https://", 8))
        off = 8;
    else
        return 0;
    if (len > ORIGIN_MAX_LEN) return 0;
    for (size_t i = off; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']'))
            return 0;
    }
    return 1;
}

int origin_policy_parse(struct origin_policy *p, const char *spec)
{
    const char *s = spec ? spec : "";
    memset(p, 0, sizeof(*p));
    while (*s) {
        const char *comma = strchr(s, ','), *end = comma ? comma : s + strlen(s), *b = s;
        while (b < end && isspace((unsigned char)*b))
            b++;
        while (end > b && (isspace((unsigned char)end[-1]) || end[-1] == '/'))
            end--;
        if (end > b) {
            size_t len = (size_t)(end - b);
            if (len == 1 && *b == '*') {
                p->any = 1;
            } else {
                char *o;
                if (!origin_valid(b, len)) {
                    origin_policy_free(p);
                    return CD_E_INVALID_FIELD;
                }
                o = xstrndup(b, len);
                for (size_t i = 0; i < len; i++)
                    o[i] = (char)tolower((unsigned char)o[i]);
                p->origins = xrealloc(p->origins, (p->n + 1) * sizeof(*p->origins));
                p->origins[p->n++] = o;
            }
        }
        s = comma ? comma + 1 : end + strlen(end);
    }
    return CD_OK;
}

void origin_policy_free(struct origin_policy *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->origins[i]);
    free(p->origins);
    memset(p, 0, sizeof(*p));
}

int origin_listed(const struct origin_policy *p, struct slice origin)
{
    if (!origin_valid(origin.p, origin.len)) return 0;
    if (p->any) return 1;
    for (size_t i = 0; i < p->n; i++)
        if (strlen(p->origins[i]) == origin.len &&
            !strncasecmp(p->origins[i], origin.p, origin.len))
            return 1;
    return 0;
}

enum origin_verdict origin_check(const struct origin_policy *p, const struct http_request *r,
                                 struct slice *origin)
{
    struct slice o, host;
    const char *hp;

    if (!http_header(r, "origin", &o)) return ORIGIN_NONE;
    if (origin) *origin = o;
    if (!origin_valid(o.p, o.len)) return ORIGIN_FORBIDDEN; /* "null", garbage */
    hp = (const char *)memchr(o.p, ':', o.len) + 3;         /* after "scheme://" */
    if (http_header(r, "host", &host) && host.len == (size_t)(o.p + o.len - hp) &&
        !strncasecmp(hp, host.p, host.len))
        return ORIGIN_SAME;
    return origin_listed(p, o) ? ORIGIN_ALLOWED : ORIGIN_FORBIDDEN;
}
