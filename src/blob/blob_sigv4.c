/* blob_sigv4.c - AWS Signature Version 4: canonical request, string to sign, signing key. */
#include "blob/blob_sigv4.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rbuf.h"

/* A growable string. */
struct sb {
    char *p;
    size_t n, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void hmac(unsigned char out[32], const unsigned char *key, size_t klen, const char *msg)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
    crypto_auth_hmacsha256_final(&st, out);
}

int sigv4_authorization(const struct sigv4_req *r, char *out, size_t cap)
{
    struct sb canon = {0}, signed_hdrs = {0}, sts = {0};
    unsigned char h[32], k[32], ktmp[32];
    char hex[65], date[9], scope[160], *ksecret;
    size_t slen = strlen(r->secret_key);
    int n;

    memcpy(date, r->amz_date, 8);
    date[8] = '\0';
    for (int i = 0; i < r->nheaders; i++) {
        if (i) sb_str(&signed_hdrs, ";");
        sb_str(&signed_hdrs, r->headers[i].name);
    }
    sb_str(&canon, r->method);
    sb_str(&canon, "\n");
    sb_str(&canon, r->path);
    sb_str(&canon, "\n");
    sb_str(&canon, r->query ? r->query : "");
    sb_str(&canon, "\n");
    for (int i = 0; i < r->nheaders; i++) {
        sb_str(&canon, r->headers[i].name);
        sb_str(&canon, ":");
        sb_str(&canon, r->headers[i].value);
        sb_str(&canon, "\n");
    }
    sb_str(&canon, "\n");
    sb_str(&canon, signed_hdrs.p ? signed_hdrs.p : "");
    sb_str(&canon, "\n");
    sb_str(&canon, r->payload_sha256);

    crypto_hash_sha256(h, (const unsigned char *)canon.p, canon.n);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, r->region, r->service);
    sb_str(&sts, "AWS4-HMAC-SHA256\n");
    sb_str(&sts, r->amz_date);
    sb_str(&sts, "\n");
    sb_str(&sts, scope);
    sb_str(&sts, "\n");
    sb_str(&sts, hex);

    ksecret = xmalloc(slen + 5);
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, r->secret_key, slen + 1);
    hmac(k, (const unsigned char *)ksecret, slen + 4, date);
    hmac(ktmp, k, 32, r->region);
    hmac(k, ktmp, 32, r->service);
    hmac(ktmp, k, 32, "aws4_request");
    hmac(h, ktmp, 32, sts.p);
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    sodium_memzero(ksecret, slen + 4);
    sodium_memzero(k, sizeof(k));
    sodium_memzero(ktmp, sizeof(ktmp));
    free(ksecret);

    n = snprintf(out, cap, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                 r->access_key, scope, signed_hdrs.p ? signed_hdrs.p : "", hex);
    free(canon.p);
    free(signed_hdrs.p);
    free(sts.p);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
