/* wsaccept.h - SHA-1, base64 and the RFC 6455 Sec-WebSocket-Accept derivation, shared by the
 * ceiling server and chatbench. Pure functions, no allocation, never block. */
#ifndef BENCH_WSACCEPT_H
#define BENCH_WSACCEPT_H

#include <stddef.h>
#include <stdint.h>

/* SHA-1 of data[0..len) into out (20 bytes). */
void wsa_sha1(const void *data, size_t len, uint8_t out[20]);

/* Standard base64 (with padding) of in[0..len) into out; out needs 4*ceil(len/3)+1 bytes.
 * Returns the encoded length; out is NUL-terminated. */
size_t wsa_base64(const uint8_t *in, size_t len, char *out);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (key[0..klen), klen <= 64) into out (29 bytes:
 * 28 characters + NUL). Returns 0, or -1 when the key is too long. */
int wsa_accept(const char *key, size_t klen, char out[29]);

/* Length fields of the frame header at f (avail bytes there): sets *len (payload bytes) and *hl
 * (header bytes before the mask key or payload). Returns 0, or 1 when avail is too short to
 * tell. Masking and opcodes are the caller's business. */
int wsa_frame_len(const uint8_t *f, size_t avail, uint64_t *len, size_t *hl);

#endif
