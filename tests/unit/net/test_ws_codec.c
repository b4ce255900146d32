/* test_ws_codec.c - RFC 6455 codec: reader rules and close codes, reassembly, UTF-8, writer,
 * handshake key and SHA-1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/ws_codec.h"
#include "util/status.h"

#define FIN 0x80

/* ---- helpers ------------------------------------------------------------------------------ */

static uint32_t rng_state = 0x9E3779B9u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Encode a client frame: b0 is FIN|RSV|opcode; lenform 0 picks the minimal length encoding, 16 or
 * 64 forces an extended one. A NULL key sends the frame unmasked. Returns the frame's size. */
static size_t frame_ex(uint8_t *out, uint8_t b0, const uint8_t *key, const void *pl, size_t len,
                       int lenform)
{
    const uint8_t *src = pl;
    size_t h = 0;

    out[h++] = b0;
    if (lenform == 0 && len < 126) {
        out[h++] = (uint8_t)len;
    } else if (lenform != 64 && len <= 0xFFFF) {
        out[h++] = 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 127;
        for (int i = 0; i < 8; i++)
            out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (key) {
        out[1] |= 0x80;
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[h + i] = (uint8_t)(src[i] ^ (key ? key[i & 3] : 0));
    return h + len;
}

static const uint8_t KEY[4] = {0x37, 0xFA, 0x21, 0x3D};

/* Masked frame with minimal length encoding. */
static size_t frame(uint8_t *out, uint8_t b0, const void *pl, size_t len)
{
    return frame_ex(out, b0, KEY, pl, len, 0);
}

struct msg {
    int op;
    uint8_t *data;
    size_t len;
};

/* What the callback saw. */
struct rec {
    struct msg m[32];
    int n;
    int stop_after; /* return nonzero from the callback after this many messages (0: never) */
    const uint8_t *buf_lo; /* zero-copy check: where the fed buffer lives */
    const uint8_t *buf_hi; /*   ... */
    int in_buf[32];        /* message i was delivered from inside [buf_lo, buf_hi) */
};

static int rec_cb(void *ud, int op, uint8_t *data, size_t len)
{
    struct rec *rc = ud;
    struct msg *m;

    assert_true(rc->n < 32);
    assert_non_null(data);
    m = &rc->m[rc->n];
    m->op = op;
    m->len = len;
    m->data = malloc(len + 1);
    assert_non_null(m->data);
    memcpy(m->data, data, len);
    m->data[len] = 0;
    rc->in_buf[rc->n] = data >= rc->buf_lo && data + len <= rc->buf_hi;
    rc->n++;
    return rc->stop_after && rc->n >= rc->stop_after;
}

static void rec_free(struct rec *rc)
{
    for (int i = 0; i < rc->n; i++)
        free(rc->m[i].data);
    memset(rc, 0, sizeof(*rc));
}

static const struct ws_limits LIM = {.max_frame = 1 << 20, .max_message = 4 << 20};

/* A connection as the server keeps it: the unconsumed tail stays in `pend` and new bytes are
 * appended to it before the next ws_reader_feed. */
struct conn_sim {
    struct ws_reader r;
    struct ws_limits lim;
    struct rec rec;
    uint8_t *pend;
    size_t n, cap;
    uint16_t code;
    int failed;
};

static void sim_init(struct conn_sim *s, const struct ws_limits *lim)
{
    memset(s, 0, sizeof(*s));
    s->lim = *lim;
}

static void sim_push(struct conn_sim *s, const uint8_t *p, size_t n)
{
    ssize_t used;

    assert_false(s->failed);
    if (n == 0) return;
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2 + 16;
        s->pend = realloc(s->pend, s->cap);
        assert_non_null(s->pend);
    }
    memcpy(s->pend + s->n, p, n);
    s->n += n;
    do {
        used = ws_reader_feed(&s->r, &s->lim, s->pend, s->n, rec_cb, &s->rec, &s->code);
        if (used < 0) {
            s->failed = 1;
            return;
        }
        assert_true((size_t)used <= s->n);
        memmove(s->pend, s->pend + used, s->n - (size_t)used);
        s->n -= (size_t)used;
    } while (used > 0 && s->n > 0);
}

static void sim_free(struct conn_sim *s)
{
    rec_free(&s->rec);
    ws_reader_reset(&s->r);
    free(s->pend);
}

/* Feed one complete buffer in one call; returns ws_reader_feed's result. */
static ssize_t feed_once(struct ws_reader *r, const struct ws_limits *lim, uint8_t *buf, size_t len,
                         struct rec *rc, uint16_t *code)
{
    rc->buf_lo = buf;
    rc->buf_hi = buf + len;
    return ws_reader_feed(r, lim, buf, len, rec_cb, rc, code);
}

/* Expect `bytes` to be refused with `want` (fed in one call, then also byte by byte, which
 * checks that the error is found as soon as the offending byte is there). */
static void expect_close(const struct ws_limits *lim, const uint8_t *bytes, size_t n, uint16_t want)
{
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    uint8_t *copy = malloc(n ? n : 1);
    struct conn_sim s;

    memcpy(copy, bytes, n);
    assert_int_equal(feed_once(&r, lim, copy, n, &rc, &code), -1);
    assert_int_equal(code, want);
    assert_null(r.msg); /* the error path frees the reassembly buffer */
    rec_free(&rc);
    free(copy);

    sim_init(&s, lim);
    for (size_t i = 0; i < n && !s.failed; i++)
        sim_push(&s, bytes + i, 1);
    assert_true(s.failed);
    assert_int_equal(s.code, want);
    sim_free(&s);
}

/* ---- SHA-1 and the handshake key ---------------------------------------------------------- */

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void check_sha1(const void *data, size_t len, const char *want)
{
    uint8_t d[20];
    char h[41];
    ws_sha1(data, len, d);
    hex(d, 20, h);
    assert_string_equal(h, want);
}

static void test_sha1_vectors(void **state)
{
    char *a;

    check_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    check_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
               "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    check_sha1(a, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    /* Padding boundaries: 55 fits one block, 56..63 need two, 64 is exactly one full block. */
    check_sha1(a, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    check_sha1(a, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
    check_sha1(a, 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
    check_sha1(a, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
    check_sha1(a, 119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56");
    check_sha1(a, 120, "f34c1488385346a55709ba056ddd08280dd4c6d6");
    free(a);
}

static void test_accept_key_rfc(void **state)
{
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";

    /* RFC 6455 section 1.3 (also what `sha1sum | base64` gives for key + GUID). */
    memset(out, 'x', sizeof(out));
    assert_int_equal(ws_accept_key(key, strlen(key), out), CD_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_key_invalid(void **state)
{
    static const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",     /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===",   /* 25 chars */
        "dGhlIHNhbXBsZSBub25jZQxy",    /* 24 chars but 18 bytes */
        "dGhlIHNhbXBsZSBub25j!Q==",    /* not base64 */
        "dGhlIHNhbXBsZSBub25j ZQ=",    /* space inside */
        "dGhlIHNhbXBsZSBub25jZQ-_",    /* URL-safe alphabet */
        "dGhlIHNhbXBsZSBub2=jZQ==",    /* padding in the middle */
        "dGhlIHNhbXBsZSBub25j\xc1Q==", /* a high byte (libsodium 1.0.18 reads it as '/') */
        "\x80GhlIHNhbXBsZSBub25jZQ==",
    };
    char out[29];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ws_accept_key(bad[i], strlen(bad[i]), out), CD_E_BAD_REQUEST);
    /* The length is the caller's: a valid key followed by junk it did not pass is fine. */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==junk", 24, out), CD_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ---- masking and length encodings --------------------------------------------------------- */

static void test_mask_lengths(void **state)
{
    static const size_t lens[] = {0,  1,  2,  3,   4,   5,   7,     8,    9,
                                  15, 16, 17, 125, 126, 127, 65535, 65536};
    static const size_t hdr[] = {6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 8, 8, 8, 14};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int round = 0; round < 4; round++) {
            size_t len = lens[i];
            uint8_t key[4], *pl = malloc(len + 1), *buf = malloc(len + 14);
            struct ws_reader r = {0};
            struct rec rc = {0};
            uint16_t code = 0;
            size_t n;
            uint32_t k = rng();

            memcpy(key, &k, 4);
            for (size_t j = 0; j < len; j++)
                pl[j] = (uint8_t)rng();
            n = frame_ex(buf, FIN | WS_OP_BINARY, key, pl, len, 0);
            assert_int_equal(n, hdr[i] + len);
            assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
            assert_int_equal(rc.n, 1);
            assert_int_equal(rc.m[0].op, WS_OP_BINARY);
            assert_int_equal(rc.m[0].len, len);
            assert_memory_equal(rc.m[0].data, pl, len);
            assert_true(rc.in_buf[0]); /* unfragmented: delivered in place */
            assert_null(r.msg);
            rec_free(&rc);
            free(pl);
            free(buf);
        }
    }
}

static void test_nonminimal_lengths_accepted(void **state)
{
    uint8_t buf[64];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n;

    n = frame_ex(buf, FIN | WS_OP_TEXT, KEY, "hi", 2, 16);
    assert_int_equal(buf[1], 0x80 | 126);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    n = frame_ex(buf, FIN | WS_OP_TEXT, KEY, "hey", 3, 64);
    assert_int_equal(buf[1], 0x80 | 127);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(rc.n, 2);
    assert_string_equal((char *)rc.m[0].data, "hi");
    assert_string_equal((char *)rc.m[1].data, "hey");
    rec_free(&rc);
}

static void test_len64_msb_is_protocol_error(void **state)
{
    uint8_t hdr[14] = {FIN | WS_OP_BINARY, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4};
    struct ws_limits big = {.max_frame = UINT64_MAX, .max_message = UINT64_MAX};

    expect_close(&big, hdr, sizeof(hdr), WS_CLOSE_PROTOCOL);
    expect_close(&LIM, hdr, sizeof(hdr), WS_CLOSE_PROTOCOL);
}

static void test_incomplete_returns_zero(void **state)
{
    uint8_t buf[300], copy[300];
    uint8_t pl[200];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n;

    memset(pl, 'x', sizeof(pl));
    n = frame(buf, FIN | WS_OP_TEXT, pl, sizeof(pl));
    for (size_t k = 0; k < n; k++) {
        memcpy(copy, buf, n);
        assert_int_equal(feed_once(&r, &LIM, copy, k, &rc, &code), 0);
        assert_memory_equal(copy, buf, n); /* an incomplete frame is left untouched */
    }
    assert_int_equal(rc.n, 0);
}

/* ---- streams split across reads ----------------------------------------------------------- */

/* A stream exercising every frame kind; expected deliveries in `want`. */
static size_t build_stream(uint8_t *out, struct msg *want, int *nwant)
{
    static uint8_t bin[300];
    static const uint8_t close_pl[] = {0x03, 0xE8, 'b', 'y', 'e'};
    size_t n = 0;
    int w = 0;

    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7);
    n += frame(out + n, FIN | WS_OP_TEXT, "hello", 5);
    want[w++] = (struct msg){WS_OP_TEXT, (uint8_t *)"hello", 5};
    n += frame(out + n, FIN | WS_OP_PING, "p1", 2);
    want[w++] = (struct msg){WS_OP_PING, (uint8_t *)"p1", 2};
    /* "caf\xC3\xA9 \xE2\x82\xAC!" in three fragments, splitting both multi-byte characters */
    n += frame(out + n, WS_OP_TEXT, "caf\xC3", 4);
    n += frame(out + n, FIN | WS_OP_PONG, "", 0);
    want[w++] = (struct msg){WS_OP_PONG, (uint8_t *)"", 0};
    n += frame(out + n, WS_OP_CONT, "\xA9 \xE2", 3);
    n += frame(out + n, FIN | WS_OP_CONT, "\x82\xAC!", 3);
    want[w++] = (struct msg){WS_OP_TEXT, (uint8_t *)"caf\xC3\xA9 \xE2\x82\xAC!", 10};
    n += frame(out + n, FIN | WS_OP_BINARY, bin, sizeof(bin));
    want[w++] = (struct msg){WS_OP_BINARY, bin, sizeof(bin)};
    n += frame(out + n, FIN | WS_OP_CLOSE, close_pl, sizeof(close_pl));
    want[w++] = (struct msg){WS_OP_CLOSE, (uint8_t *)close_pl, sizeof(close_pl)};
    *nwant = w;
    return n;
}

static void check_rec(const struct rec *rc, const struct msg *want, int nwant)
{
    assert_int_equal(rc->n, nwant);
    for (int i = 0; i < nwant; i++) {
        assert_int_equal(rc->m[i].op, want[i].op);
        assert_int_equal(rc->m[i].len, want[i].len);
        assert_memory_equal(rc->m[i].data, want[i].data, want[i].len);
    }
}

static void test_split_at_every_boundary(void **state)
{
    uint8_t stream[512];
    struct msg want[16];
    int nwant;
    size_t n = build_stream(stream, want, &nwant);

    for (size_t k = 0; k <= n; k++) {
        struct conn_sim s;
        sim_init(&s, &LIM);
        sim_push(&s, stream, k);
        sim_push(&s, stream + k, n - k);
        assert_false(s.failed);
        assert_int_equal(s.n, 0);
        check_rec(&s.rec, want, nwant);
        assert_null(s.r.msg);
        sim_free(&s);
    }
}

static void test_split_byte_by_byte(void **state)
{
    uint8_t stream[512];
    struct msg want[16];
    int nwant;
    size_t n = build_stream(stream, want, &nwant);
    struct conn_sim s;

    sim_init(&s, &LIM);
    for (size_t i = 0; i < n; i++)
        sim_push(&s, stream + i, 1);
    assert_false(s.failed);
    check_rec(&s.rec, want, nwant);
    sim_free(&s);
}

static void test_split_random_chunks(void **state)
{
    uint8_t stream[512];
    struct msg want[16];
    int nwant;
    size_t n = build_stream(stream, want, &nwant);

    for (int round = 0; round < 200; round++) {
        struct conn_sim s;
        size_t i = 0;
        sim_init(&s, &LIM);
        while (i < n) {
            size_t c = 1 + rng() % 40;
            if (c > n - i) c = n - i;
            sim_push(&s, stream + i, c);
            i += c;
        }
        assert_false(s.failed);
        check_rec(&s.rec, want, nwant);
        sim_free(&s);
    }
}

/* ---- fragmentation ------------------------------------------------------------------------ */

static void test_fragmentation_with_interleaved_control(void **state)
{
    uint8_t buf[256];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n = 0, a;

    n += frame(buf + n, WS_OP_TEXT, "Hel", 3);
    n += frame(buf + n, FIN | WS_OP_PING, "ping!", 5);
    a = n;
    n += frame(buf + n, WS_OP_CONT, "lo ", 3);
    n += frame(buf + n, FIN | WS_OP_PONG, "pong", 4);
    n += frame(buf + n, WS_OP_CONT, "", 0);
    n += frame(buf + n, FIN | WS_OP_CONT, "world", 5);

    /* The ping is delivered at once, while the message is still open. */
    assert_int_equal(feed_once(&r, &LIM, buf, a, &rc, &code), (ssize_t)a);
    assert_int_equal(rc.n, 1);
    assert_int_equal(rc.m[0].op, WS_OP_PING);
    assert_string_equal((char *)rc.m[0].data, "ping!");
    assert_int_equal(r.msg_op, WS_OP_TEXT);
    assert_non_null(r.msg);
    assert_int_equal(r.msg_len, 3);

    assert_int_equal(feed_once(&r, &LIM, buf + a, n - a, &rc, &code), (ssize_t)(n - a));
    assert_int_equal(rc.n, 3);
    assert_int_equal(rc.m[1].op, WS_OP_PONG);
    assert_int_equal(rc.m[2].op, WS_OP_TEXT);
    assert_int_equal(rc.m[2].len, 11);
    assert_string_equal((char *)rc.m[2].data, "Hello world");
    assert_false(rc.in_buf[2]); /* reassembled, not in place */
    /* Completed: no heap held, ready for the next message. */
    assert_null(r.msg);
    assert_int_equal(r.msg_op, 0);
    assert_int_equal(r.msg_len, 0);
    assert_int_equal(r.msg_cap, 0);
    rec_free(&rc);
}

static void test_fragmented_binary_and_empty(void **state)
{
    uint8_t buf[128];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n = 0;

    n += frame(buf + n, WS_OP_BINARY, "\xFF\x00", 2);
    n += frame(buf + n, FIN | WS_OP_CONT, "\xFE", 1);
    n += frame(buf + n, WS_OP_TEXT, "", 0);
    n += frame(buf + n, FIN | WS_OP_CONT, "", 0);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(rc.n, 2);
    assert_int_equal(rc.m[0].op, WS_OP_BINARY);
    assert_int_equal(rc.m[0].len, 3);
    assert_memory_equal(rc.m[0].data, "\xFF\x00\xFE", 3);
    assert_int_equal(rc.m[1].op, WS_OP_TEXT);
    assert_int_equal(rc.m[1].len, 0);
    assert_null(r.msg);
    rec_free(&rc);
}

static void test_callback_stop(void **state)
{
    uint8_t buf[64];
    struct ws_reader r = {0};
    struct rec rc = {.stop_after = 1};
    uint16_t code = 0;
    size_t a, n;

    a = frame(buf, FIN | WS_OP_TEXT, "one", 3);
    n = a + frame(buf + a, FIN | WS_OP_TEXT, "two", 3);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)a);
    assert_int_equal(rc.n, 1);
    rc.stop_after = 0;
    assert_int_equal(feed_once(&r, &LIM, buf + a, n - a, &rc, &code), (ssize_t)(n - a));
    assert_int_equal(rc.n, 2);
    assert_string_equal((char *)rc.m[1].data, "two");
    rec_free(&rc);

    /* Stopping on the last fragment still frees the reassembly buffer. */
    n = frame(buf, WS_OP_TEXT, "a", 1);
    n += frame(buf + n, FIN | WS_OP_CONT, "b", 1);
    a = n;
    n += frame(buf + n, FIN | WS_OP_TEXT, "c", 1);
    rc.stop_after = 1;
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)a);
    assert_null(r.msg);
    assert_string_equal((char *)rc.m[0].data, "ab");
    rec_free(&rc);
}

