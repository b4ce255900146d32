/* api_auth.c - accounts and tokens: register, login, refresh (rotation + reuse detection),
 * logout, me, users/{id}. Password hashing and database reads run on the thread pool; writes go
 * through the writer's group commit; answers return on the connection's I/O thread. */
#include <sodium.h>
#include <string.h>

#include "util/clock.h"
#include "auth/auth.h"
#include "auth/session.h"
#include "chat/people.h"
#include "server/app.h"
#include "util/log.h"
#include "util/status.h"

struct auth_call {
    struct api_call base; /* first: a struct api_call * is a struct auth_call * */
    char username[AUTH_USERNAME_MAX + 1];
    char password[AUTH_PASSWORD_MAX + 1];
    size_t pwlen;
    char pwhash[AUTH_PWHASH_MAX];
    char refresh[AUTH_REFRESH_LEN + 1];
    char pair[AUTH_USERNAME_MAX + 64]; /* login: "username\0client IP", the per-pair key */
    size_t pair_len;
    uint8_t rhash[32];
    int64_t user_id, sid;
    int64_t ended_sid; /* session this call revoked (logout, refresh-token reuse), 0 if none */
};

/* ---- shared pieces ---- */

static int body_string(json_t *body, const char *key, const char **out, size_t *len)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_string(v)) return 0;
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

static int limited(struct api_req *r, struct limiter *l, const char *key, size_t len)
{
    int64_t wait = limiter_take(l, key, len, clock_unix_ms());
    if (wait) api_respond_retry(r, wait);
    return wait != 0;
}

static int limited_ip(struct api_req *r)
{
    const char *ip = r->http->client_ip ? r->http->client_ip : "";
    return limited(r, &r->app->auth_ip, ip, strlen(ip));
}

static json_t *user_json(int64_t id, const char *username)
{
    char sid[24];
    id_format(sid, sizeof(sid), 'u', id);
    return json_pack("{s:s,s:s}", "id", sid, "username", username);
}

/* Writer thread: start a session (token family) and issue its first refresh token. */
static int start_session(const struct store_ops *ops, struct store_conn *sc, struct auth_call *a)
{
    return session_start(ops, sc, a->user_id, clock_unix_ms(), a->base.app->cfg.refresh_ttl * 1000,
                         a->refresh, &a->sid);
}

json_t *api_token_json(struct app *app, int64_t user, const char *username, int64_t sid,
                       const char *refresh)
{
    struct jwt_claims cl;
    char access[JWT_MAX_TOKEN + 1];
    int64_t now = clock_unix_ms() / 1000;

    cl.sub = user;
    cl.iat = now;
    cl.exp = now + app->cfg.access_ttl;
    cl.sid = sid;
    if (jwt_sign(&app->keys, &cl, access, sizeof(access)) != CD_OK) return NULL;
    return json_pack("{s:o,s:s,s:s,s:s,s:I}", "user", user_json(user, username), "access_token",
                     access, "refresh_token", refresh, "token_type", "Bearer", "expires_in",
                     (json_int_t)app->cfg.access_ttl);
}

static json_t *token_response(struct auth_call *a)
{
    return api_token_json(a->base.app, a->user_id, a->username, a->sid, a->refresh);
}

static int finish_tokens(struct auth_call *a)
{
    a->base.result = token_response(a);
    return a->base.result ? CD_OK : CD_E_INTERNAL;
}

/* username and password (strings) of the body; answers 400 itself when missing. */
static int credentials(struct api_req *r, const char **user, size_t *ulen, const char **pw,
                       size_t *pwlen)
{
    if (body_string(r->body, "username", user, ulen) && body_string(r->body, "password", pw, pwlen))
        return 1;
    api_respond_error(r, CD_E_INVALID_FIELD, "username and password (strings) are required");
    return 0;
}

