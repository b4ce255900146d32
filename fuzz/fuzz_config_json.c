/* fuzz_config_json.c - libFuzzer target for the JSON config file parser (cfg_parse_json,
 * src/server/config.c).
 *
 * The input is a config file's text, applied over the defaults twice: as is, and with white
 * space in front (what cfg_load's JSON detection skips). Both must agree on the outcome and on
 * every setting, and whatever is accepted must be a complete configuration: every string set,
 * every integer non-negative, every switch 0 or 1.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/config.h"
#include "util/rbuf.h"
#include "fuzz_check.h"

static FILE *devnull;

static int parse(struct cfg *c, const char *text, size_t len)
{
    char *argv[] = {"chatd", NULL};
    CHECK(cfg_load(c, 1, argv, NULL, devnull, devnull) == CFG_OK);
    return cfg_parse_json(c, text, len, "fuzz.json", devnull);
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
    struct cfg a, b;
    char *pre = xmalloc(size + 8);
    int ra, rb;

    if (!devnull) devnull = fopen("/dev/null", "w");
    memcpy(pre, " \n\t ", 4);
    memcpy(pre + 4, data, size);
    ra = parse(&a, (const char *)data, size);
    rb = parse(&b, pre, size + 4);
    CHECK(ra == rb);
    CHECK(ra == 0 || ra == -1);
    if (ra == 0) same(&a, &b);
    cfg_free(&a);
    cfg_free(&b);
    free(pre);
    return 0;
}