static void test_reset(void **state)
{
    uint8_t buf[64];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n = frame(buf, WS_OP_TEXT, "partial", 7);

    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_non_null(r.msg);
    ws_reader_reset(&r);
    assert_null(r.msg);
    assert_int_equal(r.msg_op, 0);
    /* Reusable: a continuation is now out of place, a new message is fine. */
    n = frame(buf, FIN | WS_OP_TEXT, "new", 3);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(rc.n, 1);
    ws_reader_reset(&r);
    ws_reader_reset(&r); /* idempotent */
    rec_free(&rc);
}

/* ---- protocol errors ---------------------------------------------------------------------- */

static void test_unmasked_frame(void **state)
{
    uint8_t buf[32];
    size_t n = frame_ex(buf, FIN | WS_OP_TEXT, NULL, "hi", 2, 0);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    n = frame_ex(buf, FIN | WS_OP_PING, NULL, "", 0, 0);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
}

static void test_rsv_bits(void **state)
{
    static const uint8_t rsv[] = {0x40, 0x20, 0x10, 0x70};
    uint8_t buf[32];

    for (size_t i = 0; i < sizeof(rsv); i++) {
        size_t n = frame(buf, (uint8_t)(FIN | rsv[i] | WS_OP_TEXT), "hi", 2);
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
        n = frame(buf, (uint8_t)(FIN | rsv[i] | WS_OP_PING), "", 0);
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    }
}

