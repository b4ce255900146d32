/* ws_codec.c - RFC 6455 frame reader, header writer, handshake key, UTF-8 validator, SHA-1.
 *
 * The reader never keeps a partial frame: a frame is parsed only once all its bytes are in the
 * caller's buffer, so the payload is unmasked exactly once and there is no per-frame state. The
 * header, however, is checked as soon as its bytes arrive, so a client announcing an oversize or
 * malformed frame is rejected before the caller buffers its payload.
 *
 * Out-of-memory policy (chatd's): allocation failure aborts. The codec calls realloc itself rather
 * than util/rbuf.h's xrealloc so that the fuzzer links it alone.
 */
#include "net/ws_codec.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/status.h"

#define WS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_LEN    (sizeof(WS_GUID) - 1)
#define WS_KEY_LEN     24   /* base64 of the 16-byte client nonce */
#define WS_MSG_MIN_CAP 1024 /* first reassembly allocation, unless max_message is smaller */

/* ---- UTF-8 validation --------------------------------------------------------------------- */

/* A DFA over byte classes. States name what the validator still expects; ACCEPT is "between
 * characters", REJECT is sticky. The restricted second-byte states (E0, ED, F0, F4) are what
 * exclude overlong forms, UTF-16 surrogates and code points above U+10FFFF (RFC 3629 section 4). */
enum utf8_state {
    U8_ACCEPT, /* at a character boundary */
    U8_REJECT, /* invalid sequence seen */
    U8_CONT1,  /* one more 80..BF */
    U8_CONT2,  /* two more 80..BF */
    U8_CONT3,  /* three more 80..BF */
    U8_E0,     /* after E0: A0..BF, then one more */
    U8_ED,     /* after ED: 80..9F (no surrogates), then one more */
    U8_F0,     /* after F0: 90..BF, then two more */
    U8_F4,     /* after F4: 80..8F (<= U+10FFFF), then two more */
    U8_NSTATES
};

enum utf8_class {
    C_ASCII, /* 00..7F */
    C_CLO,   /* 80..8F continuation */
    C_CMID,  /* 90..9F continuation */
    C_CHI,   /* A0..BF continuation */
    C_BAD,   /* C0, C1, F5..FF: never valid */
    C_L2,    /* C2..DF */
    C_E0,    /* E0 */
    C_L3,    /* E1..EC, EE, EF */
    C_ED,    /* ED */
    C_F0,    /* F0 */
    C_L4,    /* F1..F3 */
    C_F4,    /* F4 */
    C_NCLASSES
};

/* Range designators are a GNU extension (gcc, clang); the table reads as RFC 3629's own ranges. */
/* clang-format off */
static const uint8_t utf8_class[256] = {
    [0x00 ... 0x7F] = C_ASCII,
    [0x80 ... 0x8F] = C_CLO,
    [0x90 ... 0x9F] = C_CMID,
    [0xA0 ... 0xBF] = C_CHI,
    [0xC0 ... 0xC1] = C_BAD,
    [0xC2 ... 0xDF] = C_L2,
    [0xE0]          = C_E0,
    [0xE1 ... 0xEC] = C_L3,
    [0xED]          = C_ED,
    [0xEE ... 0xEF] = C_L3,
    [0xF0]          = C_F0,
    [0xF1 ... 0xF3] = C_L4,
    [0xF4]          = C_F4,
    [0xF5 ... 0xFF] = C_BAD,
};

