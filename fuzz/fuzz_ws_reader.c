/* fuzz_ws_reader.c - libFuzzer target for the WebSocket reader (src/net/ws_codec.c).
 *
 * Input layout: byte 0 picks the mode and the read-splitting seed, bytes 1-2 the limits, the rest
 * is the stream. In raw mode the stream is fed as is; in structured mode it is read as records
 * {b0, len, payload[len]} that the harness encodes as masked client frames, so that the fuzzer
 * reaches fragmentation and UTF-8 states without having to guess masking keys.
 *
 * Each stream is parsed twice, once in a single buffer and once split into reads the way the
 * server does it (the unconsumed tail is kept and new bytes appended); both must deliver the same
 * messages and end the same way. Delivered messages are checked against the codec's contract, and
 * ws_utf8_valid is compared with a plain decoder written independently below. The first 24
 * bytes of the stream are also tried as a Sec-WebSocket-Key: ws_accept_key must accept exactly
 * 22 standard base64 characters (spare bits zero) and "==".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_codec.h"
#include "util/status.h"
#include "fuzz_check.h"

/* Reference validator: decode each sequence to a code point, then apply RFC 3629's rules. */
static int ref_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp, min;
        size_t need;
        uint8_t b = p[i++];
        if (b < 0x80) continue;
        if (b >= 0xC0 && b < 0xE0) {
            need = 1, cp = b & 0x1F, min = 0x80;
        } else if (b >= 0xE0 && b < 0xF0) {
            need = 2, cp = b & 0x0F, min = 0x800;
        } else if (b >= 0xF0 && b < 0xF8) {
            need = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < need) return 0;
        for (size_t k = 0; k < need; k++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i++] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    }
    return 1;
}

struct run {
    const struct ws_limits *lim;
    uint64_t hash;  /* FNV-1a over every delivery */
    unsigned count; /* deliveries */
    int closed;     /* a close frame was delivered */
};

static void mix(struct run *x, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        x->hash = (x->hash ^ b[i]) * 0x100000001B3ULL;
}

static int on_message(void *ud, int op, uint8_t *data, size_t len)
{
    struct run *x = ud;
    uint64_t l = len;

    CHECK(data != NULL);
    switch (op) {
    case WS_OP_TEXT:
        CHECK(ref_utf8_valid(data, len));
        /* fall through */
    case WS_OP_BINARY:
        CHECK(len <= x->lim->max_message);
        break;
    case WS_OP_CLOSE:
        CHECK(len != 1);
        if (len >= 2) {
            unsigned code = (unsigned)data[0] << 8 | data[1];
            CHECK(code >= 1000 && code < 5000 && code != 1004 && code != 1005 && code != 1006);
            CHECK(code <= 1014 || code >= 3000);
            CHECK(ref_utf8_valid(data + 2, len - 2));
        }
        x->closed = 1;
        /* fall through */
    case WS_OP_PING:
    case WS_OP_PONG:
        CHECK(len <= 125);
        break;
    default:
        CHECK(!"unexpected opcode");
    }
    CHECK(len <= x->lim->max_frame || op == WS_OP_TEXT || op == WS_OP_BINARY);
    mix(x, &op, sizeof(op));
    mix(x, &l, sizeof(l));
    mix(x, data, len);
    x->count++;
    return 0;
}

/* Parse stream[0..n) split into reads of sizes drawn from seed (0: one read). Returns the final
 * outcome: bytes left unconsumed, or -close_code. */
static long parse(const struct ws_limits *lim, const uint8_t *stream, size_t n, uint32_t seed,
                  struct run *x)
{
    struct ws_reader r = {0};
    uint8_t *pend = malloc(n ? n : 1);
    size_t have = 0, off = 0;
    long outcome = 0;

    memset(x, 0, sizeof(*x));
    x->lim = lim;
    x->hash = 0xCBF29CE484222325ULL;
    while (off < n) {
        size_t chunk = n - off;
        ssize_t used;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            chunk = 1 + (seed >> 16) % 37;
            if (chunk > n - off) chunk = n - off;
        }
        memcpy(pend + have, stream + off, chunk);
        have += chunk;
        off += chunk;
        do {
            uint16_t code = 0;
            used = ws_reader_feed(&r, lim, pend, have, on_message, x, &code);
            if (used < 0) {
                CHECK(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_INVALID_DATA ||
                      code == WS_CLOSE_TOO_BIG);
                CHECK(r.msg == NULL);
                outcome = -(long)code;
                goto done;
            }
            CHECK((size_t)used <= have);
            memmove(pend, pend + used, have - (size_t)used);
            have -= (size_t)used;
            /* Reassembly never holds more than the message limit. */
            CHECK(r.msg_cap <= lim->max_message);
            CHECK(r.msg_len <= r.msg_cap);
            CHECK(r.msg_op == 0 || r.msg_op == WS_OP_TEXT || r.msg_op == WS_OP_BINARY);
            CHECK(r.msg_op != 0 || r.msg == NULL); /* idle connection: no heap */
        } while (used > 0 && have > 0);
    }
    outcome = (long)have;