static void test_unknown_opcodes(void **state)
{
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    uint8_t buf[32];

    for (size_t i = 0; i < sizeof(ops); i++) {
        size_t n = frame(buf, (uint8_t)(FIN | ops[i]), "x", 1);
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
        n = frame(buf, ops[i], "x", 1);
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    }
}

static void test_control_frame_rules(void **state)
{
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    uint8_t buf[256], pl[126];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;

    memset(pl, 'x', sizeof(pl));
    pl[0] = 0x03; /* close code 1000 for the close frames */
    pl[1] = 0xE8;
    for (size_t i = 0; i < sizeof(ops); i++) {
        size_t n = frame(buf, ops[i], "", 0); /* no FIN */
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
        n = frame(buf, (uint8_t)(FIN | ops[i]), pl, 126); /* 16-bit length */
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
        n = frame_ex(buf, (uint8_t)(FIN | ops[i]), KEY, pl, 5, 16); /* small but extended */
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
        n = frame(buf, (uint8_t)(FIN | ops[i]), pl, 125); /* the maximum is fine */
        assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    }
    assert_int_equal(rc.n, 3);
    rec_free(&rc);
}

static void test_continuation_rules(void **state)
{
    uint8_t buf[64];
    size_t n;

    n = frame(buf, FIN | WS_OP_CONT, "x", 1); /* nothing to continue */
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    n = frame(buf, WS_OP_CONT, "x", 1);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);

    n = frame(buf, WS_OP_TEXT, "a", 1); /* new data message while one is open */
    n += frame(buf + n, FIN | WS_OP_TEXT, "b", 1);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    n = frame(buf, WS_OP_BINARY, "a", 1);
    n += frame(buf + n, WS_OP_BINARY, "b", 1);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    n = frame(buf, WS_OP_TEXT, "a", 1);
    n += frame(buf + n, FIN | WS_OP_BINARY, "b", 1);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);

    n = frame(buf, WS_OP_TEXT, "a", 1); /* after completion, a continuation is orphaned again */
    n += frame(buf + n, FIN | WS_OP_CONT, "b", 1);
    n += frame(buf + n, FIN | WS_OP_CONT, "c", 1);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
}

