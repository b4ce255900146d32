/* fuzz_jsonflat.c - libFuzzer target for the flat JSON scanner of the send hot path
 * (src/util/jsonflat.c). Inputs that are not valid UTF-8 are skipped (the server only scans
 * validated WebSocket text). Whatever the scanner accepts, jansson must parse to an object with
 * exactly the same members and values: the scanner may refuse anything, but never disagree. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_codec.h"
#include "util/jsonflat.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jsonflat_field f[8];
    json_error_t err;
    int n;

    if (!ws_utf8_valid(data, size)) return 0;
    n = jsonflat_scan((const char *)data, size, f, 8);
    if (n < 0) return 0;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    CHECK(json_is_object(o));
    CHECK(json_object_size(o) == (size_t)n);
    for (int i = 0; i < n; i++) {
        char *key = strndup(f[i].key, f[i].key_len);
        json_t *v = json_object_get(o, key);
        free(key);
        CHECK(v != NULL);
        CHECK((const char *)data <= f[i].val &&
              f[i].val + f[i].val_len <= (const char *)data + size);
        if (f[i].kind == JSONFLAT_INT) {
            CHECK(json_is_integer(v) && json_integer_value(v) == f[i].num);
        } else {
            CHECK(json_is_string(v) && json_string_length(v) == f[i].val_len &&
                  memcmp(json_string_value(v), f[i].val, f[i].val_len) == 0);
        }
    }
    json_decref(o);
    return 0;
}
