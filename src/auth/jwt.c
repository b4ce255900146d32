/* jwt.c - HS256 compact JWS, signed and verified with libsodium, parsed with jansson.
 *
 * Verification order matters: the shape of the token and the header (alg, kid) are checked
 * first, the signature second, and only a correctly signed payload is parsed for claims. Nothing
 * here allocates except jansson while it parses a header or payload; every buffer is bounded by
 * JWT_MAX_TOKEN.
 */
#include "auth/jwt.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "util/status.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define SIG_B64_LEN 43 /* base64url, no padding, of a 32-byte HMAC-SHA256 */
#define KEY_HEX_LEN (2 * JWT_SECRET_LEN)

/* ---- helpers ---- */

static int kid_char_ok(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

static int kid_valid(const char *kid, size_t len)
{
    if (len < 1 || len > JWT_KID_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (!kid_char_ok(kid[i])) return 0;
    return 1;
}

static int ring_valid(const struct jwt_keyring *ring)
{
    return ring != NULL && ring->n >= 1 && ring->n <= JWT_MAX_KEYS;
}

static const struct jwt_key *ring_find(const struct jwt_keyring *ring, const char *kid, size_t len)
{
    for (int i = 0; i < ring->n; i++) {
        const struct jwt_key *k = &ring->keys[i];
        if (strnlen(k->kid, sizeof k->kid) == len && memcmp(k->kid, kid, len) == 0) return k;
    }
    return NULL;
}

/* Append base64url(bin) to buf at *pos. 0, or -1 when it would not fit (sodium_bin2base64 aborts
 * the process on a short buffer, so the size is checked here first). */
static int b64_append(char *buf, size_t cap, size_t *pos, const void *bin, size_t len)
{
    size_t need = sodium_base64_ENCODED_LEN(len, B64_VARIANT); /* includes the NUL */
    if (need > cap - *pos) return -1;
    sodium_bin2base64(buf + *pos, cap - *pos, bin, len, B64_VARIANT);
    *pos += strlen(buf + *pos);
    return 0;
}

/* Decode one base64url segment. Padding, '+', '/', stray bytes and non-zero trailing bits all
 * fail, so each byte string has exactly one accepted encoding. The alphabet is checked here:
 * libsodium 1.0.18 decodes every byte >= 0x80 as '_' (63), which made a signature with a '_'
 * verify with any high byte in its place (found by fuzz/fuzz_jwt.c). 0 or -1. */
static int b64_decode(uint8_t *bin, size_t cap, size_t *out_len, const char *b64, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!kid_char_ok(b64[i])) return -1; /* the same set: [A-Za-z0-9_-] */
    return sodium_base642bin(bin, cap, b64, len, NULL, out_len, NULL, B64_VARIANT);
}

static int json_str_is(const json_t *v, const char *want)
{
    size_t n = strlen(want);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), want, n) == 0;
}

