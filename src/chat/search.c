#include "chat/search.h"

#include <stdlib.h>
#include <string.h>

#include "util/rbuf.h"

static int term_byte(unsigned char ch)
{
    return ch >= 0x80 || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z');
}

int search_terms(const char *q, size_t len, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    int n = 0;

    if (cap == 0) return 0;
    while (i < len && n < SEARCH_TERMS_MAX) {
        while (i < len && !term_byte((unsigned char)q[i]))
            i++;
        if (i == len) break;
        if (n && o + 1 < cap) out[o++] = ' ';
        while (i < len && term_byte((unsigned char)q[i])) {
            unsigned char ch = (unsigned char)q[i++];
            if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch - 'A' + 'a');
            if (o + 1 < cap) out[o++] = (char)ch;
        }
        n++;
    }
    out[o] = '\0';
    return n;
}

void search_snippet_json(struct jsonw *w, const char *s, size_t n)
{
    size_t cap = n * 7 + 16, o = 0; /* "</mark>" is the longest replacement */
    char *h = xmalloc(cap);
    int open = 0;

    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '\x01':
            rep = open ? "" : "<mark>";
            open = 1;
            break;
        case '\x02':
            rep = open ? "</mark>" : "";
            open = 0;
            break;
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            h[o++] = s[i];
            continue;
        }
        memcpy(h + o, rep, strlen(rep));
        o += strlen(rep);
    }
    if (open) {
        memcpy(h + o, "</mark>", 7);
        o += 7;
    }
    jsonw_str(w, h, o);
    free(h);
}
