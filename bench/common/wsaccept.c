/* wsaccept.c - the bench's handshake helpers, on top of chatd's own codec (src/net/ws_codec.c,
 * compiled into benchcommon) and libsodium: one SHA-1 and one accept-key derivation in the repo. */
#include "wsaccept.h"

#include <sodium.h>

#include "net/ws_codec.h"

void wsa_sha1(const void *data, size_t len, uint8_t out[20])
{
    ws_sha1(data, len, out);
}

size_t wsa_base64(const uint8_t *in, size_t len, char *out)
{
    sodium_bin2base64(out, sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), in, len,
                      sodium_base64_VARIANT_ORIGINAL);
    return sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) - 1;
}

int wsa_accept(const char *key, size_t klen, char out[29])
{
    return ws_accept_key(key, klen, out) == 0 ? 0 : -1;
}

int wsa_frame_len(const uint8_t *f, size_t avail, uint64_t *len, size_t *hl)
{
    if (avail < 2) return 1;
    *len = f[1] & 0x7F;
    *hl = 2;
    if (*len == 126) {
        if (avail < 4) return 1;
        *len = (uint64_t)f[2] << 8 | f[3];
        *hl = 4;
    } else if (*len == 127) {
        if (avail < 10) return 1;
        *len = 0;
        for (int i = 0; i < 8; i++)
            *len = *len << 8 | f[2 + i];
        *hl = 10;
    }
    return 0;
}