#define R_ U8_REJECT
#define A_ U8_ACCEPT
static const uint8_t utf8_next[U8_NSTATES][C_NCLASSES] = {
    /*            ASCII CLO       CMID      CHI       BAD L2        E0     L3        ED     F0     L4        F4 */
    [U8_ACCEPT] = {A_,  R_,       R_,       R_,       R_, U8_CONT1, U8_E0, U8_CONT2, U8_ED, U8_F0, U8_CONT3, U8_F4},
    [U8_REJECT] = {R_,  R_,       R_,       R_,       R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_CONT1]  = {R_,  A_,       A_,       A_,       R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_CONT2]  = {R_,  U8_CONT1, U8_CONT1, U8_CONT1, R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_CONT3]  = {R_,  U8_CONT2, U8_CONT2, U8_CONT2, R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_E0]     = {R_,  R_,       R_,       U8_CONT1, R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_ED]     = {R_,  U8_CONT1, U8_CONT1, R_,       R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_F0]     = {R_,  R_,       U8_CONT2, U8_CONT2, R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
    [U8_F4]     = {R_,  U8_CONT2, R_,       R_,       R_, R_,       R_,    R_,       R_,    R_,    R_,       R_},
};
#undef A_
#undef R_
/* clang-format on */

#define HIGH_BITS 0x8080808080808080ULL

/* Advance the validator over p[0..n). Stops early on REJECT. ASCII runs are skipped 8 bytes at a
 * time while at a character boundary, which is where JSON text spends nearly all its bytes. */
static uint32_t utf8_run(uint32_t state, const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        if (state == U8_ACCEPT) {
            uint64_t w;
            while (n - i >= 8) {
                memcpy(&w, p + i, 8);
                if (w & HIGH_BITS) break;
                i += 8;
            }
            while (i < n && p[i] < 0x80)
                i++;
            if (i == n) break;
        }
        state = utf8_next[state][utf8_class[p[i++]]];
        if (state == U8_REJECT) break;
    }
    return state;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
    return utf8_run(U8_ACCEPT, p, n) == U8_ACCEPT;
}

/* ---- reader ------------------------------------------------------------------------------- */

struct frame {
    uint64_t len;   /* payload bytes */
    size_t hlen;    /* header bytes including the mask key */
    uint8_t key[4]; /* masking key */
    uint8_t op;     /* opcode */
    uint8_t fin;    /* FIN bit */
};

static int is_control(unsigned op)
{
    return op & 0x8;
}

/* Codes a peer may send (RFC 6455 section 7.4): 1000-1003, 1007-1014 registered or reserved for
 * future registered codes, 3000-4999 for libraries and applications. 1004-1006 and 1015 are
 * reserved and must never appear on the wire; 1016-2999 are reserved for future RFCs. */
static int close_code_ok(unsigned code)
{
    if (code >= 1000 && code <= 1003) return 1;
    if (code >= 1007 && code <= 1014) return 1;
    return code >= 3000 && code <= 4999;
}

/* Largest fragmented message the reader can hold: max_message, capped by its 32-bit counters. */
static uint64_t reassembly_limit(const struct ws_limits *lim)
{
    return lim->max_message < UINT32_MAX ? lim->max_message : UINT32_MAX;
}

/* Parse and check the header at p[0..avail). Returns 1 when f is complete, 0 when more bytes are
 * needed (every check that the available bytes allow has passed), -1 with *code set otherwise. */
static int parse_header(const struct ws_reader *r, const struct ws_limits *lim, const uint8_t *p,
                        size_t avail, struct frame *f, uint16_t *code)
{
    size_t ext;
    uint64_t len;
    unsigned len7;

    if (avail < 1) return 0;
    f->fin = p[0] >> 7;
    f->op = p[0] & 0x0F;
    if (p[0] & 0x70) goto protocol; /* RSV1-3: no extension was negotiated */
    switch (f->op) {
    case WS_OP_CONT:
        if (!r->msg_op) goto protocol;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (r->msg_op) goto protocol;
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!f->fin) goto protocol;
        break;
    default:
        goto protocol;
    }

    if (avail < 2) return 0;
    if (!(p[1] & 0x80)) goto protocol; /* client frames must be masked */
    len7 = p[1] & 0x7F;
    if (is_control(f->op) && len7 > 125) goto protocol;
    ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (avail < 2 + ext) return 0;
    if (ext == 0) {
        len = len7;
    } else if (ext == 2) {
        len = (uint64_t)p[2] << 8 | p[3];
    } else {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        if (len >> 63) goto protocol;
    }
    /* Non-minimal length encodings are accepted, as most decoders do. */
    if (len > lim->max_frame) goto too_big;
    if (f->op == WS_OP_CONT) {
        if (r->msg_len + len > reassembly_limit(lim)) goto too_big;
    } else if (!is_control(f->op)) {
        if (len > (f->fin ? lim->max_message : reassembly_limit(lim))) goto too_big;
    }

    f->len = len;
    f->hlen = 2 + ext + 4;
    if (avail < f->hlen) return 0;
    memcpy(f->key, p + 2 + ext, 4);
    return 1;