/* Hash or verify on the pool (work), then continue on the I/O thread (after). */
static void credential_call(struct api_req *r, const char *user, size_t ulen, const char *pw,
                            size_t pwlen, const char *pair, size_t pair_len,
                            void (*work)(struct api_call *), void (*after)(struct api_call *))
{
    struct auth_call *a = (struct auth_call *)api_call_new(r, sizeof(*a));
    memcpy(a->pair, pair, pair_len);
    a->pair_len = pair_len;
    memcpy(a->username, user, ulen);
    memcpy(a->password, pw, pwlen);
    a->pwlen = pwlen;
    a->base.work_fn = work;
    a->base.after_fn = after;
    api_call_work(&a->base);
}

/* After the pool: answer an error, or write the session with exec. */
static void write_unless_failed(struct api_call *call,
                                int (*exec)(const struct store_ops *, struct store_conn *,
                                            struct store_job *))
{
    if (call->status != CD_OK || !conn_alive(call->c)) {
        api_call_finish(call);
        return;
    }
    call->job.exec = exec;
    api_call_write(call);
}

/* ---- register ---- */

/* New users get opaque random ids (chat/people.h); a drawn id that is taken is drawn again. */
static int register_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct auth_call *a = (struct auth_call *)((char *)j - offsetof(struct api_call, job));
    int rc = people_user_create(ops, sc, a->username, a->pwhash, clock_unix_ms(), &a->user_id);
    if (rc == CD_OK) rc = start_session(ops, sc, a);
    if (rc == CD_OK) rc = finish_tokens(a);
    return rc;
}

static void register_hash(struct api_call *call)
{
    struct auth_call *a = (struct auth_call *)call;
    struct cfg *cfg = &call->app->cfg;
    call->status = auth_hash_password(a->password, a->pwlen, (uint64_t)cfg->pwhash_ops,
                                      (uint64_t)cfg->pwhash_mem_kib, a->pwhash);
    sodium_memzero(a->password, sizeof(a->password));
}

static void register_hashed(struct api_call *call)
{
    call->http_status = 201;
    write_unless_failed(call, register_exec);
}

void api_register(struct api_req *r)
{
    const char *user, *pw;
    size_t ulen, pwlen;

    if (!credentials(r, &user, &ulen, &pw, &pwlen)) return;
    if (!auth_username_valid(user, ulen)) {
        api_respond_error(r, CD_E_INVALID_USERNAME, NULL);
        return;
    }
    if (!auth_password_valid(pwlen)) {
        api_respond_error(r, CD_E_WEAK_PASSWORD, NULL);
        return;
    }
    if (limited_ip(r)) return;
    credential_call(r, user, ulen, pw, pwlen, "", 0, register_hash, register_hashed);
}

/* ---- login ---- */

static int login_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct auth_call *a = (struct auth_call *)((char *)j - offsetof(struct api_call, job));
    int rc = start_session(ops, sc, a);
    if (rc == CD_OK) rc = finish_tokens(a);
    return rc;
}

static void login_verify(struct api_call *call)
{
    struct auth_call *a = (struct auth_call *)call;
    struct cfg *cfg = &call->app->cfg;
    struct store_conn *sc = store_reader(&call->app->db);
    struct store_user u;
    int rc = sc ? call->app->db.ops->user_by_name(sc, a->username, &u) : CD_E_IO;
    uint64_t ops = (uint64_t)cfg->pwhash_ops, mem = (uint64_t)cfg->pwhash_mem_kib;

    /* A user of the server API has no password (empty hash): checked against the dummy hash,
     * at the same cost, never a match. */
    if (rc == CD_OK && u.pwhash[0] &&
        auth_verify_password(u.pwhash, a->password, a->pwlen, ops, mem)) {
        a->user_id = u.id;
        call->status = CD_OK;
    } else {
        if (rc != CD_OK || !u.pwhash[0])
            auth_verify_password(NULL, a->password, a->pwlen, ops, mem);
        call->status = rc == CD_E_IO ? CD_E_IO : CD_E_INVALID_CREDENTIALS;
    }
    sodium_memzero(a->password, sizeof(a->password));
}

/* I/O thread: a failure is charged to the (username, IP) pair and to the username; a success
 * costs nothing, so only failures count against a client. */