/* Parse a "sub" claim: canonical decimal digits of a positive int64 (no sign, no leading zero). */
static int parse_sub(const json_t *v, int64_t *out)
{
    const char *s;
    size_t len;
    int64_t x = 0;

    if (!json_is_string(v)) return -1;
    s = json_string_value(v);
    len = json_string_length(v);
    if (len < 1 || len > 19 || s[0] == '0') return -1;
    for (size_t i = 0; i < len; i++) {
        int d = s[i] - '0';
        if (d < 0 || d > 9) return -1;
        if (x > (INT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return b > 0 ? INT64_MIN : INT64_MAX;
    return r;
}

/* ---- signing ---- */

int jwt_sign(const struct jwt_keyring *ring, const struct jwt_claims *c, char *out, size_t cap)
{
    const struct jwt_key *key;
    char head[64], body[160];
    char tok[JWT_MAX_TOKEN + 1];
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    size_t pos = 0;
    int hn, bn;

    if (out != NULL && cap > 0) out[0] = '\0';
    if (out == NULL || !ring_valid(ring) || ring->active < 0 || ring->active >= ring->n)
        return CD_E_INTERNAL;
    key = &ring->keys[ring->active];
    if (!kid_valid(key->kid, strnlen(key->kid, sizeof key->kid))) return CD_E_INTERNAL;
    /* Never issue a token that jwt_verify would refuse. */
    if (c->sub <= 0 || c->sid < 0 || c->exp <= c->iat) return CD_E_INTERNAL;

    hn =
        snprintf(head, sizeof head, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", key->kid);
    bn = snprintf(body, sizeof body,
                  "{\"sub\":\"%" PRId64 "\",\"iat\":%" PRId64 ",\"exp\":%" PRId64
                  ",\"sid\":%" PRId64 "}",
                  c->sub, c->iat, c->exp, c->sid);
    if (hn < 0 || (size_t)hn >= sizeof head || bn < 0 || (size_t)bn >= sizeof body)
        return CD_E_INTERNAL;

    if (b64_append(tok, sizeof tok, &pos, head, (size_t)hn) != 0) return CD_E_INTERNAL;
    tok[pos++] = '.';
    if (b64_append(tok, sizeof tok, &pos, body, (size_t)bn) != 0) return CD_E_INTERNAL;
    crypto_auth_hmacsha256(mac, (const uint8_t *)tok, pos, key->secret);
    tok[pos++] = '.';
    if (b64_append(tok, sizeof tok, &pos, mac, sizeof mac) != 0) return CD_E_INTERNAL;

    if (pos >= cap) return CD_E_INTERNAL;
    memcpy(out, tok, pos + 1);
    return CD_OK;
}

/* ---- verification ---- */

/* Check the decoded header and pick the key it names. Only alg, typ and kid may appear. */
static const struct jwt_key *check_header(const struct jwt_keyring *ring, const uint8_t *buf,
                                          size_t len)
{
    const struct jwt_key *key = NULL;
    json_t *h, *alg, *typ, *kid;
    size_t known = 2;

    h = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (h == NULL || !json_is_object(h)) goto done;
    alg = json_object_get(h, "alg");
    typ = json_object_get(h, "typ");
    kid = json_object_get(h, "kid");
    if (!json_str_is(alg, "HS256")) goto done;
    if (typ != NULL) {
        if (!json_str_is(typ, "JWT")) goto done;
        known++;
    }
    if (!json_is_string(kid) || json_object_size(h) != known) goto done;
    key = ring_find(ring, json_string_value(kid), json_string_length(kid));
done:
    json_decref(h);
    return key;
}

/* Parse the claims of a payload whose signature has already been verified. */
static int parse_claims(const uint8_t *buf, size_t len, struct jwt_claims *out)
{
    json_t *p, *iat, *exp, *sid;
    int rc = CD_E_UNAUTHORIZED;

    p = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (p == NULL || !json_is_object(p)) goto done;
    if (parse_sub(json_object_get(p, "sub"), &out->sub) != 0) goto done;
    iat = json_object_get(p, "iat");
    exp = json_object_get(p, "exp");
    sid = json_object_get(p, "sid");
    if (!json_is_integer(iat) || !json_is_integer(exp)) goto done;
    out->iat = json_integer_value(iat);
    out->exp = json_integer_value(exp);
    out->sid = 0;
    if (sid != NULL) {
        if (!json_is_integer(sid) || json_integer_value(sid) < 0) goto done;
        out->sid = json_integer_value(sid);
    }
    rc = CD_OK;
done:
    json_decref(p);
    return rc;
}

int jwt_verify(const struct jwt_keyring *ring, const char *tok, size_t len, int64_t now,
               int64_t leeway, struct jwt_claims *c)
{
    uint8_t buf[JWT_MAX_TOKEN];
    uint8_t sig[crypto_auth_hmacsha256_BYTES], mac[crypto_auth_hmacsha256_BYTES];
    const char *d1, *d2;
    const struct jwt_key *key;
    struct jwt_claims cl;
    size_t n;

    if (!ring_valid(ring) || tok == NULL || len == 0 || len > JWT_MAX_TOKEN)
        return CD_E_UNAUTHORIZED;

    /* Shape: header "." payload "." signature, nothing else. */
    d1 = memchr(tok, '.', len);
    if (d1 == NULL) return CD_E_UNAUTHORIZED;
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
        return CD_E_UNAUTHORIZED;
    if (tok + len - (d2 + 1) != SIG_B64_LEN) return CD_E_UNAUTHORIZED;
    if (b64_decode(sig, sizeof sig, &n, d2 + 1, SIG_B64_LEN) != 0 || n != sizeof sig)
        return CD_E_UNAUTHORIZED;

    /* Header: pins the algorithm and names the key. */
    if (b64_decode(buf, sizeof buf, &n, tok, (size_t)(d1 - tok)) != 0) return CD_E_UNAUTHORIZED;
    key = check_header(ring, buf, n);
    if (key == NULL) return CD_E_UNAUTHORIZED;

    /* Signature over the bytes as received, before anything in the payload is looked at. */
    crypto_auth_hmacsha256(mac, (const uint8_t *)tok, (size_t)(d2 - tok), key->secret);
    if (sodium_memcmp(mac, sig, sizeof mac) != 0) return CD_E_UNAUTHORIZED;

    if (b64_decode(buf, sizeof buf, &n, d1 + 1, (size_t)(d2 - (d1 + 1))) != 0)
        return CD_E_UNAUTHORIZED;
    if (parse_claims(buf, n, &cl) != CD_OK) return CD_E_UNAUTHORIZED;

    if (leeway < 0) leeway = 0;
    if (cl.exp <= cl.iat) return CD_E_UNAUTHORIZED;
    if (cl.iat > sat_add(now, leeway)) return CD_E_UNAUTHORIZED;
    if (cl.exp <= sat_sub(now, leeway)) return CD_E_TOKEN_EXPIRED;
    *c = cl;
    return CD_OK;
}

/* ---- key ring ---- */

/* Parse one "kid:hex64" entry of len bytes into k. 0 or -1. */
static int parse_key(struct jwt_key *k, const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);
    size_t kid_len, bin_len;

    if (colon == NULL) return -1;
    kid_len = (size_t)(colon - s);
    if (!kid_valid(s, kid_len)) return -1;
    if (len - kid_len - 1 != KEY_HEX_LEN) return -1;
    if (sodium_hex2bin(k->secret, sizeof k->secret, colon + 1, KEY_HEX_LEN, NULL, &bin_len, NULL) !=
            0 ||
        bin_len != sizeof k->secret)
        return -1;
    if (sodium_is_zero(k->secret, sizeof k->secret)) return -1; /* an unset placeholder */
    memcpy(k->kid, s, kid_len);
    k->kid[kid_len] = '\0';
    return 0;
}

int jwt_keyring_parse(struct jwt_keyring *ring, const char *spec)
{
    struct jwt_keyring r;
    const char *s, *end;
    int rc = CD_E_INVALID_FIELD;

    if (ring == NULL || spec == NULL) return CD_E_INVALID_FIELD;
    memset(&r, 0, sizeof r);
    for (s = spec;; s = end + 1) {
        end = strchr(s, ',');
        if (end == NULL) end = s + strlen(s);
        if (r.n == JWT_MAX_KEYS) goto done;
        if (parse_key(&r.keys[r.n], s, (size_t)(end - s)) != 0) goto done;
        if (ring_find(&r, r.keys[r.n].kid, strlen(r.keys[r.n].kid)) != NULL) goto done;
        r.n++;
        if (*end == '\0') break;
    }
    r.active = 0;
    *ring = r;
    rc = CD_OK;
done:
    sodium_memzero(&r, sizeof r);
    return rc;
}