static void test_frame_too_big(void **state)
{
    const struct ws_limits lim = {.max_frame = 100, .max_message = 1000};
    uint8_t buf[256], pl[200];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n;

    memset(pl, 'y', sizeof(pl));
    n = frame(buf, FIN | WS_OP_TEXT, pl, 100);
    assert_int_equal(feed_once(&r, &lim, buf, n, &rc, &code), (ssize_t)n);
    n = frame(buf, FIN | WS_OP_TEXT, pl, 101);
    expect_close(&lim, buf, n, WS_CLOSE_TOO_BIG);
    /* Refused from the header alone: the payload is never waited for. */
    assert_int_equal(feed_once(&r, &lim, buf, 4, &rc, &code), -1);
    assert_int_equal(code, WS_CLOSE_TOO_BIG);
    n = frame(buf, WS_OP_TEXT, pl, 50);
    n += frame(buf + n, FIN | WS_OP_CONT, pl, 101);
    expect_close(&lim, buf, n, WS_CLOSE_TOO_BIG);
    /* A 64-bit length far beyond any limit. */
    {
        uint8_t h[14] = {FIN | WS_OP_BINARY, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4};
        expect_close(&lim, h, sizeof(h), WS_CLOSE_TOO_BIG);
    }
    rec_free(&rc);
}

