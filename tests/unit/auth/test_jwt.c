/* test_jwt.c - HS256 tokens: roundtrip, time rules, tampering, algorithm pinning, key rotation,
 * malformed input and key-ring specs. Tokens that jwt_sign would never produce are forged here
 * by hand (base64url + HMAC-SHA256 with libsodium) so each rejection is tested on a token that is
 * otherwise correctly signed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/jwt.h"
#include "util/status.h"

#define NOW     INT64_C(1700000000)
#define TTL     900
#define LEEWAY  30
#define B64V    sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define HEX1    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX2    "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff"
#define HEX3    "3333333333333333333333333333333333333333333333333333333333333333"
#define HEX4    "4444444444444444444444444444444444444444444444444444444444444444"
#define HEADER  "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"
#define PAYLOAD "{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,\"sid\":7}"
#define BUFSZ   2048

static struct jwt_keyring ring_of(const char *spec)
{
    struct jwt_keyring r;
    assert_int_equal(jwt_keyring_parse(&r, spec), CD_OK);
    return r;
}

static struct jwt_claims claims(int64_t sub, int64_t iat, int64_t exp, int64_t sid)
{
    struct jwt_claims c = {.sub = sub, .iat = iat, .exp = exp, .sid = sid};
    return c;
}

static void b64_append(char *out, size_t cap, const void *bin, size_t len)
{
    size_t pos = strlen(out);
    assert_true(sodium_base64_ENCODED_LEN(len, B64V) <= cap - pos);
    sodium_bin2base64(out + pos, cap - pos, bin, len, B64V);
}

/* out = b64(head) "." b64(body) "." b64(HMAC(secret)); secret NULL leaves the signature empty. */
static void forge(char *out, size_t cap, const char *head, const char *body, const uint8_t *secret)
{
    uint8_t mac[crypto_auth_hmacsha256_BYTES];

    out[0] = '\0';
    b64_append(out, cap, head, strlen(head));
    strcat(out, ".");
    b64_append(out, cap, body, strlen(body));
    if (secret != NULL) crypto_auth_hmacsha256(mac, (const uint8_t *)out, strlen(out), secret);
    strcat(out, ".");
    if (secret != NULL) b64_append(out, cap, mac, sizeof mac);
}

static int verify_str(const struct jwt_keyring *r, const char *tok, struct jwt_claims *c)
{
    return jwt_verify(r, tok, strlen(tok), NOW, LEEWAY, c);
}

/* Status of verifying a forged token with the given header and payload, signed with k1. */
static int forged(const char *head, const char *body)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims c;
    char tok[BUFSZ];

    forge(tok, sizeof tok, head, body, r.keys[0].secret);
    return verify_str(&r, tok, &c);
}

static int forged_body(const char *body)
{
    return forged(HEADER, body);
}

static int forged_head(const char *head)
{
    return forged(head, PAYLOAD);
}

/* Decode one base64url segment [b, e) of a token into a NUL-terminated string. */
static void segment(char *out, size_t cap, const char *b, const char *e)
{
    size_t n;
    assert_int_equal(
        sodium_base642bin((uint8_t *)out, cap - 1, b, (size_t)(e - b), NULL, &n, NULL, B64V), 0);
    out[n] = '\0';
}

/* ---- sign and verify ---- */

static void test_roundtrip(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 7), out;
    char tok[JWT_MAX_TOKEN + 1], part[BUFSZ];
    const char *d1, *d2;

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    assert_int_equal(jwt_verify(&r, tok, strlen(tok), NOW, 0, &out), CD_OK);
    assert_int_equal(out.sub, 42);
    assert_int_equal(out.iat, NOW);
    assert_int_equal(out.exp, NOW + TTL);
    assert_int_equal(out.sid, 7);

    /* The exact wire form: pinned header, sub as a string, members in a fixed order. */
    d1 = strchr(tok, '.');
    d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_int_equal(strlen(d2 + 1), 43);
    segment(part, sizeof part, tok, d1);
    assert_string_equal(part, HEADER);
    segment(part, sizeof part, d1 + 1, d2);
    assert_string_equal(part, PAYLOAD);

    /* A forged token of the same content is byte-identical: the signature covers what we think. */
    forge(part, sizeof part, HEADER, PAYLOAD, r.keys[0].secret);
    assert_string_equal(part, tok);
}

