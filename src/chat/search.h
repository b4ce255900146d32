/* search.h - the rules of message search: what a query may be and how a hit is shown.
 *
 * A query is at most SEARCH_Q_MAX bytes of UTF-8; it is split into terms at every ASCII byte
 * that is not a letter or digit (bytes >= 0x80 stay in terms: letters of other scripts), ASCII
 * letters are lowercased, at most SEARCH_TERMS_MAX terms are kept, and all of them must match
 * (whole words; both backends fold case). Snippets come from the backend with \x01 / \x02 around
 * each match; search_snippet_html escapes them for HTML (& < > " ') and turns the markers into
 * <mark> and </mark>, always balanced. Pure functions.
 */
#ifndef CD_SEARCH_H
#define CD_SEARCH_H

#include <stddef.h>

#include "util/jsonw.h"

#define SEARCH_Q_MAX     256 /* bytes of q */
#define SEARCH_TERMS_MAX 8   /* terms kept from q */
#define SEARCH_LIMIT_MAX 50  /* results per page */
#define SEARCH_LIMIT_DEF 20

/* q -> "term term ..." in out (cap >= len + 1). Returns the number of terms (0: nothing to
 * search for). */
int search_terms(const char *q, size_t len, char *out, size_t cap);

/* The snippet as a JSON string of HTML (escaped text, <mark>...</mark> around matches). */
void search_snippet_json(struct jsonw *w, const char *s, size_t n);

#endif