static void test_message_too_big(void **state)
{
    const struct ws_limits lim = {.max_frame = 1000, .max_message = 1500};
    uint8_t *pl = malloc(2000), *buf = malloc(8000);
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n, a;

    memset(pl, 'z', 2000);
    /* Unfragmented message over max_message (frame limit raised so only the message limit hits). */
    {
        const struct ws_limits wide = {.max_frame = 5000, .max_message = 1500};
        n = frame(buf, FIN | WS_OP_BINARY, pl, 1501);
        expect_close(&wide, buf, n, WS_CLOSE_TOO_BIG);
        n = frame(buf, FIN | WS_OP_BINARY, pl, 1500);
        assert_int_equal(feed_once(&r, &wide, buf, n, &rc, &code), (ssize_t)n);
    }
    /* Reassembly grows geometrically but never beyond max_message. */
    n = frame(buf, WS_OP_TEXT, pl, 10);
    assert_int_equal(feed_once(&r, &lim, buf, n, &rc, &code), (ssize_t)n);
    assert_true(r.msg_cap >= 10 && r.msg_cap <= 1500);
    n = frame(buf, WS_OP_CONT, pl, 1000);
    assert_int_equal(feed_once(&r, &lim, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(r.msg_len, 1010);
    assert_true(r.msg_cap >= 1010 && r.msg_cap <= 1500);
    n = frame(buf, FIN | WS_OP_CONT, pl, 490);
    assert_int_equal(feed_once(&r, &lim, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(rc.n, 2);
    assert_int_equal(rc.m[1].len, 1500);
    assert_null(r.msg);

    /* One byte over, in the final fragment: refused from its header. */
    n = frame(buf, WS_OP_TEXT, pl, 1000);
    a = n;
    n += frame(buf + n, FIN | WS_OP_CONT, pl, 501);
    expect_close(&lim, buf, n, WS_CLOSE_TOO_BIG);
    assert_int_equal(feed_once(&r, &lim, buf, a + 4, &rc, &code), -1);
    assert_int_equal(code, WS_CLOSE_TOO_BIG);
    assert_null(r.msg);
    /* Over in a middle fragment. */
    n = frame(buf, WS_OP_TEXT, pl, 1000);
    n += frame(buf + n, WS_OP_CONT, pl, 400);
    n += frame(buf + n, WS_OP_CONT, pl, 101);
    expect_close(&lim, buf, n, WS_CLOSE_TOO_BIG);
    rec_free(&rc);
    free(pl);
    free(buf);
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

struct u8case {
    const char *s;
    size_t n;
    int valid;
};

#define U8(lit, v)                                                                                 \
    {                                                                                              \
        lit, sizeof(lit) - 1, v                                                                    \
    }
static const struct u8case u8cases[] = {
    U8("", 1),
    U8("plain ASCII, long enough to take the 8-byte path", 1),
    U8("\x00\x7F", 1),
    U8("\xC2\x80", 1),         /* U+0080 */
    U8("\xC3\xA9", 1),         /* é */
    U8("\xDF\xBF", 1),         /* U+07FF */
    U8("\xE0\xA0\x80", 1),     /* U+0800 */
    U8("\xE2\x82\xAC", 1),     /* € */
    U8("\xED\x9F\xBF", 1),     /* U+D7FF, last before the surrogates */
    U8("\xEE\x80\x80", 1),     /* U+E000, first after */
    U8("\xEF\xBF\xBF", 1),     /* U+FFFF */
    U8("\xF0\x90\x80\x80", 1), /* U+10000 */
    U8("\xF0\x9D\x84\x9E", 1), /* 𝄞 */
    U8("\xF3\xBF\xBF\xBF", 1), /* U+FFFFF */
    U8("\xF4\x8F\xBF\xBF", 1), /* U+10FFFF, the last code point */
    U8("abc\xE2\x82\xAC"
       "defghijk\xF0\x9F\x98\x80z",
       1),
    U8("\x80", 0), /* lone continuation */
    U8("\xBF", 0),
    U8("\xC0\x80", 0),         /* overlong NUL */
    U8("\xC1\xBF", 0),         /* overlong */
    U8("\xE0\x80\x80", 0),     /* overlong 3-byte */
    U8("\xE0\x9F\xBF", 0),     /* overlong U+07FF */
    U8("\xF0\x80\x80\x80", 0), /* overlong 4-byte */
    U8("\xF0\x8F\xBF\xBF", 0), /* overlong U+FFFF */
    U8("\xED\xA0\x80", 0),     /* U+D800 surrogate */
    U8("\xED\xBF\xBF", 0),     /* U+DFFF surrogate */
    U8("\xF4\x90\x80\x80", 0), /* U+110000 */
    U8("\xF5\x80\x80\x80", 0),
    U8("\xFE", 0),
    U8("\xFF", 0),
    U8("\xC3", 0), /* truncated */
    U8("\xE2\x82", 0),
    U8("\xF0\x9D\x84", 0),
    U8("\xC3\x41", 0), /* continuation missing */
    U8("\xE2\x82\x41", 0),
    U8("\xE2\x82\xAC\xAC", 0), /* one continuation too many */
};

static void test_utf8_valid_cases(void **state)
{
    for (size_t i = 0; i < sizeof(u8cases) / sizeof(u8cases[0]); i++) {
        const struct u8case *c = &u8cases[i];
        if (ws_utf8_valid((const uint8_t *)c->s, c->n) != c->valid)
            fail_msg("case %zu: expected %s", i, c->valid ? "valid" : "invalid");
    }
}

/* The ASCII fast path must not skip a bad byte or a lead byte at any offset. */
static void test_utf8_fast_path_offsets(void **state)
{
    uint8_t buf[80];

    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            memset(buf, 'a', sizeof(buf));
            buf[pos] = 0xFF;
            assert_false(ws_utf8_valid(buf, len));
            buf[pos] = 0xC3; /* truncated if at the end, otherwise followed by 'a' */
            assert_false(ws_utf8_valid(buf, len));
            if (pos + 1 < len) {
                buf[pos + 1] = 0xA9;
                assert_true(ws_utf8_valid(buf, len));
            }
        }
    }
}

static void test_utf8_in_text_messages(void **state)
{
    uint8_t buf[128];

    for (size_t i = 0; i < sizeof(u8cases) / sizeof(u8cases[0]); i++) {
        const struct u8case *c = &u8cases[i];
        size_t n = frame(buf, FIN | WS_OP_TEXT, c->s, c->n);
        if (c->valid) {
            struct ws_reader r = {0};
            struct rec rc = {0};
            uint16_t code = 0;
            assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
            assert_int_equal(rc.n, 1);
            rec_free(&rc);
        } else {
            expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
        }
        /* Binary messages are not checked: the caller decides what to do with them. */
        if (!c->valid) {
            struct ws_reader r = {0};
            struct rec rc = {0};
            uint16_t code = 0;
            n = frame(buf, FIN | WS_OP_BINARY, c->s, c->n);
            assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
            assert_int_equal(rc.m[0].op, WS_OP_BINARY);
            rec_free(&rc);
        }
    }
}

/* Every valid multi-byte sequence split at every point across two or more fragments. */
static void test_utf8_split_across_fragments(void **state)
{
    static const char *seqs[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9D\x84\x9E",
                                 "\xF4\x8F\xBF\xBF"};
    uint8_t buf[64];

    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        size_t len = strlen(seqs[i]);
        for (size_t cut = 1; cut < len; cut++) {
            struct ws_reader r = {0};
            struct rec rc = {0};
            uint16_t code = 0;
            size_t n = frame(buf, WS_OP_TEXT, seqs[i], cut);
            n += frame(buf + n, FIN | WS_OP_CONT, seqs[i] + cut, len - cut);
            assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
            assert_int_equal(rc.n, 1);
            assert_memory_equal(rc.m[0].data, seqs[i], len);
            rec_free(&rc);
        }
        /* One byte per fragment. */
        {
            struct ws_reader r = {0};
            struct rec rc = {0};
            uint16_t code = 0;
            size_t n = 0;
            for (size_t j = 0; j < len; j++)
                n += frame(buf + n,
                           (uint8_t)((j ? WS_OP_CONT : WS_OP_TEXT) | (j == len - 1 ? FIN : 0)),
                           seqs[i] + j, 1);
            assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
            assert_int_equal(rc.n, 1);
            rec_free(&rc);
        }
    }
}

static void test_utf8_invalid_across_fragments(void **state)
{
    uint8_t buf[64];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n, a;

    /* E0 then 80 80: overlong, only visible once the second fragment arrives. */
    n = frame(buf, WS_OP_TEXT, "ok\xE0", 3);
    a = n;
    n += frame(buf + n, FIN | WS_OP_CONT, "\x80\x80", 2);
    assert_int_equal(feed_once(&r, &LIM, buf, a, &rc, &code), (ssize_t)a); /* fine so far */
    assert_int_equal(feed_once(&r, &LIM, buf + a, n - a, &rc, &code), -1);
    assert_int_equal(code, WS_CLOSE_INVALID_DATA);
    assert_null(r.msg);
    /* ED then A0 80: a surrogate split across fragments. */
    n = frame(buf, WS_OP_TEXT, "\xED", 1);
    n += frame(buf + n, FIN | WS_OP_CONT, "\xA0\x80", 2);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
    /* Rejected mid-message: the first fragment alone is enough, the rest never has to come. */
    n = frame(buf, WS_OP_TEXT, "bad\xFF", 4);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
    n = frame(buf, WS_OP_TEXT, "a", 1);
    n += frame(buf + n, WS_OP_CONT, "\xF4\x90", 2);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
    /* Incomplete sequence when the message ends. */
    n = frame(buf, WS_OP_TEXT, "abc", 3);
    n += frame(buf + n, FIN | WS_OP_CONT, "\xE2\x82", 2);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
    n = frame(buf, WS_OP_TEXT, "\xF0\x9D", 2);
    n += frame(buf + n, FIN | WS_OP_CONT, "", 0);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
    /* A binary message split the same way is delivered as is. */
    n = frame(buf, WS_OP_BINARY, "\xED", 1);
    n += frame(buf + n, FIN | WS_OP_CONT, "\xA0\x80", 2);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(rc.n, 1);
    assert_int_equal(rc.m[0].op, WS_OP_BINARY);
    rec_free(&rc);
}

/* ---- close frames ------------------------------------------------------------------------- */

static void close_payload(uint8_t *pl, unsigned code)
{
    pl[0] = (uint8_t)(code >> 8);
    pl[1] = (uint8_t)code;
}

static void test_close_payload_validation(void **state)
{
    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1013, 1014, 3000, 3999, 4000, 4008, 4999};
    static const unsigned bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 6000, 65535};
    uint8_t buf[256], pl[130];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t n;

    n = frame(buf, FIN | WS_OP_CLOSE, "", 0); /* no status at all is fine */
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_int_equal(rc.m[0].op, WS_OP_CLOSE);
    assert_int_equal(rc.m[0].len, 0);
    rec_free(&rc);

    n = frame(buf, FIN | WS_OP_CLOSE, "\x03", 1);
    expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        close_payload(pl, ok[i]);
        n = frame(buf, FIN | WS_OP_CLOSE, pl, 2);
        assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
        assert_int_equal(rc.m[0].len, 2);
        assert_memory_equal(rc.m[0].data, pl, 2);
        rec_free(&rc);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        close_payload(pl, bad[i]);
        n = frame(buf, FIN | WS_OP_CLOSE, pl, 2);
        expect_close(&LIM, buf, n, WS_CLOSE_PROTOCOL);
    }

    close_payload(pl, 1000);
    memcpy(pl + 2, "au revoir \xE2\x82\xAC", 13);
    n = frame(buf, FIN | WS_OP_CLOSE, pl, 15);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    assert_memory_equal(rc.m[0].data, pl, 15);
    rec_free(&rc);

    memcpy(pl + 2, "bad \xC0\x80", 6);
    n = frame(buf, FIN | WS_OP_CLOSE, pl, 8);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);
    memcpy(pl + 2, "cut \xE2\x82", 6);
    n = frame(buf, FIN | WS_OP_CLOSE, pl, 8);
    expect_close(&LIM, buf, n, WS_CLOSE_INVALID_DATA);

    /* 125 bytes is the largest close frame. */
    memset(pl + 2, 'r', 123);
    n = frame(buf, FIN | WS_OP_CLOSE, pl, 125);
    assert_int_equal(feed_once(&r, &LIM, buf, n, &rc, &code), (ssize_t)n);
    rec_free(&rc);
}

