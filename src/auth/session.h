/* session.h - login sessions as refresh-token families: start, rotate (with reuse detection),
 * end. Runs on the storage writer thread inside its transaction (blocking, never on I/O). */
#ifndef CD_SESSION_H
#define CD_SESSION_H

#include <stdint.h>

#include "auth/auth.h"
#include "store/store.h"

/* Start a session for user_id and issue its first refresh token into token (NUL-terminated).
 * Returns CD_OK (sets *sid) or a store error. */
int session_start(const struct store_ops *ops, struct store_conn *sc, int64_t user_id,
                  int64_t now_ms, int64_t ttl_ms, char token[AUTH_REFRESH_LEN + 1], int64_t *sid);

/* Spend the refresh token whose SHA-256 is `hash` and issue the next one of its family.
 * Returns CD_OK with the new token, *user_id and *sid set; CD_E_INVALID_REFRESH when the token is
 * unknown, expired or revoked, or was already spent, in which case the whole family is revoked
 * (reuse means a copy leaked) and *user_id and *sid name it (else they are left alone): the
 * caller must commit the transaction either way. Other errors come from the store. */
int session_rotate(const struct store_ops *ops, struct store_conn *sc, const uint8_t hash[32],
                   int64_t now_ms, int64_t ttl_ms, char token[AUTH_REFRESH_LEN + 1],
                   int64_t *user_id, int64_t *sid);

/* Revoke the family of the token `hash`: CD_OK with *user_id and *sid set, CD_E_INVALID_REFRESH
 * if unknown. */
int session_end(const struct store_ops *ops, struct store_conn *sc, const uint8_t hash[32],
                int64_t now_ms, int64_t *user_id, int64_t *sid);

#endif