protocol:
    *code = WS_CLOSE_PROTOCOL;
    return -1;
too_big:
    *code = WS_CLOSE_TOO_BIG;
    return -1;
}

/* XOR the payload with the repeating 4-byte key, 8 bytes per step. The key pattern is copied as
 * bytes into the 64-bit word, so the result does not depend on the host's byte order. */
static void unmask(uint8_t *p, size_t n, const uint8_t key[4])
{
    uint8_t k8[8];
    uint64_t k, w;
    size_t i = 0;

    memcpy(k8, key, 4);
    memcpy(k8 + 4, key, 4);
    memcpy(&k, k8, 8);
    for (; n - i >= 8; i += 8) {
        memcpy(&w, p + i, 8);
        w ^= k;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];
}

/* Append to the reassembly buffer. The caller has checked msg_len + n <= reassembly_limit, so
 * doubling clamped to that limit always makes room and never allocates beyond max_message. */
static void msg_append(struct ws_reader *r, const struct ws_limits *lim, const uint8_t *p, size_t n)
{
    uint64_t need = (uint64_t)r->msg_len + n;

    if (n == 0) return;
    if (need > r->msg_cap) {
        uint64_t cap = r->msg_cap ? (uint64_t)r->msg_cap * 2 : WS_MSG_MIN_CAP;
        uint8_t *m;
        if (cap < need) cap = need;
        if (cap > reassembly_limit(lim)) cap = reassembly_limit(lim);
        m = realloc(r->msg, (size_t)cap);
        if (!m) {
            fprintf(stderr, "ws_codec: out of memory (%llu bytes)\n", (unsigned long long)cap);
            abort();
        }
        r->msg = m;
        r->msg_cap = (uint32_t)cap;
    }
    memcpy(r->msg + r->msg_len, p, n);
    r->msg_len = (uint32_t)need;
}

void ws_reader_reset(struct ws_reader *r)
{
    free(r->msg);
    memset(r, 0, sizeof(*r));
}

/* Check and deliver one complete, unmasked frame. Returns the callback's verdict (0 = go on), or
 * -1 with *code set. */
static int handle_frame(struct ws_reader *r, const struct ws_limits *lim, const struct frame *f,
                        uint8_t *pl, ws_message_cb cb, void *ud, uint16_t *code)
{
    size_t n = (size_t)f->len;

    switch (f->op) {
    case WS_OP_CLOSE:
        if (n == 1) goto protocol;
        if (n >= 2) {
            if (!close_code_ok((unsigned)pl[0] << 8 | pl[1])) goto protocol;
            if (!ws_utf8_valid(pl + 2, n - 2)) goto invalid;
        }
        return cb(ud, f->op, pl, n);
    case WS_OP_PING:
    case WS_OP_PONG:
        return cb(ud, f->op, pl, n);
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (f->fin) { /* whole message in one frame: zero-copy */
            if (f->op == WS_OP_TEXT && !ws_utf8_valid(pl, n)) goto invalid;
            return cb(ud, f->op, pl, n);
        }
        r->msg_op = f->op;
        r->utf8 = U8_ACCEPT;
        break;
    default: /* WS_OP_CONT, checked by parse_header */
        break;
    }

    /* A fragment of a message: validate as it arrives, so an invalid byte is refused now and
     * not after the client has sent (and we have buffered) the rest of the message. */
    if (r->msg_op == WS_OP_TEXT) {
        r->utf8 = utf8_run(r->utf8, pl, n);
        if (r->utf8 == U8_REJECT || (f->fin && r->utf8 != U8_ACCEPT)) goto invalid;
    }
    msg_append(r, lim, pl, n);
    if (f->fin) {
        int rc = cb(ud, r->msg_op, r->msg ? r->msg : pl, r->msg_len);
        ws_reader_reset(r); /* an idle connection holds no heap */
        return rc;
    }
    return 0;

protocol:
    *code = WS_CLOSE_PROTOCOL;
    return -1;
invalid:
    *code = WS_CLOSE_INVALID_DATA;
    return -1;
}

