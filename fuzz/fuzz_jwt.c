/* fuzz_jwt.c - libFuzzer target for the JWT parser and verifier (src/auth/jwt.c).
 *
 * Byte 0 picks the mode, the rest is its input:
 *   0  a token as received: jwt_verify must refuse it (nobody but the harness knows the keys and
 *      the fuzzer cannot forge HMAC-SHA256), without crashing, whatever the bytes;
 *   1  header JSON and payload JSON separated by the first '\n': the harness encodes them and
 *      signs them correctly with the ring's keys, so that jwt_verify's header checks and claims
 *      parsing see arbitrary JSON; whatever it accepts is compared with what jansson reads;
 *   2  claims (sub, iat, exp, sid from the bytes) signed by jwt_sign: the token must verify to the
 *      same claims, and every single-byte change of it must be refused (each token has one
 *      accepted encoding);
 *   3  a key-ring spec for jwt_keyring_parse: an accepted ring holds 1-4 valid, distinct kids.
 */
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "util/status.h"
#include "fuzz_check.h"

#define NOW    1700000000
#define LEEWAY 30

static struct jwt_keyring ring;

static void init_once(void)
{
    static int done;
    if (done) return;
    done = 1;
    CHECK(sodium_init() >= 0);
    CHECK(jwt_keyring_parse(&ring, "k1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d"
                                   "1e1f,old:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766"
                                   "554433221100") == CD_OK);
}

static void check_claims(const struct jwt_claims *c)
{
    CHECK(c->sub > 0 && c->sid >= 0 && c->exp > c->iat);
    CHECK(c->iat <= NOW + LEEWAY && c->exp > NOW - LEEWAY);
}

static int verify(const char *tok, size_t len, struct jwt_claims *c)
{
    int rc = jwt_verify(&ring, tok, len, NOW, LEEWAY, c);
    CHECK(rc == CD_OK || rc == CD_E_UNAUTHORIZED || rc == CD_E_TOKEN_EXPIRED);
    if (rc == CD_OK) check_claims(c);
    return rc;
}

/* Encode header.payload, sign it with key k: the token a key holder would produce. */
static size_t sign_raw(char *out, size_t cap, const uint8_t *head, size_t hn, const uint8_t *body,
                       size_t bn, int k)
{
    const int v = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    size_t pos;

    if (sodium_base64_ENCODED_LEN(hn, v) + sodium_base64_ENCODED_LEN(bn, v) +
            sodium_base64_ENCODED_LEN(sizeof(mac), v) + 2 >
        cap)
        return 0;
    sodium_bin2base64(out, cap, head, hn, v);
    pos = strlen(out);
    out[pos++] = '.';
    sodium_bin2base64(out + pos, cap - pos, body, bn, v);
    pos += strlen(out + pos);
    crypto_auth_hmacsha256(mac, (const uint8_t *)out, pos, ring.keys[k].secret);
    out[pos++] = '.';
    sodium_bin2base64(out + pos, cap - pos, mac, sizeof(mac), v);
    return pos + strlen(out + pos);
}

/* Mode 1: what jwt_verify accepts must be what the JSON says. */
static void signed_json(const uint8_t *p, size_t n)
{
    const uint8_t *nl = memchr(p, '\n', n);
    char tok[4 * JWT_MAX_TOKEN];
    struct jwt_claims c;
    size_t len;
    json_t *h, *b;

    if (!nl) return;
    len =
        sign_raw(tok, sizeof(tok), p, (size_t)(nl - p), nl + 1, n - (size_t)(nl - p) - 1, p[0] & 1);
    if (len == 0) return;
    if (verify(tok, len, &c) != CD_OK) return;
    CHECK(len <= JWT_MAX_TOKEN);
    h = json_loadb((const char *)p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, NULL);
    b = json_loadb((const char *)nl + 1, n - (size_t)(nl - p) - 1, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(h) && json_is_object(b));
    CHECK(strcmp(json_string_value(json_object_get(h, "alg")), "HS256") == 0);
    CHECK(json_is_string(json_object_get(h, "kid")));
    {
        char sub[24];
        snprintf(sub, sizeof(sub), "%" PRId64, c.sub);
        CHECK(json_is_string(json_object_get(b, "sub")) &&
              strcmp(json_string_value(json_object_get(b, "sub")), sub) == 0);
        CHECK(json_integer_value(json_object_get(b, "iat")) == c.iat);
        CHECK(json_integer_value(json_object_get(b, "exp")) == c.exp);
        CHECK(json_object_get(b, "sid") == NULL ||
              json_integer_value(json_object_get(b, "sid")) == c.sid);
    }
    json_decref(h);
    json_decref(b);
}

