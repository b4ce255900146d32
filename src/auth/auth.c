#include "auth/auth.h"

#include <sodium.h>
#include <string.h>
#include <uv.h>

#include "util/status.h"

static uv_once_t dummy_once = UV_ONCE_INIT;
static char dummy_hash[crypto_pwhash_STRBYTES];
static uint64_t dummy_ops, dummy_mem;

int auth_init(void)
{
    return sodium_init() < 0 ? CD_E_INTERNAL : CD_OK;
}

int auth_username_valid(const char *name, size_t len)
{
    if (len < AUTH_USERNAME_MIN || len > AUTH_USERNAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return 0;
    }
    return 1;
}

int auth_password_valid(size_t len)
{
    return len >= AUTH_PASSWORD_MIN && len <= AUTH_PASSWORD_MAX;
}

int auth_hash_password(const char *pw, size_t len, uint64_t ops, uint64_t mem_kib,
                       char out[AUTH_PWHASH_MAX])
{
    if (crypto_pwhash_str_alg(out, pw, len, ops, (size_t)mem_kib * 1024,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return CD_E_NOMEM;
    return CD_OK;
}

static void dummy_init(void)
{
    auth_hash_password("chatd-dummy-password", 20, dummy_ops, dummy_mem, dummy_hash);
}

int auth_verify_password(const char *hash, const char *pw, size_t len, uint64_t ops,
                         uint64_t mem_kib)
{
    if (!hash) {
        dummy_ops = ops;
        dummy_mem = mem_kib;
        uv_once(&dummy_once, dummy_init);
        int sink = crypto_pwhash_str_verify(dummy_hash, pw, len);
        return sink & 0; /* same cost as a real check, never a match */
    }
    return crypto_pwhash_str_verify(hash, pw, len) == 0;
}

void auth_refresh_new(char token[AUTH_REFRESH_LEN + 1], uint8_t hash[32])
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(token, AUTH_REFRESH_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    auth_refresh_hash(token, AUTH_REFRESH_LEN, hash);
    sodium_memzero(raw, sizeof(raw));
}

void auth_refresh_hash(const char *token, size_t len, uint8_t hash[32])
{
    crypto_hash_sha256(hash, (const unsigned char *)token, len);
}
