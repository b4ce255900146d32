/* auth.h - account rules and credential primitives (libsodium). No I/O, no server globals.
 * The hashing functions are deliberately slow (Argon2id) and must run on worker threads. */
#ifndef CD_AUTH_H
#define CD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_USERNAME_MIN 3
#define AUTH_USERNAME_MAX 32
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 256
#define AUTH_PWHASH_MAX   128 /* crypto_pwhash_STRBYTES */
#define AUTH_REFRESH_LEN  43  /* base64url of 32 random bytes, no padding */

/* Call once before any other function (initialises libsodium). CD_OK or CD_E_INTERNAL. */
int auth_init(void);
/* 1 if name is 3-32 chars of [a-z0-9_.-] starting with a letter or digit. */
int auth_username_valid(const char *name, size_t len);
/* 1 if a password of len bytes is acceptable (8-256 bytes). */
int auth_password_valid(size_t len);

/* Argon2id hash into out (NUL-terminated). Blocks for the configured cost. CD_OK, or CD_E_NOMEM
 * when the memory limit cannot be allocated. */
int auth_hash_password(const char *pw, size_t len, uint64_t ops, uint64_t mem_kib,
                       char out[AUTH_PWHASH_MAX]);
/* Verify pw against a stored hash; 1 on match. Blocks like hashing. With hash == NULL it verifies
 * against a fixed dummy hash of the same cost and returns 0, so an unknown user costs the same
 * time as a wrong password. */
int auth_verify_password(const char *hash, const char *pw, size_t len, uint64_t ops,
                         uint64_t mem_kib);

/* New random refresh token (NUL-terminated) and its SHA-256, the only form that is stored. */
void auth_refresh_new(char token[AUTH_REFRESH_LEN + 1], uint8_t hash[32]);
/* SHA-256 of a presented token. */
void auth_refresh_hash(const char *token, size_t len, uint8_t hash[32]);

#endif
