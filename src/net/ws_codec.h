/* ws_codec.h - RFC 6455 frame codec: pure functions over byte buffers, no I/O, no server globals.
 *
 * The reader consumes client frames in place (unmasking the caller's buffer), enforces the frame
 * and message limits, reassembles fragmented messages, validates UTF-8 of text messages
 * incrementally, and checks control-frame rules. The writer side only builds headers: payloads
 * are never copied by the codec, so a fanout frame is encoded once and shared.
 */
#ifndef CD_WS_CODEC_H
#define CD_WS_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes used by chatd (RFC 6455 section 7.4 plus our private 4xxx range). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,    /* server shutting down (SIGTERM drain) */
    WS_CLOSE_PROTOCOL = 1002,      /* malformed frame, bad opcode, unmasked frame, ... */
    WS_CLOSE_UNSUPPORTED = 1003,   /* binary data message: chatd speaks JSON text only */
    WS_CLOSE_INVALID_DATA = 1007,  /* text message that is not valid UTF-8 */
    WS_CLOSE_POLICY = 1008,        /* policy violation (e.g. idle timeout, no pong) */
    WS_CLOSE_TOO_BIG = 1009,       /* frame or message over the configured limit */
    WS_CLOSE_INTERNAL = 1011,      /* server error */
    WS_CLOSE_TRY_AGAIN = 1013,     /* storage unavailable while the connection opened: retry */
    WS_CLOSE_SLOW_CONSUMER = 4008, /* output queue exceeded --ws-max-outq */
    WS_CLOSE_IDLE_TIMEOUT = 4000,  /* no pong / no traffic within the idle timeout */
    WS_CLOSE_SESSION_ENDED = 4001, /* the connection's login session ended (logout, theft) */
    WS_CLOSE_TOKEN_EXPIRED = 4002, /* the access token expired without a `refresh` op */
};

struct ws_limits {
    uint64_t max_frame;   /* largest accepted frame payload, bytes */
    uint64_t max_message; /* largest reassembled message payload, bytes */
};

/* Per-connection reader state. Zero-initialise; it holds no heap memory unless a fragmented
 * message is being reassembled (`msg` is then malloc'ed, at most max_message bytes). */
struct ws_reader {
    uint8_t *msg;     /* reassembly buffer for a fragmented message, NULL when none */
    uint32_t msg_len; /* bytes in msg */
    uint32_t msg_cap; /* allocated bytes */
    uint32_t utf8;    /* incremental UTF-8 validator state of the message in progress */
    uint8_t msg_op;   /* opcode of the fragmented message in progress, 0 when none */
};

/* Called once per complete message or control frame. `data` points into the caller's buffer or
 * into the reader's reassembly buffer; it is valid only during the call. Text messages have
 * already been validated as UTF-8. For WS_OP_CLOSE, data is the raw close payload (validated:
 * empty or code + UTF-8 reason, code allowed on the wire). Return 0 to continue, nonzero to stop
 * parsing: ws_reader_feed then returns the bytes consumed so far, including this frame. */
typedef int (*ws_message_cb)(void *ud, int opcode, uint8_t *data, size_t len);

/* Parse and consume as many complete frames of buf[0..len) as possible (client frames must be
 * masked; buf is unmasked in place). Returns the number of bytes consumed (>= 0, may be less than
 * len when the tail is an incomplete frame: keep those bytes and call again with more), or -1 on
 * a protocol violation with *close_code set (1002, 1007, 1009). Never blocks. O(len). */
ssize_t ws_reader_feed(struct ws_reader *r, const struct ws_limits *lim, uint8_t *buf, size_t len,
                       ws_message_cb cb, void *ud, uint16_t *close_code);

/* Free the reassembly buffer; the reader is zeroed and reusable. */
void ws_reader_reset(struct ws_reader *r);

/* Write an unmasked server frame header (FIN set) for `opcode` with payload length `len` into
 * out (at most WS_MAX_HEADER bytes). Returns the header length (2, 4 or 10). */
#define WS_MAX_HEADER 10
size_t ws_frame_header(uint8_t *out, int opcode, uint64_t len);

/* Build a complete close frame (header + code + reason truncated to fit 125 bytes of payload)
 * into out (at least 2 + 125 bytes). Returns its length. */
#define WS_CLOSE_FRAME_MAX (2 + 125)
size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason);

/* Compute Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)). out receives 28
 * characters and a NUL. Returns CD_OK, or CD_E_BAD_REQUEST when the key is not 24 base64 chars
 * decoding to 16 bytes. */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Whole-buffer UTF-8 check (RFC 3629: no overlongs, no surrogates, max U+10FFFF). 1 if valid. */
int ws_utf8_valid(const uint8_t *p, size_t n);

/* SHA-1 of data (needed by the handshake only; not for security). */
void ws_sha1(const uint8_t *data, size_t len, uint8_t out[20]);

#endif