static void test_roundtrip_extremes(void **state)
{
    struct jwt_keyring r = ring_of("a-very_long-kid1:" HEX1);
    struct jwt_claims in = claims(INT64_MAX, NOW - 10, INT64_MAX, INT64_MAX), out;
    char tok[JWT_MAX_TOKEN + 1];

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    assert_true(strlen(tok) <= JWT_MAX_TOKEN);
    assert_int_equal(verify_str(&r, tok, &out), CD_OK);
    assert_int_equal(out.sub, INT64_MAX);
    assert_int_equal(out.exp, INT64_MAX);
    assert_int_equal(out.sid, INT64_MAX);

    in = claims(1, NOW, NOW + 1, 0);
    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    assert_int_equal(verify_str(&r, tok, &out), CD_OK);
    assert_int_equal(out.sub, 1);
    assert_int_equal(out.sid, 0);
}

static void test_len_is_respected(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 0), out;
    char tok[JWT_MAX_TOKEN + 8];
    size_t n;

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    n = strlen(tok);
    memcpy(tok + n, "xyz.", 5); /* not NUL-terminated at n any more */
    assert_int_equal(jwt_verify(&r, tok, n, NOW, 0, &out), CD_OK);
    assert_int_equal(jwt_verify(&r, tok, n + 1, NOW, 0, &out), CD_E_UNAUTHORIZED);
    assert_int_equal(jwt_verify(&r, tok, n - 1, NOW, 0, &out), CD_E_UNAUTHORIZED);
    tok[n] = '\0';
    assert_int_equal(jwt_verify(&r, tok, n + 1, NOW, 0, &out), CD_E_UNAUTHORIZED);
}

static void test_sign_errors(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1), empty = {0}, bad;
    struct jwt_claims c = claims(42, NOW, NOW + TTL, 0);
    char tok[JWT_MAX_TOKEN + 1];
    size_t n;

    assert_int_equal(jwt_sign(&r, &c, tok, sizeof tok), CD_OK);
    n = strlen(tok);

    /* Exactly enough room needs the NUL too. */
    memset(tok, 'x', sizeof tok);
    assert_int_equal(jwt_sign(&r, &c, tok, n), CD_E_INTERNAL);
    assert_int_equal(tok[0], '\0');
    assert_int_equal(jwt_sign(&r, &c, tok, 1), CD_E_INTERNAL);
    assert_int_equal(jwt_sign(&r, &c, tok, 0), CD_E_INTERNAL);
    assert_int_equal(tok[0], '\0');
    assert_int_equal(jwt_sign(&r, &c, NULL, 100), CD_E_INTERNAL);
    assert_int_equal(jwt_sign(&r, &c, tok, n + 1), CD_OK);
    assert_int_equal(strlen(tok), n);

    assert_int_equal(jwt_sign(&empty, &c, tok, sizeof tok), CD_E_INTERNAL);
    assert_int_equal(jwt_sign(NULL, &c, tok, sizeof tok), CD_E_INTERNAL);
    bad = r;
    bad.active = 1;
    assert_int_equal(jwt_sign(&bad, &c, tok, sizeof tok), CD_E_INTERNAL);
    bad.active = -1;
    assert_int_equal(jwt_sign(&bad, &c, tok, sizeof tok), CD_E_INTERNAL);
    bad = r;
    strcpy(bad.keys[0].kid, "a\"b");
    assert_int_equal(jwt_sign(&bad, &c, tok, sizeof tok), CD_E_INTERNAL);

    /* Claims that jwt_verify would refuse are not signed. */
    c = claims(0, NOW, NOW + TTL, 0);
    assert_int_equal(jwt_sign(&r, &c, tok, sizeof tok), CD_E_INTERNAL);
    c = claims(-1, NOW, NOW + TTL, 0);
    assert_int_equal(jwt_sign(&r, &c, tok, sizeof tok), CD_E_INTERNAL);
    c = claims(42, NOW, NOW, 0);
    assert_int_equal(jwt_sign(&r, &c, tok, sizeof tok), CD_E_INTERNAL);
    c = claims(42, NOW, NOW + TTL, -1);
    assert_int_equal(jwt_sign(&r, &c, tok, sizeof tok), CD_E_INTERNAL);
}