/* ---- writer ------------------------------------------------------------------------------- */

static void test_frame_header(void **state)
{
    uint8_t h[WS_MAX_HEADER];

    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    assert_memory_equal(h, "\x82\x7D", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    assert_memory_equal(h, "\x81\x7E\x00\x7E", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_PING, 65535), 4);
    assert_memory_equal(h, "\x89\x7E\xFF\xFF", 4);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    assert_memory_equal(h, "\x81\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 0x0102030405060708ULL), 10);
    assert_memory_equal(h, "\x82\x7F\x01\x02\x03\x04\x05\x06\x07\x08", 10);
    assert_int_equal(ws_frame_header(h, WS_OP_PONG, 3), 2);
    assert_memory_equal(h, "\x8A\x03", 2);
    assert_int_equal(ws_frame_header(h, WS_OP_CLOSE, 2), 2);
    assert_memory_equal(h, "\x88\x02", 2);
}

/* Mask a server close frame as a client would and check our own reader accepts it. */
static void close_roundtrip(const uint8_t *f, size_t n)
{
    uint8_t buf[256];
    struct ws_reader r = {0};
    struct rec rc = {0};
    uint16_t code = 0;
    size_t m;

    assert_int_equal(f[0], FIN | WS_OP_CLOSE);
    assert_int_equal(f[1], n - 2);
    m = frame(buf, FIN | WS_OP_CLOSE, f + 2, n - 2);
    assert_int_equal(feed_once(&r, &LIM, buf, m, &rc, &code), (ssize_t)m);
    assert_int_equal(rc.n, 1);
    rec_free(&rc);
}

static void test_close_frame(void **state)
{
    uint8_t f[WS_CLOSE_FRAME_MAX + 8];
    char reason[300];
    size_t n;

    n = ws_close_frame(f, WS_CLOSE_NORMAL, "bye");
    assert_int_equal(n, 7);
    assert_memory_equal(f,
                        "\x88\x05\x03\xE8"
                        "bye",
                        7);
    close_roundtrip(f, n);

    n = ws_close_frame(f, WS_CLOSE_SLOW_CONSUMER, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(f, "\x88\x02\x0F\xA8", 4);
    n = ws_close_frame(f, WS_CLOSE_GOING_AWAY, "");
    assert_int_equal(n, 4);
    assert_memory_equal(f, "\x88\x02\x03\xE9", 4);

    /* Exactly 123 bytes of reason fit; more are cut. */
    memset(reason, 'a', sizeof(reason));
    reason[123] = 0;
    n = ws_close_frame(f, WS_CLOSE_POLICY, reason);
    assert_int_equal(n, WS_CLOSE_FRAME_MAX);
    assert_int_equal(f[1], 125);
    close_roundtrip(f, n);
    reason[200] = 0;
    memset(reason + 123, 'b', 77);
    assert_int_equal(ws_close_frame(f, WS_CLOSE_POLICY, reason), WS_CLOSE_FRAME_MAX);
    assert_int_equal(f[WS_CLOSE_FRAME_MAX - 1], 'a');

    /* A character straddling byte 123 is dropped whole, for each of its possible cut points. */
    for (size_t lead = 119; lead <= 123; lead++) {
        memset(reason, 'a', sizeof(reason));
        memcpy(reason + lead, "\xF0\x9D\x84\x9E", 4);
        reason[lead + 4] = 'z';
        reason[lead + 5] = 0;
        n = ws_close_frame(f, WS_CLOSE_NORMAL, reason);
        assert_int_equal(n, 4 + (lead + 4 <= 123 ? lead + 4 : lead));
        assert_true(n <= WS_CLOSE_FRAME_MAX);
        assert_true(ws_utf8_valid(f + 4, n - 4));
        close_roundtrip(f, n);
    }
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 122, "\xE2\x82\xAC", 3);
    reason[125] = 0;
    assert_int_equal(ws_close_frame(f, WS_CLOSE_NORMAL, reason), 4 + 122);

    /* A reason that is not UTF-8 is not sent at all (the peer would answer 1007). */
    n = ws_close_frame(f, WS_CLOSE_INTERNAL, "oops \xFF");
    assert_int_equal(n, 4);
    assert_memory_equal(f, "\x88\x02\x03\xF3", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_vectors),
        cmocka_unit_test(test_accept_key_rfc),
        cmocka_unit_test(test_accept_key_invalid),
        cmocka_unit_test(test_mask_lengths),
        cmocka_unit_test(test_nonminimal_lengths_accepted),
        cmocka_unit_test(test_len64_msb_is_protocol_error),
        cmocka_unit_test(test_incomplete_returns_zero),
        cmocka_unit_test(test_split_at_every_boundary),
        cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_split_random_chunks),
        cmocka_unit_test(test_fragmentation_with_interleaved_control),
        cmocka_unit_test(test_fragmented_binary_and_empty),
        cmocka_unit_test(test_callback_stop),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_unmasked_frame),
        cmocka_unit_test(test_rsv_bits),
        cmocka_unit_test(test_unknown_opcodes),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_continuation_rules),
        cmocka_unit_test(test_frame_too_big),
        cmocka_unit_test(test_message_too_big),
        cmocka_unit_test(test_utf8_valid_cases),
        cmocka_unit_test(test_utf8_fast_path_offsets),
        cmocka_unit_test(test_utf8_in_text_messages),
        cmocka_unit_test(test_utf8_split_across_fragments),
        cmocka_unit_test(test_utf8_invalid_across_fragments),
        cmocka_unit_test(test_close_payload_validation),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_close_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
