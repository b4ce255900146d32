/* apikey.c - API key generation and hashing (see apikey.h). */
#include "auth/apikey.h"

#include <sodium.h>
#include <string.h>

#include "auth/auth.h"

void apikey_new(char key[APIKEY_LEN + 1], uint8_t hash[32])
{
    uint8_t raw[32];
    memcpy(key, APIKEY_PREFIX, 3);
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(key + 3, APIKEY_LEN - 3 + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    apikey_hash(key, APIKEY_LEN, hash);
    sodium_memzero(raw, sizeof(raw));
}

void apikey_hash(const char *key, size_t len, uint8_t hash[32])
{
    crypto_hash_sha256(hash, (const unsigned char *)key, len);
}

int apikey_shape_ok(const char *s, size_t len)
{
    if (len != APIKEY_LEN || memcmp(s, APIKEY_PREFIX, 3) != 0) return 0;
    for (size_t i = 3; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int apikey_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"' || name[i] == '\\') return 0;
    return 1;
}