static int64_t take64(const uint8_t **p, size_t *n)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | (*n ? **p : 0);
        if (*n) (*p)++, (*n)--;
    }
    return (int64_t)v;
}

/* Mode 2: sign, verify back, and no other encoding of any byte passes. */
static void roundtrip(const uint8_t *p, size_t n)
{
    struct jwt_claims in, out;
    char tok[JWT_MAX_TOKEN + 1];
    size_t len;
    int rc;

    in.sub = take64(&p, &n);
    in.iat = NOW - (take64(&p, &n) & 0xFFFFF);
    in.exp = in.iat + 1 + (take64(&p, &n) & 0xFFFFF);
    in.sid = take64(&p, &n);
    if (n) ring.active = p[0] % ring.n;
    rc = jwt_sign(&ring, &in, tok, sizeof(tok));
    ring.active = 0;
    if (in.sub <= 0 || in.sid < 0) {
        CHECK(rc == CD_E_INTERNAL);
        return;
    }
    CHECK(rc == CD_OK);
    len = strlen(tok);
    rc = verify(tok, len, &out);
    if (in.exp <= NOW - LEEWAY) {
        CHECK(rc == CD_E_TOKEN_EXPIRED);
        return;
    }
    CHECK(rc == CD_OK);
    CHECK(out.sub == in.sub && out.iat == in.iat && out.exp == in.exp && out.sid == in.sid);
    for (size_t i = 1; i + 1 < n && i < 64; i += 2) {
        size_t at = p[i] % len;
        char was = tok[at];
        if (p[i + 1] == (uint8_t)was) continue;
        tok[at] = (char)p[i + 1];
        if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "byte %zu of %.*s\n", at, (int)len, tok);
        CHECK(verify(tok, len, &out) != CD_OK);
        tok[at] = was;
    }
    CHECK(verify(tok, len - 1, &out) != CD_OK);
}

/* Mode 3: key-ring specs. */
static void keyring(const uint8_t *p, size_t n)
{
    struct jwt_keyring r;
    char *spec = malloc(n + 1);
    memcpy(spec, p, n);
    spec[n] = '\0';
    if (jwt_keyring_parse(&r, spec) == CD_OK) {
        CHECK(r.n >= 1 && r.n <= JWT_MAX_KEYS && r.active == 0);
        for (int i = 0; i < r.n; i++) {
            size_t kl = strnlen(r.keys[i].kid, sizeof(r.keys[i].kid));
            CHECK(kl >= 1 && kl <= JWT_KID_MAX);
            CHECK(strstr(spec, r.keys[i].kid) != NULL);
            for (int j = 0; j < i; j++)
                CHECK(strcmp(r.keys[i].kid, r.keys[j].kid) != 0);
        }
    }
    free(spec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jwt_claims c;

    if (size < 1) return 0;
    init_once();
    switch (data[0] & 3) {
    case 0:
        CHECK(verify((const char *)data + 1, size - 1, &c) != CD_OK);
        break;
    case 1:
        signed_json(data + 1, size - 1);
        break;
    case 2:
        roundtrip(data + 1, size - 1);
        break;
    case 3:
        keyring(data + 1, size - 1);
        break;
    }
    return 0;
}
