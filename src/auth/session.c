#include "auth/session.h"

#include <sodium.h>

#include "util/log.h"
#include "util/status.h"

static int issue(const struct store_ops *ops, struct store_conn *sc, int64_t user_id, int64_t sid,
                 int64_t now_ms, int64_t ttl_ms, char token[AUTH_REFRESH_LEN + 1])
{
    struct store_refresh rt = {0};
    auth_refresh_new(token, rt.hash);
    rt.session_id = sid;
    rt.user_id = user_id;
    rt.created_at = now_ms;
    rt.expires_at = now_ms + ttl_ms;
    return ops->refresh_insert(sc, &rt);
}

int64_t session_new_id(void)
{
    uint64_t r;
    randombytes_buf(&r, sizeof(r));
    return SESSION_ID_MIN + (int64_t)(r % (uint64_t)(SESSION_ID_MAX - SESSION_ID_MIN));
}

int session_create(const struct store_ops *ops, struct store_conn *sc, int64_t user_id,
                   int64_t now_ms, int64_t *sid)
{
    int rc = CD_E_CONFLICT;
    for (int tries = 0; rc == CD_E_CONFLICT && tries < 8; tries++) {
        *sid = session_new_id();
        rc = ops->session_insert_id(sc, *sid, user_id, now_ms);
    }
    return rc;
}

int session_start(const struct store_ops *ops, struct store_conn *sc, int64_t user_id,
                  int64_t now_ms, int64_t ttl_ms, char token[AUTH_REFRESH_LEN + 1], int64_t *sid)
{
    int rc = session_create(ops, sc, user_id, now_ms, sid);
    return rc == CD_OK ? issue(ops, sc, user_id, *sid, now_ms, ttl_ms, token) : rc;
}

int session_rotate(const struct store_ops *ops, struct store_conn *sc, const uint8_t hash[32],
                   int64_t now_ms, int64_t ttl_ms, char token[AUTH_REFRESH_LEN + 1],
                   int64_t *user_id, int64_t *sid)
{
    struct store_refresh old;
    int rc = ops->refresh_by_hash(sc, hash, &old);

    if (rc == CD_E_NOT_FOUND) return CD_E_INVALID_REFRESH;
    if (rc != CD_OK) return rc;
    if (old.session_revoked) return CD_E_INVALID_REFRESH;
    if (old.used_at) {
        log_warn("refresh token reuse: session revoked", "\"user\":%lld,\"session\":%lld",
                 (long long)old.user_id, (long long)old.session_id);
        rc = ops->session_revoke(sc, old.session_id, now_ms);
        if (rc != CD_OK) return rc;
        *user_id = old.user_id;
        *sid = old.session_id;
        return CD_E_INVALID_REFRESH;
    }
    if (old.expires_at <= now_ms) return CD_E_INVALID_REFRESH;
    if ((rc = ops->refresh_mark_used(sc, old.id, now_ms)) != CD_OK) return rc;
    *user_id = old.user_id;
    *sid = old.session_id;
    return issue(ops, sc, old.user_id, old.session_id, now_ms, ttl_ms, token);
}

int session_end(const struct store_ops *ops, struct store_conn *sc, const uint8_t hash[32],
                int64_t now_ms, int64_t *user_id, int64_t *sid)
{
    struct store_refresh old;
    int rc = ops->refresh_by_hash(sc, hash, &old);
    if (rc == CD_E_NOT_FOUND) return CD_E_INVALID_REFRESH;
    if (rc != CD_OK) return rc;
    *user_id = old.user_id;
    *sid = old.session_id;
    return ops->session_revoke(sc, old.session_id, now_ms);
}
