/* jsonflat.h - a scanner for the one JSON shape on the hot path: a flat object whose values are
 * plain strings or integers, e.g. {"type":"send","id":7,"room":"r_1","client_msg_id":"c1",
 * "body":"hi"}. It builds no DOM and allocates nothing: fields come back as slices into the
 * input. Anything it does not fully understand makes it refuse, never guess: strings with
 * backslash escapes or control characters, numbers with a fraction, exponent, leading zero or
 * more than 18 digits, nested values, true/false/null, duplicate keys, more than `max` members,
 * trailing bytes. The caller then takes its general JSON path, which decides about the input.
 * The input must be valid UTF-8 (WebSocket text messages are validated before they get here).
 */
#ifndef CD_JSONFLAT_H
#define CD_JSONFLAT_H

#include <stddef.h>
#include <stdint.h>

enum jsonflat_kind { JSONFLAT_STRING, JSONFLAT_INT };

struct jsonflat_field {
    const char *key; /* not NUL-terminated */
    size_t key_len;
    const char *val; /* string contents (without quotes) or the integer's text */
    size_t val_len;
    int64_t num; /* JSONFLAT_INT: the value */
    enum jsonflat_kind kind;
};

/* Scan p[0..n). Returns the number of members written to out (at most max), or -1 when the text
 * is not such an object. Never reads outside p[0..n). O(n + members^2). */
int jsonflat_scan(const char *p, size_t n, struct jsonflat_field *out, int max);

#endif