/* ---- time ---- */

static int verify_times(int64_t iat, int64_t exp, int64_t now, int64_t leeway)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims c = claims(42, iat, exp, 0), out;
    char tok[JWT_MAX_TOKEN + 1];

    assert_int_equal(jwt_sign(&r, &c, tok, sizeof tok), CD_OK);
    return jwt_verify(&r, tok, strlen(tok), now, leeway, &out);
}

static void test_expired(void **state)
{
    assert_int_equal(verify_times(NOW - TTL, NOW - 1, NOW, 0), CD_E_TOKEN_EXPIRED);
    assert_int_equal(verify_times(NOW - TTL, NOW, NOW, 0), CD_E_TOKEN_EXPIRED); /* exp <= now */
    assert_int_equal(verify_times(NOW - TTL, NOW + 1, NOW, 0), CD_OK);
    assert_int_equal(verify_times(NOW - TTL, NOW - LEEWAY, NOW, LEEWAY), CD_E_TOKEN_EXPIRED);
    assert_int_equal(verify_times(NOW - 2 * TTL, NOW - TTL, NOW, LEEWAY), CD_E_TOKEN_EXPIRED);
    /* A negative leeway counts as none. */
    assert_int_equal(verify_times(NOW - TTL, NOW + 1, NOW, -100), CD_OK);
}

static void test_within_leeway(void **state)
{
    assert_int_equal(verify_times(NOW - TTL, NOW - LEEWAY + 1, NOW, LEEWAY), CD_OK);
    assert_int_equal(verify_times(NOW - TTL, NOW - 1, NOW, LEEWAY), CD_OK);
    assert_int_equal(verify_times(NOW - TTL, NOW, NOW, LEEWAY), CD_OK);
    /* Huge leeway and extreme clocks saturate instead of overflowing. */
    assert_int_equal(verify_times(NOW - TTL, NOW - 1, NOW, INT64_MAX), CD_OK);
    assert_int_equal(verify_times(NOW, NOW + TTL, INT64_MIN, LEEWAY), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_times(NOW, NOW + TTL, INT64_MAX, LEEWAY), CD_E_TOKEN_EXPIRED);
}

static void test_future_iat(void **state)
{
    assert_int_equal(verify_times(NOW + LEEWAY, NOW + TTL, NOW, LEEWAY), CD_OK);
    assert_int_equal(verify_times(NOW + LEEWAY + 1, NOW + TTL, NOW, LEEWAY), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_times(NOW + 1, NOW + TTL, NOW, 0), CD_E_UNAUTHORIZED);
}

static void test_exp_not_after_iat(void **state)
{
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000000}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000100,\"exp\":1700000050}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000001}"), CD_OK);
}

/* ---- tampering ---- */

static void test_forged_baseline(void **state)
{
    /* The forging helper makes tokens jwt_verify accepts, so the rejections below are real. */
    assert_int_equal(forged(HEADER, PAYLOAD), CD_OK);
    assert_int_equal(forged("{\"alg\":\"HS256\",\"kid\":\"k1\"}", PAYLOAD), CD_OK);
    assert_int_equal(forged("{\"kid\":\"k1\",\"alg\":\"HS256\",\"typ\":\"JWT\"}", PAYLOAD), CD_OK);
    assert_int_equal(forged_body("{\"exp\":1700000900,\"iat\":1700000000,\"sub\":\"42\"}"), CD_OK);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"jti\":\"x\"}"),
                     CD_OK);
}