ssize_t ws_reader_feed(struct ws_reader *r, const struct ws_limits *lim, uint8_t *buf, size_t len,
                       ws_message_cb cb, void *ud, uint16_t *close_code)
{
    size_t off = 0;
    uint16_t code = WS_CLOSE_PROTOCOL;

    if (len > SSIZE_MAX) len = SSIZE_MAX; /* the result must fit; the rest is fed next call */
    while (off < len) {
        struct frame f;
        uint8_t *pl;
        int rc = parse_header(r, lim, buf + off, len - off, &f, &code);
        if (rc < 0) goto fail;
        if (rc == 0 || f.len > len - off - f.hlen) break; /* incomplete: caller keeps the tail */
        pl = buf + off + f.hlen;
        unmask(pl, (size_t)f.len, f.key);
        off += f.hlen + (size_t)f.len;
        rc = handle_frame(r, lim, &f, pl, cb, ud, &code);
        if (rc < 0) goto fail;
        if (rc) break;
    }
    return (ssize_t)off;

fail:
    ws_reader_reset(r);
    *close_code = code;
    return -1;
}

/* ---- writer ------------------------------------------------------------------------------- */

size_t ws_frame_header(uint8_t *out, int opcode, uint64_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason)
{
    size_t n = reason ? strlen(reason) : 0;
    size_t h;

    if (n > 123) {
        /* Cut before the character that straddles byte 123 (back up over its continuations). */
        n = 123;
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
            n--;
    }
    /* Never put invalid UTF-8 on the wire: a peer would answer with 1007. */
    if (n && !ws_utf8_valid((const uint8_t *)reason, n)) n = 0;
    h = ws_frame_header(out, WS_OP_CLOSE, 2 + n);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (n) memcpy(out + h + 2, reason, n);
    return h + 2 + n;
}

/* ---- handshake ---------------------------------------------------------------------------- */

int ws_accept_key(const char *key, size_t key_len, char out[29])
{
    uint8_t nonce[16], digest[20];
    uint8_t in[WS_KEY_LEN + WS_GUID_LEN];
    size_t bin_len = 0;
    const char *end = NULL;

    if (key_len != WS_KEY_LEN) return CD_E_BAD_REQUEST;
    /* The alphabet is checked here: libsodium 1.0.18 decodes every byte >= 0x80 as '/' (the
     * same flaw fuzz_jwt found in base64url). 16 bytes are 22 characters and "==". */
    for (size_t i = 0; i < WS_KEY_LEN - 2; i++) {
        char ch = key[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return CD_E_BAD_REQUEST;
    }
    if (sodium_base642bin(nonce, sizeof(nonce), key, key_len, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bin_len != sizeof(nonce) || end != key + key_len)
        return CD_E_BAD_REQUEST;
    memcpy(in, key, WS_KEY_LEN);
    memcpy(in + WS_KEY_LEN, WS_GUID, WS_GUID_LEN);
    ws_sha1(in, sizeof(in), digest);
    sodium_bin2base64(out, 29, digest, sizeof(digest), sodium_base64_VARIANT_ORIGINAL);
    return CD_OK;
}

/* ---- SHA-1 (FIPS 180-1) ------------------------------------------------------------------- */

static uint32_t rol32(uint32_t x, unsigned n)
{
    return x << n | x >> (32 - n);
}

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Process one 512-bit block: the 80-word schedule is kept as a rolling window of 16 words. */
static void sha1_block(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int t = 0; t < 16; t++)
        w[t] = load_be32(blk + 4 * t);
    for (int t = 0; t < 80; t++) {
        uint32_t f, k, tmp;
        if (t >= 16) {
            w[t & 15] = rol32(w[(t - 3) & 15] ^ w[(t - 8) & 15] ^ w[(t - 14) & 15] ^ w[t & 15], 1);
        }
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        tmp = rol32(a, 5) + f + e + w[t & 15] + k;
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void ws_sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t tail[128];
    size_t full = len & ~(size_t)63, rest = len - full, tlen;
    uint64_t bits = (uint64_t)len * 8;

    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, data + i);

    /* Padding: a 1 bit, zeros up to 56 mod 64, then the message length in bits, big endian. */
    if (rest) memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    tlen = rest < 56 ? 64 : 128;
    memset(tail + rest + 1, 0, tlen - rest - 1 - 8);
    for (int i = 0; i < 8; i++)
        tail[tlen - 8 + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_block(h, tail);
    if (tlen == 128) sha1_block(h, tail + 64);

    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}