static void login_verified(struct api_call *call)
{
    struct auth_call *a = (struct auth_call *)call;
    struct app *app = call->app;
    int64_t now = clock_unix_ms();

    if (call->status == CD_E_INVALID_CREDENTIALS) {
        metrics_auth_failure(&app->metrics, AUTH_FAIL_CREDENTIALS);
        log_info("login failed", "\"username\":\"%s\"", a->username);
        limiter_take(&app->auth_pair, a->pair, a->pair_len, now);
        limiter_take(&app->auth_user, a->username, strlen(a->username), now);
    }
    write_unless_failed(call, login_exec);
}

/* Login limits, so that attackers can slow guessing but cannot lock an account out:
 *   per client IP (auth_ip): every attempt, as for register;
 *   per (username, IP) (auth_pair, strict): failures; an empty bucket refuses that client;
 *   per username (auth_user, loose): failures from any IP; once it is empty, only clients (IPs)
 *   that have failed for this username are refused.
 * A client that has not failed for the username is never refused for it, whatever other clients
 * do. Failures are charged after the check, so parallel guesses from one IP are bounded by the
 * per-IP bucket. */
void api_login(struct api_req *r)
{
    const char *user, *pw;
    size_t ulen, pwlen, plen;
    char pair[AUTH_USERNAME_MAX + 64];
    int64_t now, wait;
    int failed_before;

    if (!credentials(r, &user, &ulen, &pw, &pwlen)) return;
    if (limited_ip(r)) return;
    if (ulen > AUTH_USERNAME_MAX || pwlen > AUTH_PASSWORD_MAX || ulen == 0) {
        metrics_auth_failure(&r->app->metrics, AUTH_FAIL_CREDENTIALS);
        api_respond_error(r, CD_E_INVALID_CREDENTIALS, NULL);
        return;
    }
    memcpy(pair, user, ulen);
    pair[ulen] = '\0';
    snprintf(pair + ulen + 1, sizeof(pair) - ulen - 1, "%s",
             r->http->client_ip ? r->http->client_ip : "");
    plen = ulen + 1 + strlen(pair + ulen + 1);
    now = clock_unix_ms();
    wait = limiter_peek(&r->app->auth_pair, pair, plen, now, &failed_before);
    if (!wait && failed_before) wait = limiter_peek(&r->app->auth_user, user, ulen, now, NULL);
    if (wait) {
        api_respond_retry(r, wait);
        return;
    }
    credential_call(r, user, ulen, pw, pwlen, pair, plen, login_verify, login_verified);
}

/* ---- refresh and logout ---- */

/* A failed refresh or logout still commits (reuse detection revokes the family), so the error
 * travels in call->status while the job itself succeeds. */
static int refresh_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct auth_call *a = (struct auth_call *)((char *)j - offsetof(struct api_call, job));
    struct store_user u;
    int rc = session_rotate(ops, sc, a->rhash, clock_unix_ms(), a->base.app->cfg.refresh_ttl * 1000,
                            a->refresh, &a->user_id, &a->sid);

    if (rc == CD_E_INVALID_REFRESH) {
        a->base.status = rc;
        a->ended_sid = a->sid; /* set only when reuse revoked the family */
        metrics_auth_failure(&a->base.app->metrics, AUTH_FAIL_REFRESH);
        return CD_OK;
    }
    if (rc == CD_OK) rc = ops->user_get(sc, a->user_id, &u);
    if (rc != CD_OK) return rc;
    snprintf(a->username, sizeof(a->username), "%s", u.username);
    return finish_tokens(a);
}

static int logout_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct auth_call *a = (struct auth_call *)((char *)j - offsetof(struct api_call, job));
    int rc = session_end(ops, sc, a->rhash, clock_unix_ms(), &a->user_id, &a->sid);
    if (rc == CD_E_INVALID_REFRESH) {
        a->base.status = rc;
        return CD_OK;
    }
    if (rc == CD_OK) a->ended_sid = a->sid;
    return rc;
}

/* Writer thread, after the commit: a revoked session's access tokens end with it. */
static void session_ended(struct api_call *call)
{
    struct auth_call *a = (struct auth_call *)call;
    if (call->job.status == CD_OK && a->ended_sid)
        app_session_end(call->app, a->user_id, a->ended_sid);
}

