/* jwt.h - HS256 JSON Web Tokens for chatd access tokens.
 *
 * The algorithm is pinned: a token whose header is not exactly alg "HS256", typ "JWT" (optional)
 * and a known "kid" is rejected, so "alg":"none" and algorithm confusion cannot pass. Keys carry
 * an id so they can rotate: tokens are signed with the active key and verified with any key of
 * the ring. Pure functions: no I/O, no globals; safe from any thread.
 */
#ifndef CD_JWT_H
#define CD_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_KEYS   4
#define JWT_KID_MAX    16
#define JWT_SECRET_LEN 32
#define JWT_MAX_TOKEN  512 /* longest token chatd issues or accepts, bytes */

struct jwt_key {
    char kid[JWT_KID_MAX + 1];      /* key id, [A-Za-z0-9_-]{1,16} */
    uint8_t secret[JWT_SECRET_LEN]; /* HMAC-SHA256 key */
};

struct jwt_keyring {
    struct jwt_key keys[JWT_MAX_KEYS];
    int n;      /* keys in use */
    int active; /* index of the signing key */
};

struct jwt_claims {
    int64_t sub; /* user id */
    int64_t iat; /* issued at, unix seconds */
    int64_t exp; /* expiry, unix seconds */
    int64_t sid; /* session (refresh-token family) id, 0 if none */
};

/* Sign claims with the active key into out (NUL-terminated). Returns CD_OK, CD_E_INTERNAL when
 * the ring is empty or out (cap bytes) is too small. */
int jwt_sign(const struct jwt_keyring *ring, const struct jwt_claims *c, char *out, size_t cap);

/* Verify a compact token of len bytes at time `now` (unix seconds), allowing `leeway` seconds of
 * clock skew. Returns CD_OK and fills *c; CD_E_TOKEN_EXPIRED for a well-signed expired token;
 * CD_E_UNAUTHORIZED for anything else (iat in the future beyond leeway included): malformed, wrong
 * alg, unknown kid, bad signature (compared in constant time), missing or mistyped claims. */
int jwt_verify(const struct jwt_keyring *ring, const char *tok, size_t len, int64_t now,
               int64_t leeway, struct jwt_claims *c);

/* Parse a key spec "kid:hex64[,kid:hex64...]" (first = active) into ring. Returns CD_OK or
 * CD_E_INVALID_FIELD. */
int jwt_keyring_parse(struct jwt_keyring *ring, const char *spec);

#endif