static void test_tampered_every_byte(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 7), out;
    char tok[JWT_MAX_TOKEN + 1], bad[JWT_MAX_TOKEN + 1];
    size_t n;
    int seg = 0, hit[3] = {0, 0, 0};

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    n = strlen(tok);
    for (size_t i = 0; i < n; i++) {
        if (tok[i] == '.') {
            seg++;
            continue;
        }
        /* Another valid base64url character, and a raw bit flip. */
        memcpy(bad, tok, n + 1);
        bad[i] = tok[i] == 'A' ? 'B' : 'A';
        assert_int_equal(jwt_verify(&r, bad, n, NOW, LEEWAY, &out), CD_E_UNAUTHORIZED);
        bad[i] = (char)(tok[i] ^ 0x01);
        assert_int_equal(jwt_verify(&r, bad, n, NOW, LEEWAY, &out), CD_E_UNAUTHORIZED);
        hit[seg]++;
    }
    assert_int_equal(seg, 2);
    assert_true(hit[0] > 0 && hit[1] > 0 && hit[2] == 43);
}

static void test_tampered_signature(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1), other = ring_of("k1:" HEX2);
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 0), out;
    char tok[BUFSZ], bad[BUFSZ];
    size_t n;
    char *sig;
    int v;
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    n = strlen(tok);
    sig = strrchr(tok, '.') + 1;

    /* Same kid, different secret. */
    assert_int_equal(verify_str(&other, tok, &out), CD_E_UNAUTHORIZED);

    /* Truncated, extended, empty, padded signature. */
    memcpy(bad, tok, n + 1);
    bad[n - 1] = '\0';
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    memcpy(bad, tok, n);
    memcpy(bad + n, "A", 2);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    memcpy(bad + n, "=", 2);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    memcpy(bad, tok, (size_t)(sig - tok));
    bad[sig - tok] = '\0';
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);

    /* Non-canonical last character: 43 chars carry 258 bits, the 2 spare bits must be zero. A lax
     * decoder would map these to the same 32 bytes; we must not accept a second spelling. */
    v = (int)(strchr(alphabet, tok[n - 1]) - alphabet);
    assert_int_equal(v & 3, 0);
    for (int low = 1; low < 4; low++) {
        memcpy(bad, tok, n + 1);
        bad[n - 1] = alphabet[v | low];
        assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    }

    /* Standard base64 alphabet instead of base64url. */
    memcpy(bad, tok, n + 1);
    bad[n - 2] = '+';
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    bad[n - 2] = '/';
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
}

/* libsodium 1.0.18 decodes every byte >= 0x80 as '_': a signature with a '_' verified with any
 * high byte in its place, a second spelling of one token (found by fuzz/fuzz_jwt.c). */
static void test_signature_high_bytes(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims out;
    char tok[JWT_MAX_TOKEN + 1], bad[JWT_MAX_TOKEN + 1];
    char *sig = NULL;
    size_t n = 0;

    for (int64_t sub = 1; sub < 1000 && sig == NULL; sub++) { /* a signature with a '_' */
        struct jwt_claims in = claims(sub, NOW, NOW + TTL, 0);
        assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
        n = strlen(tok);
        sig = strchr(strrchr(tok, '.'), '_');
    }
    assert_non_null(sig);
    assert_int_equal(jwt_verify(&r, tok, n, NOW, LEEWAY, &out), CD_OK);
    for (int c = 0x80; c < 0x100; c++) {
        memcpy(bad, tok, n + 1);
        bad[sig - tok] = (char)c;
        assert_int_equal(jwt_verify(&r, bad, n, NOW, LEEWAY, &out), CD_E_UNAUTHORIZED);
    }
}