static void refresh_like(struct api_req *r,
                         int (*exec)(const struct store_ops *, struct store_conn *,
                                     struct store_job *),
                         int http_status)
{
    const char *tok;
    size_t len;
    struct auth_call *a;

    if (!body_string(r->body, "refresh_token", &tok, &len)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "refresh_token (string) is required");
        return;
    }
    if (len != AUTH_REFRESH_LEN) {
        metrics_auth_failure(&r->app->metrics, AUTH_FAIL_REFRESH);
        api_respond_error(r, CD_E_INVALID_REFRESH, NULL);
        return;
    }
    a = (struct auth_call *)api_call_new(r, sizeof(*a));
    auth_refresh_hash(tok, len, a->rhash);
    a->base.http_status = http_status;
    a->base.committed = session_ended;
    a->base.job.exec = exec;
    api_call_write(&a->base);
}

void api_refresh(struct api_req *r)
{
    refresh_like(r, refresh_exec, 200);
}

void api_logout(struct api_req *r)
{
    refresh_like(r, logout_exec, 204);
}

/* ---- me and users ---- */

/* Worker thread: the user a->user_id, or the one named a->username when it is set. */
static void user_read(struct api_call *call)
{
    struct auth_call *a = (struct auth_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    const struct store_ops *ops = call->app->db.ops;
    struct store_user u;
    struct store_profile p;
    int rc = !sc              ? CD_E_IO
             : a->username[0] ? ops->user_by_name(sc, a->username, &u)
                              : ops->user_get(sc, a->user_id, &u);
    int visible;
    json_t *user;

    if (rc == CD_OK) rc = ops->profile_get(sc, u.id, &p);
    call->status = rc;
    if (rc != CD_OK) return;
    a->user_id = u.id;
    visible = a->user_id == a->sid; /* sid holds the caller here */
    user = api_user_json(&p);
    /* Presence is shown to the user and to those who share a room with them, unless the user
     * blocks them; a deleted user has none. */
    if (!visible && !p.deleted_at && !people_blocks(u.id, a->sid) &&
        ops->users_share_room(sc, a->user_id, a->sid, &visible) != CD_OK)
        visible = 0;
    if (visible) {
        int64_t seen;
        int online = presence_get(call->app->presence, u.id, &seen);
        if (!online && call->app->gpresence) /* on another node? (stays offline if unsure) */
            presence_redis_online(call->app->gpresence, u.id, &online);
        json_object_set_new(user, "status", json_string(online ? "online" : "offline"));
        if (!seen) seen = u.last_seen;
        json_object_set_new(user, "last_seen", seen ? json_integer(seen) : json_null());
    }
    call->result = json_pack("{s:o}", "user", user);
}

static void user_lookup(struct api_req *r, int64_t id)
{
    struct auth_call *a = (struct auth_call *)api_call_new(r, sizeof(*a));
    a->user_id = id;
    a->sid = r->user_id;
    a->base.work_fn = user_read;
    a->base.after_fn = api_call_finish;
    api_call_work(&a->base);
}

/* GET /v1/users?username=NAME: find a user by name (to add them to a room, open a DM). */
void api_user_find(struct api_req *r)
{
    struct auth_call *a;
    char name[AUTH_USERNAME_MAX + 2];
    if (http_query_value(r->http, "prefix", name, sizeof(name)) != 0) {
        api_users_prefix(r); /* GET /v1/users?prefix= */
        return;
    }
    if (!http_query_param(r->http, "username", name, sizeof(name)) || !name[0] ||
        strlen(name) > AUTH_USERNAME_MAX) {
        api_respond_error(r, CD_E_INVALID_FIELD, "username query parameter (3-32 chars) required");
        return;
    }
    a = (struct auth_call *)api_call_new(r, sizeof(*a));
    memcpy(a->username, name, strlen(name) + 1);
    a->sid = r->user_id;
    a->base.work_fn = user_read;
    a->base.after_fn = api_call_finish;
    api_call_work(&a->base);
}

void api_me(struct api_req *r)
{
    user_lookup(r, r->user_id);
}

void api_user(struct api_req *r)
{
    int64_t id;
    if (!id_parse(r->param, 'u', &id)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such user");
        return;
    }
    user_lookup(r, id);
}
