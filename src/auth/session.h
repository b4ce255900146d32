/* session.h - login sessions as refresh-token families: start, rotate (with reuse detection),
 * end. Runs on the storage writer thread inside its transaction (blocking, never on I/O). */
#ifndef CD_SESSION_H
#define CD_SESSION_H

#include <stdint.h>

#include "auth/auth.h"
#include "store/store.h"

/* New sessions get ids drawn uniformly from [SESSION_ID_MIN, SESSION_ID_MAX) (as new users,
 * chat/people.h): a session id says nothing about how many logins the server has seen and
 * cannot be guessed from another. Sessions created before keep their small sequential ids;
 * both kinds are formatted and parsed the same way ("s_<n>", the JWT's "sid"). */
#define SESSION_ID_MIN (INT64_C(1) << 32)
#define SESSION_ID_MAX (INT64_C(1) << 53) /* exclusive; exact as JSON numbers (the JWT "sid") */

/* A random session id in [SESSION_ID_MIN, SESSION_ID_MAX) (libsodium). Any thread. */
int64_t session_new_id(void);
/* Insert a session of user_id under a fresh random id (a drawn id that is taken is drawn
 * again, a few times): CD_OK with *sid, or a store error. Writer thread. */
int session_create(const struct store_ops *ops, struct store_conn *sc, int64_t user_id,
                   int64_t now_ms, int64_t *sid);

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