/* ---- algorithm pinning ---- */

static void test_alg_none(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims out;
    char tok[BUFSZ];

    forge(tok, sizeof tok, "{\"alg\":\"none\"}", PAYLOAD, NULL);
    assert_int_equal(verify_str(&r, tok, &out), CD_E_UNAUTHORIZED);
    forge(tok, sizeof tok, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}", PAYLOAD, NULL);
    assert_int_equal(verify_str(&r, tok, &out), CD_E_UNAUTHORIZED);
    /* With a signature that is valid for the bytes: still refused, alg is pinned. */
    forge(tok, sizeof tok, "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"k1\"}", PAYLOAD,
          r.keys[0].secret);
    assert_int_equal(verify_str(&r, tok, &out), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"None\",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
}

static void test_alg_other(void **state)
{
    assert_int_equal(forged_head("{\"alg\":\"HS512\",\"typ\":\"JWT\",\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"hs256\",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256 \",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS2560\",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS25\",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"typ\":\"JWT\",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":null,\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":256,\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":[\"HS256\"],\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\\u0000\",\"kid\":\"k1\"}"), CD_E_UNAUTHORIZED);
}

static void test_header_members(void **state)
{
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWS\",\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":null,\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    /* Only alg, typ and kid: "crit", "jku" and friends are not understood, so not accepted. */
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":\"k1\",\"crit\":[\"exp\"]}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":\"k1\",\"jku\":\"http://x\"}"),
                     CD_E_UNAUTHORIZED);
}

/* ---- keys ---- */

static void test_unknown_kid(void **state)
{
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k9\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"K1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1 \"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":1}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":null}"), CD_E_UNAUTHORIZED);
}

static void test_key_rotation(void **state)
{
    struct jwt_keyring old = ring_of("k1:" HEX1);
    struct jwt_keyring both = ring_of("k2:" HEX2 ",k1:" HEX1);
    struct jwt_keyring fresh = ring_of("k2:" HEX2);
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 3), out;
    char t_old[JWT_MAX_TOKEN + 1], t_new[JWT_MAX_TOKEN + 1], part[BUFSZ];

    assert_int_equal(jwt_sign(&old, &in, t_old, sizeof t_old), CD_OK);
    assert_int_equal(jwt_sign(&both, &in, t_new, sizeof t_new), CD_OK);

    /* New tokens carry the active (first) key's id. */
    segment(part, sizeof part, t_new, strchr(t_new, '.'));
    assert_string_equal(part, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k2\"}");

    /* During rotation both verify; the old key is in the ring but no longer signs. */
    assert_int_equal(verify_str(&both, t_old, &out), CD_OK);
    assert_int_equal(out.sub, 42);
    assert_int_equal(verify_str(&both, t_new, &out), CD_OK);
    assert_int_equal(verify_str(&old, t_new, &out), CD_E_UNAUTHORIZED);

    /* Once the old key is removed, its tokens fail. */
    assert_int_equal(verify_str(&fresh, t_old, &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(&fresh, t_new, &out), CD_OK);

    /* A ring with active pointing at a later key signs with that key. */
    both.active = 1;
    assert_int_equal(jwt_sign(&both, &in, t_new, sizeof t_new), CD_OK);
    assert_string_equal(t_new, t_old);
}

static void test_empty_ring(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1), empty = {0};
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 0), out;
    char tok[JWT_MAX_TOKEN + 1];

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    assert_int_equal(verify_str(&empty, tok, &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(NULL, tok, &out), CD_E_UNAUTHORIZED);
    r.n = JWT_MAX_KEYS + 1;
    assert_int_equal(verify_str(&r, tok, &out), CD_E_UNAUTHORIZED);
}

/* ---- malformed ---- */

