/* revoked.h - sessions ended before their access tokens expire. Access tokens are stateless
 * JWTs; this set is what makes a logout (or a refresh token's reuse) end them at once. Each entry
 * lives until the last moment a token of its session could still verify, so the set holds the
 * sessions ended in the last --access-ttl seconds only. Thread-safe. */
#ifndef CD_REVOKED_H
#define CD_REVOKED_H

#include <stdint.h>

struct revoked;

struct revoked *revoked_new(void);
void revoked_free(struct revoked *r);
/* Session sid ended at `now`: its tokens are refused until `until` (unix seconds). */
void revoked_add(struct revoked *r, int64_t sid, int64_t now, int64_t until);
/* 1 if session sid ended and `now` (unix seconds) is before the entry's end. */
int revoked_has(struct revoked *r, int64_t sid, int64_t now);
/* Entries held (expired ones included until the next sweep). */
uint32_t revoked_count(struct revoked *r);

#endif
