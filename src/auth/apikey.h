/* apikey.h - API keys of the server API (/v1/server/...): "ck_" + 43 base64url characters (32
 * random bytes). Only their SHA-256 is stored; the key is shown once, when it is created. */
#ifndef CD_APIKEY_H
#define CD_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#define APIKEY_PREFIX "ck_"
#define APIKEY_LEN    46 /* "ck_" + 43 */

/* A new random key (NUL-terminated) and its SHA-256. Call auth_init first. */
void apikey_new(char key[APIKEY_LEN + 1], uint8_t hash[32]);
/* SHA-256 of a presented key. */
void apikey_hash(const char *key, size_t len, uint8_t hash[32]);
/* 1 when s has the shape of a key ("ck_" and 43 base64url characters). A user's access token
 * (a JWT) never has it. */
int apikey_shape_ok(const char *s, size_t len);
/* 1 when name is 1-64 printable ASCII characters without quotes or backslashes (it appears in
 * log lines and listings). */
int apikey_name_ok(const char *name, size_t len);

#endif