static void test_malformed(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims in = claims(42, NOW, NOW + TTL, 0), out;
    char tok[JWT_MAX_TOKEN + 1], bad[BUFSZ];
    const char *d1, *d2;

    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    d1 = strchr(tok, '.');
    d2 = strrchr(tok, '.');

    assert_int_equal(jwt_verify(&r, NULL, 10, NOW, 0, &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(&r, "", &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(&r, ".", &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(&r, "..", &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(&r, "...", &out), CD_E_UNAUTHORIZED);
    assert_int_equal(verify_str(&r, "abc", &out), CD_E_UNAUTHORIZED);

    /* Two segments: header.payload, and header.signature. */
    snprintf(bad, sizeof bad, "%.*s", (int)(d2 - tok), tok);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%.*s%s", (int)(d1 - tok), tok, d2);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);

    /* Four segments, either way round. */
    snprintf(bad, sizeof bad, "%s.", tok);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%s.%s", tok, d2 + 1);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    snprintf(bad, sizeof bad, ".%s", tok);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);

    /* Bad base64: padding, standard alphabet, whitespace, stray bytes, NUL. */
    snprintf(bad, sizeof bad, "%.*s=%s", (int)(d1 - tok), tok, d1);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%.*s==%s", (int)(d2 - tok), tok, d2);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    snprintf(bad, sizeof bad, " %s", tok);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    snprintf(bad, sizeof bad, "%s\n", tok);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    memcpy(bad, tok, strlen(tok) + 1);
    bad[3] = '!';
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
    memcpy(bad, tok, strlen(tok) + 1);
    bad[d1 - tok + 2] = '\0';
    assert_int_equal(jwt_verify(&r, bad, strlen(tok), NOW, 0, &out), CD_E_UNAUTHORIZED);
    /* One character too many in the header segment. */
    snprintf(bad, sizeof bad, "%.*sA%s", (int)(d1 - tok), tok, d1);
    assert_int_equal(verify_str(&r, bad, &out), CD_E_UNAUTHORIZED);
}

static void test_malformed_json(void **state)
{
    assert_int_equal(forged_head("hello"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head(""), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("[\"HS256\",\"k1\"]"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("[{\"alg\":\"HS256\",\"kid\":\"k1\"}]"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("\"HS256\""), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("null"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":\"k1\""), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":\"k1\"}x"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":\"k1\"}{}"), CD_E_UNAUTHORIZED);

    assert_int_equal(forged_body("hello"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body(""), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("[\"42\",1700000000,1700000900]"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("42"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body(PAYLOAD " "), CD_OK); /* trailing whitespace is still JSON */
    assert_int_equal(forged_body(PAYLOAD "{}"), CD_E_UNAUTHORIZED);
}

static void test_huge_token(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims out;
    char tok[BUFSZ], body[BUFSZ];
    size_t best_ok = 0, first_big = 0;

    /* Correctly signed tokens around the size limit, grown with an ignored claim. */
    for (int pad = 0; pad < 600 && first_big == 0; pad++) {
        size_t n;
        snprintf(body, sizeof body,
                 "{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,\"x\":\"%*s\"}", pad, "");
        forge(tok, sizeof tok, HEADER, body, r.keys[0].secret);
        n = strlen(tok);
        if (n <= JWT_MAX_TOKEN) {
            assert_int_equal(verify_str(&r, tok, &out), CD_OK);
            best_ok = n;
        } else {
            assert_int_equal(verify_str(&r, tok, &out), CD_E_UNAUTHORIZED);
            first_big = n;
        }
    }
    assert_true(best_ok >= JWT_MAX_TOKEN - 2);
    assert_true(first_big > JWT_MAX_TOKEN);

    /* Far beyond the limit, and a huge len over a short buffer's worth of dots. */
    memset(body, 'A', sizeof body);
    body[100] = '.';
    body[200] = '.';
    assert_int_equal(jwt_verify(&r, body, sizeof body, NOW, 0, &out), CD_E_UNAUTHORIZED);
    assert_int_equal(jwt_verify(&r, body, SIZE_MAX, NOW, 0, &out), CD_E_UNAUTHORIZED);
}

static void test_duplicate_members(void **state)
{
    assert_int_equal(forged_head("{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"alg\":\"HS256\",\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"kid\":\"k9\",\"kid\":\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_head("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"typ\":\"JWT\",\"kid\":"
                                 "\"k1\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"1\",\"sub\":\"42\",\"iat\":1700000000,"
                                 "\"exp\":1700000900}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1,"
                                 "\"exp\":1700000900}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"sid\":1,\"sid\":2}"),
                     CD_E_UNAUTHORIZED);
}

/* ---- claims ---- */

static int with_sub(const char *sub_json)
{
    char body[256];
    snprintf(body, sizeof body, "{\"sub\":%s,\"iat\":1700000000,\"exp\":1700000900}", sub_json);
    return forged_body(body);
}

static void test_sub(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims out;
    char tok[BUFSZ];

    assert_int_equal(with_sub("\"42\""), CD_OK);
    assert_int_equal(with_sub("\"9223372036854775807\""), CD_OK);
    assert_int_equal(with_sub("42"), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("42.0"), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("null"), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("true"), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("[\"42\"]"), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"-5\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"+5\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"0\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"007\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"12a\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"abc\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\" 5\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"5 \""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"1e3\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"\\u0661\""), CD_E_UNAUTHORIZED); /* ARABIC-INDIC DIGIT ONE */
    assert_int_equal(with_sub("\"9223372036854775808\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"18446744073709551617\""), CD_E_UNAUTHORIZED);
    assert_int_equal(with_sub("\"99999999999999999999999\""), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"iat\":1700000000,\"exp\":1700000900}"), CD_E_UNAUTHORIZED);

    forge(tok, sizeof tok, HEADER,
          "{\"sub\":\"9223372036854775807\",\"iat\":1700000000,\"exp\":1700000900}",
          r.keys[0].secret);
    assert_int_equal(verify_str(&r, tok, &out), CD_OK);
    assert_int_equal(out.sub, INT64_MAX);
    assert_int_equal(out.sid, 0);
}

static void test_times_and_sid(void **state)
{
    assert_int_equal(forged_body("{\"sub\":\"42\",\"exp\":1700000900}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000}"), CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":\"1700000000\",\"exp\":1700000900}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":\"1700000900\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000.5,\"exp\":1700000900}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900.0}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":null,\"exp\":1700000900}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,"
                                 "\"exp\":99999999999999999999999}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"sid\":\"7\"}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"sid\":-1}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"sid\":null}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"sid\":1.5}"),
                     CD_E_UNAUTHORIZED);
    assert_int_equal(forged_body("{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700000900,"
                                 "\"sid\":0}"),
                     CD_OK);
}

static void test_claims_untouched_on_failure(void **state)
{
    struct jwt_keyring r = ring_of("k1:" HEX1);
    struct jwt_claims in = claims(42, NOW - 2 * TTL, NOW - TTL, 5), out, before;
    char tok[JWT_MAX_TOKEN + 1];

    memset(&out, 0x5a, sizeof out);
    before = out;
    assert_int_equal(jwt_sign(&r, &in, tok, sizeof tok), CD_OK);
    assert_int_equal(verify_str(&r, tok, &out), CD_E_TOKEN_EXPIRED);
    assert_memory_equal(&out, &before, sizeof out);
    assert_int_equal(verify_str(&r, "a.b.c", &out), CD_E_UNAUTHORIZED);
    assert_memory_equal(&out, &before, sizeof out);
}

/* ---- key ring specs ---- */

static void test_keyring_good(void **state)
{
    struct jwt_keyring r;
    uint8_t want[JWT_SECRET_LEN];

    assert_int_equal(jwt_keyring_parse(&r, "k1:" HEX1), CD_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.active, 0);
    assert_string_equal(r.keys[0].kid, "k1");
    for (int i = 0; i < JWT_SECRET_LEN; i++)
        want[i] = (uint8_t)i;
    assert_memory_equal(r.keys[0].secret, want, sizeof want);

    assert_int_equal(
        jwt_keyring_parse(&r, "new:" HEX2 ",Old_key-2:" HEX1 ",c:" HEX3 ",0123456789abcdef:" HEX4),
        CD_OK);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.active, 0);
    assert_string_equal(r.keys[0].kid, "new");
    assert_string_equal(r.keys[1].kid, "Old_key-2");
    assert_string_equal(r.keys[2].kid, "c");
    assert_string_equal(r.keys[3].kid, "0123456789abcdef");
    assert_memory_equal(r.keys[1].secret, want, sizeof want);
    assert_int_equal(r.keys[0].secret[0], 0xf0);
    assert_int_equal(r.keys[3].secret[31], 0x44);

    /* Upper-case hex is the same key. */
    assert_int_equal(jwt_keyring_parse(&r, "K:"
                                           "000102030405060708090A0B0C0D0E0F"
                                           "101112131415161718191A1B1C1D1E1F"),
                     CD_OK);
    assert_memory_equal(r.keys[0].secret, want, sizeof want);

    /* The same secret under two ids is allowed (e.g. renaming a key). */
    assert_int_equal(jwt_keyring_parse(&r, "a:" HEX1 ",b:" HEX1), CD_OK);
    assert_int_equal(r.n, 2);
}

static void test_keyring_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "k1",
        "k1:",
        ":" HEX1,
        "k1:" HEX1 "0",
        "k1:" HEX1 "00",
        "k1:0" HEX1,
        "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
        "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
        "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1 ",
        "k1:00:102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "k1:" HEX1 ":",
        "k1::" HEX1,
        " k1:" HEX1,
        "k1 :" HEX1,
        "k.1:" HEX1,
        "k/1:" HEX1,
        "k\xc3\xa9:" HEX1,
        "k1:" HEX1 " ",
        "k1:" HEX1 "\n",
        "0123456789abcdefg:" HEX1, /* 17 chars */
        "k1:" HEX1 ",",
        ",k1:" HEX1,
        "k1:" HEX1 ",,k2:" HEX2,
        "k1:" HEX1 ", k2:" HEX2,
        "k1:" HEX1 ";k2:" HEX2,
        "k1:" HEX1 ",k1:" HEX2,                                /* duplicate id */
        "a:" HEX1 ",b:" HEX2 ",c:" HEX3 ",d:" HEX4 ",e:" HEX1, /* more than JWT_MAX_KEYS */
        "k1:0000000000000000000000000000000000000000000000000000000000000000",
    };
    struct jwt_keyring r, before;

    memset(&r, 0xab, sizeof r);
    before = r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (jwt_keyring_parse(&r, bad[i]) != CD_E_INVALID_FIELD)
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_memory_equal(&r, &before, sizeof r); /* untouched on failure */
    }
    assert_int_equal(jwt_keyring_parse(&r, NULL), CD_E_INVALID_FIELD);
    assert_int_equal(jwt_keyring_parse(NULL, "k1:" HEX1), CD_E_INVALID_FIELD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_extremes),
        cmocka_unit_test(test_len_is_respected),
        cmocka_unit_test(test_sign_errors),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_within_leeway),
        cmocka_unit_test(test_future_iat),
        cmocka_unit_test(test_exp_not_after_iat),
        cmocka_unit_test(test_forged_baseline),
        cmocka_unit_test(test_tampered_every_byte),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_signature_high_bytes),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_other),
        cmocka_unit_test(test_header_members),
        cmocka_unit_test(test_unknown_kid),
        cmocka_unit_test(test_key_rotation),
        cmocka_unit_test(test_empty_ring),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_huge_token),
        cmocka_unit_test(test_duplicate_members),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_times_and_sid),
        cmocka_unit_test(test_claims_untouched_on_failure),
        cmocka_unit_test(test_keyring_good),
        cmocka_unit_test(test_keyring_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