done:
    ws_reader_reset(&r);
    free(pend);
    return outcome;
}

/* Structured mode: encode records {b0, len, payload} as masked client frames. */
static size_t build_frames(const uint8_t *in, size_t n, uint8_t *out)
{
    static const uint8_t key[4] = {0xA5, 0x3C, 0x0F, 0x96};
    size_t o = 0, i = 0;

    while (i + 2 <= n) {
        uint8_t b0 = in[i], lb = in[i + 1];
        size_t len = lb & 0x7F, hdr = 2;
        i += 2;
        if (len > n - i) len = n - i;
        out[o] = b0;
        if (lb & 0x80) { /* force a 16-bit length, non-minimal encodings included */
            out[o + 1] = 0x80 | 126;
            out[o + 2] = (uint8_t)(len >> 8);
            out[o + 3] = (uint8_t)len;
            hdr = 4;
        } else {
            out[o + 1] = (uint8_t)(0x80 | len);
        }
        memcpy(out + o + hdr, key, 4);
        o += hdr + 4;
        for (size_t k = 0; k < len; k++)
            out[o + k] = in[i + k] ^ key[k & 3];
        o += len;
        i += len;
    }
    return o;
}

static void check_writer(const uint8_t *p, size_t n)
{
    uint8_t f[WS_CLOSE_FRAME_MAX], h[WS_MAX_HEADER];
    char reason[256];
    size_t m = n < sizeof(reason) - 1 ? n : sizeof(reason) - 1, fl;

    /* ws_utf8_valid agrees with the reference decoder. */
    CHECK(ws_utf8_valid(p, n) == ref_utf8_valid(p, n));

    /* Close frames always fit and carry valid UTF-8. */
    memcpy(reason, p, m);
    reason[m] = 0;
    fl = ws_close_frame(f, 1000, reason);
    CHECK(fl >= 4 && fl <= WS_CLOSE_FRAME_MAX);
    CHECK(f[0] == 0x88 && f[1] == fl - 2);
    CHECK(ref_utf8_valid(f + 4, fl - 4));

    CHECK(ws_frame_header(h, WS_OP_TEXT, n) == (n < 126 ? 2u : n <= 0xFFFF ? 4u : 10u));
}

/* ws_accept_key accepts exactly 22 standard base64 characters (trailing bits zero) and "==". */
static void check_accept_key(const uint8_t *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[29];
    int ok = n >= 24;

    for (size_t i = 0; ok && i < 22; i++)
        ok = p[i] != 0 && strchr(b64, p[i]) != NULL;
    ok = ok && p[22] == '=' && p[23] == '=' && (strchr(b64, p[21]) - b64) % 16 == 0;
    if (n >= 24) CHECK((ws_accept_key((const char *)p, 24, out) == CD_OK) == ok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t frames[] = {0, 1, 125, 300, 1000, 65536};
    struct ws_limits lim;
    struct run whole, split;
    uint8_t *stream;
    size_t n;
    long a, b;

    if (size < 3) return 0;
    lim.max_frame = frames[data[1] % 6];
    lim.max_message = (uint64_t)(data[2] & 0x7F) * 16;
    if (data[2] & 0x80) lim.max_message = UINT64_MAX;
    check_writer(data + 3, size - 3);
    check_accept_key(data + 3, size - 3);

    if (data[0] & 1) {
        stream = malloc((size - 3) * 4 + 16);
        n = build_frames(data + 3, size - 3, stream);
    } else {
        n = size - 3;
        stream = malloc(n ? n : 1);
        memcpy(stream, data + 3, n);
    }
    a = parse(&lim, stream, n, 0, &whole);
    b = parse(&lim, stream, n, (uint32_t)(data[0] >> 1) + 1, &split);
    CHECK(a == b);
    CHECK(whole.count == split.count);
    CHECK(whole.hash == split.hash);
    free(stream);
    return 0;
}
