/* fuzz_config.c - libFuzzer target for the config file parser (cfg_parse, src/server/config.c).
 *
 * The input is a config file's text. It is applied over the defaults three times: as is, with
 * every "\n" turned into "\r\n", and with a comment line and a blank line put in front; the
 * three must agree on the outcome and on every setting (the parser reads lines, blanks and
 * comments change nothing, and trailing white space is trimmed). Whatever is accepted must be a
 * complete configuration: every string set, every integer non-negative.
 *
 * The same bytes also go to the JSON form (cfg_parse_json), as is and with white space in front
 * (what cfg_load's detection of a JSON file skips): both must agree, and an accepted object must
 * be a complete configuration too.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"
#include "util/rbuf.h"
#include "fuzz_check.h"

static FILE *devnull;

static int parse_with(struct cfg *c, const char *text, size_t len,
                      int (*fn)(struct cfg *, const char *, size_t, const char *, FILE *))
{
    char *argv[] = {"chatd", NULL};
    CHECK(cfg_load(c, 1, argv, NULL, devnull, devnull) == CFG_OK);
    return fn(c, text, len, "fuzz.conf", devnull);
}

static int parse(struct cfg *c, const char *text, size_t len)
{
    return parse_with(c, text, len, cfg_parse);
}

static void same(const struct cfg *a, const struct cfg *b)
{
#define SAME_STR(f)                        CHECK(a->f != NULL && b->f != NULL && strcmp(a->f, b->f) == 0);
#define SAME_INT(f)                        CHECK(a->f == b->f && a->f >= 0);
#define SAME_BOOL(f)                       CHECK(a->f == b->f && (a->f == 0 || a->f == 1));
#define SAME(field, flag, type, def, help) SAME_##type(field)
    CFG_MAP(SAME)
#undef SAME
#undef SAME_STR
#undef SAME_INT
#undef SAME_BOOL
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg a, b, c;
    char *crlf = xmalloc(2 * size + 1), *pre = xmalloc(size + 32);
    size_t n = 0;
    int ra, rb, rc;

    if (!devnull) devnull = fopen("/dev/null", "w");
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') crlf[n++] = '\r';
        crlf[n++] = (char)data[i];
    }
    memcpy(pre, "# leading comment\n\n", 19);
    memcpy(pre + 19, data, size);

    ra = parse(&a, (const char *)data, size);
    rb = parse(&b, crlf, n);
    rc = parse(&c, pre, size + 19);
    CHECK(ra == 0 || ra == -1);
    CHECK(ra == rb && ra == rc);
    if (ra == 0) {
        same(&a, &b);
        same(&a, &c);
    }
    cfg_free(&a);
    cfg_free(&b);
    cfg_free(&c);

    memcpy(pre, " \n\t ", 4);
    memcpy(pre + 4, data, size);
    ra = parse_with(&a, (const char *)data, size, cfg_parse_json);
    rb = parse_with(&b, pre, size + 4, cfg_parse_json);
    CHECK(ra == 0 || ra == -1);
    CHECK(ra == rb);
    if (ra == 0) same(&a, &b);
    cfg_free(&a);
    cfg_free(&b);
    free(crlf);
    free(pre);
    return 0;
}
