/* api_people.c - people and room features over REST (issue 14 part 5): profiles, password,
 * sessions, account deletion, finding users by prefix, contacts, blocks, public rooms, joining,
 * leaving, deleting rooms, member pages and invite links. The rules live in chat/people.c and
 * chat/rooms.c; this file only translates HTTP to calls. Reads run on the thread pool, writes
 * as writer jobs whose events are published after the commit, password hashing on the pool. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "chat/events.h"
#include "chat/people.h"
#include "chat/rooms.h"
#include "server/app.h"
#include "util/clock.h"
#include "util/status.h"

#define PAGE_DEFAULT        100
#define PAGE_MAX            500
#define PREFIX_PAGE_DEFAULT 20
#define PREFIX_PAGE_MAX     100
#define MEMBERS_PAGE_MAX    1000
#define INVITE_TTL_DEFAULT  (7 * 24 * 3600) /* seconds */
#define INVITE_TTL_MIN      1
#define INVITE_TTL_MAX      (30 * 24 * 3600)
#define INVITE_USES_DEFAULT 100
#define INVITE_USES_MAX     10000
#define INVITE_TOKEN_LEN    AUTH_REFRESH_LEN

struct people_call {
    struct api_call base; /* first */
    int64_t user, sid;    /* the caller and its session */
    int64_t target;       /* a user, a session or a room */
    int table;            /* enum store_pair */
    int64_t after;
    int limit;
    int more;
    char lo[STORE_USERNAME_MAX + 1], hi[STORE_USERNAME_MAX + 1], after_name[STORE_USERNAME_MAX + 1];
    struct api_profile prof; /* PATCH /v1/me */
    char password[AUTH_PASSWORD_MAX + 1], new_password[AUTH_PASSWORD_MAX + 1];
    size_t pwlen, new_pwlen;
    char pwhash[AUTH_PWHASH_MAX];
    struct store_invite invite;
    char token[INVITE_TOKEN_LEN + 1];
    int64_t *ended; /* sessions ended by the job (malloc'ed) */
    size_t nended;
    int block_change; /* blocks: 1 added, -1 removed, 0 none */
    int erased;       /* account deleted */
    struct chat_out out;
    json_t *arr;
    int64_t last; /* id of a page's last row */
};

#define PEOPLE_CALL(j) ((struct people_call *)((char *)(j)-offsetof(struct api_call, job)))

static int job_status(struct people_call *pc, int status)
{
    if (status != CD_OK) {
        chat_out_discard(&pc->out);
        pc->base.status = status;
    }
    return status;
}

/* Writer thread, after the commit: publish the entries, end sessions, update the block set. */
static void people_committed(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    if (call->status != CD_OK) {
        chat_out_discard(&pc->out);
        return;
    }
    chat_out_commit(&pc->out, &call->app->fanout);
    for (size_t i = 0; i < pc->nended; i++)
        app_session_end(call->app, pc->user, pc->ended[i]);
    /* The presence filter of this node now, of the others through the bus (FAN_BLOCK). */
    if (pc->block_change) {
        people_blocks_note(pc->user, pc->target, pc->block_change > 0);
        fanout_add(&call->app->fanout, &(struct fan_ev){.kind = FAN_BLOCK,
                                                        .user = pc->user,
                                                        .seq = pc->target,
                                                        .member = (uint8_t)(pc->block_change > 0)});
    }
    if (pc->erased) {
        people_blocks_forget_user(pc->user);
        fanout_add(&call->app->fanout,
                   &(struct fan_ev){.kind = FAN_BLOCK, .user = pc->user, .member = 2});
    }
}

static void people_cleanup(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    chat_out_discard(&pc->out);
    free(pc->ended);
    json_decref(pc->arr);
    sodium_memzero(pc->password, sizeof(pc->password));
    sodium_memzero(pc->new_password, sizeof(pc->new_password));
}

static struct people_call *people_call_new(struct api_req *r)
{
    struct people_call *pc = (struct people_call *)api_call_new(r, sizeof(*pc));
    pc->user = r->user_id;
    pc->sid = r->sid;
    pc->base.committed = people_committed;
    pc->base.cleanup = people_cleanup;
    return pc;
}

static void run_read(struct people_call *pc, void (*work)(struct api_call *))
{
    pc->base.work_fn = work;
    pc->base.after_fn = api_call_finish;
    api_call_work(&pc->base);
}

static void run_write(struct people_call *pc, int (*exec)(const struct store_ops *,
                                                          struct store_conn *, struct store_job *))
{
    pc->base.job.exec = exec;
    api_call_write(&pc->base);
}

json_t *api_user_json(const struct store_profile *p)
{
    char id[32];
    json_t *o;
    id_format(id, sizeof(id), 'u', p->id);
    o = json_pack("{s:s,s:o,s:s,s:o,s:s,s:I}", "id", id, "username",
                  p->deleted_at ? json_null() : json_string(p->username), "display_name",
                  p->display_name, "avatar", p->avatar[0] ? json_string(p->avatar) : json_null(),
                  "status_text", p->status_text, "created_at", (json_int_t)p->created_at);
    if (p->deleted_at) json_object_set_new(o, "deleted", json_true());
    return o;
}

/* limit (1-max, default def) and an id `after` of the given kind (absent: 0). */
static int page_params(struct api_req *r, char kind, int def, int max, int64_t *after, int *limit)
{
    int64_t l = def;
    int has;
    char buf[32], msg[64];
    if (!api_query_int(r, "limit", &l, &has)) return 0;
    if (has && (l < 1 || l > max)) {
        snprintf(msg, sizeof(msg), "limit must be 1-%d", max);
        api_respond_error(r, CD_E_INVALID_FIELD, msg);
        return 0;
    }
    *limit = (int)l;
    *after = 0;
    switch (http_query_value(r->http, "after", buf, sizeof(buf))) {
    case 0:
        return 1;
    case 1:
        if (id_parse((struct slice){buf, strlen(buf)}, kind, after)) return 1;
        /* fall through */
    default:
        snprintf(msg, sizeof(msg), "after must be a %s id, given once",
                 kind == 'u' ? "user" : "room");
        api_respond_error(r, CD_E_INVALID_FIELD, msg);
        return 0;
    }
}

/* The page's JSON: {key: arr, has_more, next}. */
static void page_result(struct people_call *pc, const char *key, char kind)
{
    char next[32];
    id_format(next, sizeof(next), kind, pc->last);
    pc->base.result = json_pack("{s:O,s:b,s:o}", key, pc->arr, "has_more", pc->more, "next",
                                pc->more ? json_string(next) : json_null());
}

/* ---- PATCH /v1/me ---- */

static int me_patch_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    struct store_profile p;
    int st = api_profile_set(ops, sc, pc->user, &pc->prof, &p, &pc->base.error_message);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.result = json_pack("{s:o}", "user", api_user_json(&p));
    return CD_OK;
}

/* A profile text field: absent, or a string passing check (null clears it). */
static int profile_field(struct api_req *r, const char *key, size_t max, int avatar, char *out,
                         int *present)
{
    json_t *v = json_object_get(r->body, key);
    char msg[128];
    *present = 0;
    if (!v) return 1;
    if (json_is_null(v)) {
        out[0] = '\0';
        *present = 1;
        return 1;
    }
    if (json_is_string(v) &&
        (avatar ? people_avatar_valid(json_string_value(v), json_string_length(v))
                : people_text_valid(json_string_value(v), json_string_length(v), max))) {
        memcpy(out, json_string_value(v), json_string_length(v) + 1);
        *present = 1;
        return 1;
    }
    if (avatar)
        snprintf(msg, sizeof(msg), "avatar must be an upload id (att_ and 32 hex digits) or null");
    else
        snprintf(msg, sizeof(msg),
                 "%s must be a string of at most %zu bytes without control "
                 "characters",
                 key, max);
    api_respond_error(r, CD_E_INVALID_FIELD, msg);
    return 0;
}

int api_profile_fields(struct api_req *r, struct api_profile *out)
{
    memset(out, 0, sizeof(*out));
    return profile_field(r, "display_name", STORE_DISPLAY_NAME_MAX, 0, out->display_name,
                         &out->has_display_name) &&
           profile_field(r, "avatar", STORE_AVATAR_MAX, 1, out->avatar, &out->has_avatar) &&
           profile_field(r, "status_text", STORE_STATUS_TEXT_MAX, 0, out->status_text,
                         &out->has_status_text);
}

int api_profile_set(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                    const struct api_profile *prof, struct store_profile *out, const char **why)
{
    int st = CD_OK;
    /* a new avatar: the user's own image upload (checked in the write's transaction) */
    if (prof->has_avatar && prof->avatar[0])
        st = people_avatar_check(ops, sc, user, prof->avatar, why);
    if (st == CD_OK)
        st = ops->profile_set(sc, user, prof->has_display_name ? prof->display_name : NULL,
                              prof->has_avatar ? prof->avatar : NULL,
                              prof->has_status_text ? prof->status_text : NULL);
    return st == CD_OK ? ops->profile_get(sc, user, out) : st;
}

void api_me_patch(struct api_req *r)
{
    struct people_call *pc;
    struct api_profile prof;

    if (!api_profile_fields(r, &prof)) return;
    if (!prof.has_display_name && !prof.has_avatar && !prof.has_status_text) {
        api_respond_error(r, CD_E_INVALID_FIELD, "display_name, avatar or status_text is required");
        return;
    }
    if (api_room_op_limited(r)) return; /* the --room-rate bucket bounds the writer's work */
    pc = people_call_new(r);
    pc->prof = prof;
    run_write(pc, me_patch_exec);
}

/* ---- password checks shared by POST /v1/me/password and DELETE /v1/me ---- */

/* Pool: verify the current password at full cost; then hash the new one (if any). */
static void verify_work(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    struct cfg *cfg = &call->app->cfg;
    struct store_conn *sc = store_reader(&call->app->db);
    struct store_user u;
    uint64_t ops = (uint64_t)cfg->pwhash_ops, mem = (uint64_t)cfg->pwhash_mem_kib;
    int rc = sc ? call->app->db.ops->user_get(sc, pc->user, &u) : CD_E_IO;

    if (rc == CD_OK && auth_verify_password(u.pwhash, pc->password, pc->pwlen, ops, mem)) {
        call->status = pc->new_pwlen ? auth_hash_password(pc->new_password, pc->new_pwlen, ops, mem,
                                                          pc->pwhash)
                                     : CD_OK;
    } else {
        if (rc != CD_OK) auth_verify_password(NULL, pc->password, pc->pwlen, ops, mem);
        call->status = rc == CD_E_IO ? CD_E_IO : CD_E_INVALID_CREDENTIALS;
    }
    sodium_memzero(pc->password, sizeof(pc->password));
    sodium_memzero(pc->new_password, sizeof(pc->new_password));
}

static void verified(struct api_call *call)
{
    if (call->status != CD_OK || !conn_alive(call->c)) {
        api_call_finish(call);
        return;
    }
    api_call_write(call); /* job.exec set by the handler */
}

static int take_password(struct api_req *r, const char *key, char *out, size_t *len)
{
    json_t *v = json_object_get(r->body, key);
    char msg[64];
    if (json_is_string(v) && json_string_length(v) <= AUTH_PASSWORD_MAX) {
        *len = json_string_length(v);
        memcpy(out, json_string_value(v), *len);
        return 1;
    }
    snprintf(msg, sizeof(msg), "%s (string, at most %d bytes) is required", key, AUTH_PASSWORD_MAX);
    api_respond_error(r, CD_E_INVALID_FIELD, msg);
    return 0;
}

/* Every attempt spends the caller's IP token of --auth-rate, as a login does. */
static int auth_limited(struct api_req *r)
{
    char ip[64];
    int64_t wait;
    conn_peer_ip(r->c, ip, sizeof(ip));
    wait = limiter_take(&r->app->auth_ip, ip, strlen(ip), clock_unix_ms());
    if (wait) api_respond_retry(r, wait);
    return wait != 0;
}

struct sess_ctx {
    struct people_call *pc;
    int64_t keep; /* a session not to collect (-1: none) */
    int64_t find; /* a session to look for (0: none) */
    int found;
    int64_t *v;
    size_t n, cap;
};

static int sess_collect(void *ud, const struct store_session *s)
{
    struct sess_ctx *x = ud;
    if (s->id == x->find) x->found = 1;
    if (s->id == x->keep || (x->find && s->id != x->find)) return 0;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 8;
        x->v = xrealloc(x->v, x->cap * sizeof(*x->v));
    }
    x->v[x->n++] = s->id;
    return 0;
}

/* Revoke the collected sessions; they are ended (tokens refused, sockets closed 4001) after the
 * commit. */
static int revoke_collected(const struct store_ops *ops, struct store_conn *sc,
                            struct people_call *pc, struct sess_ctx *x)
{
    int64_t now = clock_unix_ms();
    int st = CD_OK;
    for (size_t i = 0; i < x->n && st == CD_OK; i++)
        st = ops->session_revoke(sc, x->v[i], now);
    if (st == CD_OK) {
        pc->ended = x->v;
        pc->nended = x->n;
    } else {
        free(x->v);
    }
    return st;
}

/* ---- POST /v1/me/password ---- */

static int password_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    struct sess_ctx x = {pc, pc->sid ? pc->sid : -1, 0, 0, NULL, 0, 0};
    int st = ops->user_set_pwhash(sc, pc->user, pc->pwhash);
    if (st == CD_OK) st = ops->sessions_of_user(sc, pc->user, 0, sess_collect, &x);
    if (st == CD_OK)
        st = revoke_collected(ops, sc, pc, &x);
    else
        free(x.v);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.http_status = 204;
    return CD_OK;
}

void api_me_password(struct api_req *r)
{
    struct people_call *pc;
    char cur[AUTH_PASSWORD_MAX + 1], nw[AUTH_PASSWORD_MAX + 1];
    size_t curlen, nwlen;

    if (!take_password(r, "current", cur, &curlen) || !take_password(r, "new", nw, &nwlen))
        goto wipe;
    if (!auth_password_valid(nwlen)) {
        api_respond_error(r, CD_E_WEAK_PASSWORD, NULL);
        goto wipe;
    }
    if (auth_limited(r)) goto wipe;
    pc = people_call_new(r);
    memcpy(pc->password, cur, curlen);
    pc->pwlen = curlen;
    memcpy(pc->new_password, nw, nwlen);
    pc->new_pwlen = nwlen;
    pc->base.job.exec = password_exec;
    pc->base.work_fn = verify_work;
    pc->base.after_fn = verified;
    api_call_work(&pc->base);
wipe:
    sodium_memzero(cur, sizeof(cur));
    sodium_memzero(nw, sizeof(nw));
}

/* ---- DELETE /v1/me ---- */

static int me_delete_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    int st = people_account_delete(ops, sc, pc->user, clock_unix_ms(), &pc->out, &pc->ended,
                                   &pc->nended);
    if (job_status(pc, st) != CD_OK) return st;
    pc->erased = 1;
    pc->base.http_status = 204;
    return CD_OK;
}

void api_me_delete(struct api_req *r)
{
    struct people_call *pc;
    char pw[AUTH_PASSWORD_MAX + 1];
    size_t pwlen;

    if (!take_password(r, "password", pw, &pwlen)) return;
    if (auth_limited(r)) {
        sodium_memzero(pw, sizeof(pw));
        return;
    }
    pc = people_call_new(r);
    memcpy(pc->password, pw, pwlen);
    pc->pwlen = pwlen;
    sodium_memzero(pw, sizeof(pw));
    pc->base.job.exec = me_delete_exec;
    pc->base.work_fn = verify_work;
    pc->base.after_fn = verified;
    api_call_work(&pc->base);
}

/* ---- sessions ---- */

static int sess_row(void *ud, const struct store_session *s)
{
    struct people_call *pc = ud;
    char id[32];
    id_format(id, sizeof(id), 's', s->id);
    json_array_append_new(
        pc->arr, json_pack("{s:s,s:I,s:I,s:b}", "id", id, "created_at", (json_int_t)s->created_at,
                           "last_used_at", (json_int_t)s->last_used, "current", s->id == pc->sid));
    return 0;
}

static void sessions_work(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    pc->arr = json_array();
    call->status =
        sc ? call->app->db.ops->sessions_of_user(sc, pc->user, clock_unix_ms(), sess_row, pc)
           : CD_E_IO;
    if (call->status == CD_OK) call->result = json_pack("{s:O}", "sessions", pc->arr);
}

void api_sessions_list(struct api_req *r)
{
    run_read(people_call_new(r), sessions_work);
}

static int session_end_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    struct sess_ctx x = {pc, -1, pc->target, 0, NULL, 0, 0};
    int st = ops->sessions_of_user(sc, pc->user, clock_unix_ms(), sess_collect, &x);
    if (st == CD_OK && !x.found) st = CD_E_NOT_FOUND;
    if (st == CD_OK)
        st = revoke_collected(ops, sc, pc, &x);
    else
        free(x.v);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.http_status = 204;
    return CD_OK;
}

void api_session_end(struct api_req *r)
{
    struct people_call *pc;
    int64_t sid;
    if (!id_parse(r->param, 's', &sid)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such session");
        return;
    }
    pc = people_call_new(r);
    pc->target = sid;
    run_write(pc, session_end_exec);
}

/* ---- GET /v1/users?prefix= ---- */

static int prefix_row(void *ud, const struct store_profile *p, const struct store_member *m,
                      int64_t at)
{
    struct people_call *pc = ud;
    (void)m;
    (void)at;
    if ((int)json_array_size(pc->arr) == pc->limit) {
        pc->more = 1;
        return 1;
    }
    snprintf(pc->after_name, sizeof(pc->after_name), "%s", p->username);
    json_array_append_new(pc->arr, api_user_json(p));
    return 0;
}

static void prefix_work(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    pc->arr = json_array();
    call->status = sc ? call->app->db.ops->users_by_prefix(sc, pc->lo, pc->hi, pc->after_name,
                                                           pc->limit + 1, prefix_row, pc)
                      : CD_E_IO;
    if (call->status == CD_OK)
        call->result = json_pack("{s:O,s:b,s:o}", "users", pc->arr, "has_more", pc->more, "next",
                                 pc->more ? json_string(pc->after_name) : json_null());
}

void api_users_prefix(struct api_req *r)
{
    struct people_call *pc;
    char prefix[STORE_USERNAME_MAX + 2], after[STORE_USERNAME_MAX + 2] = "", lo[40], hi[40];
    char key[24];
    int64_t limit = PREFIX_PAGE_DEFAULT, wait;
    int has, n;

    if (http_query_value(r->http, "prefix", prefix, sizeof(prefix)) != 1 ||
        !people_prefix_range(prefix, strlen(prefix), lo, hi)) {
        api_respond_error(r, CD_E_INVALID_FIELD,
                          "prefix must be given once, 2-32 characters of a-z 0-9 _ . -");
        return;
    }
    if (!api_query_int(r, "limit", &limit, &has)) return;
    if (has && (limit < 1 || limit > PREFIX_PAGE_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "limit must be 1-100");
        return;
    }
    switch (http_query_value(r->http, "after", after, sizeof(after))) {
    case 0:
    case 1:
        if (strlen(after) <= STORE_USERNAME_MAX) break;
        /* fall through */
    default:
        api_respond_error(r, CD_E_INVALID_FIELD, "after must be a username, given once");
        return;
    }
    n = snprintf(key, sizeof(key), "%lld", (long long)r->user_id);
    if ((wait = limiter_take(&r->app->user_search, key, (size_t)n, clock_unix_ms()))) {
        api_respond_retry(r, wait);
        return;
    }
    pc = people_call_new(r);
    memcpy(pc->lo, lo, strlen(lo) + 1);
    memcpy(pc->hi, hi, strlen(hi) + 1);
    memcpy(pc->after_name, after, strlen(after) + 1);
    pc->limit = (int)limit;
    run_read(pc, prefix_work);
}

/* ---- contacts and blocks ---- */

static int pair_row(void *ud, const struct store_profile *p, const struct store_member *m,
                    int64_t at)
{
    struct people_call *pc = ud;
    json_t *o;
    (void)m;
    if ((int)json_array_size(pc->arr) == pc->limit) {
        pc->more = 1;
        return 1;
    }
    pc->last = p->id;
    o = api_user_json(p);
    json_object_set_new(o, "added_at", json_integer(at));
    json_array_append_new(pc->arr, o);
    return 0;
}

static void pairs_work(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    pc->arr = json_array();
    call->status = sc ? call->app->db.ops->pair_list(sc, pc->table, pc->user, pc->after,
                                                     pc->limit + 1, pair_row, pc)
                      : CD_E_IO;
    if (call->status == CD_OK)
        page_result(pc, pc->table == STORE_BLOCKS ? "blocks" : "contacts", 'u');
}

static void pairs_list(struct api_req *r, int table)
{
    struct people_call *pc;
    int64_t after;
    int limit;
    if (!page_params(r, 'u', PAGE_DEFAULT, PAGE_MAX, &after, &limit)) return;
    pc = people_call_new(r);
    pc->table = table;
    pc->after = after;
    pc->limit = limit;
    run_read(pc, pairs_work);
}

#define PAIRS_MAX 10000 /* contacts, and blocks, per user */

static int count_row(void *ud, const struct store_profile *p, const struct store_member *m,
                     int64_t at)
{
    (void)p;
    (void)m;
    (void)at;
    ++*(int *)ud;
    return 0;
}

/* CD_E_QUOTA_PAIRS when user has PAIRS_MAX of table already and other is not among them.
 * O(PAIRS_MAX) at worst, on additions only. */
static int pairs_quota(const struct store_ops *ops, struct store_conn *sc, int table, int64_t user,
                       int64_t other)
{
    int n = 0, have = 0;
    int st = ops->pair_list(sc, table, user, 0, PAIRS_MAX, count_row, &n);
    if (st != CD_OK || n < PAIRS_MAX) return st;
    if ((st = ops->pair_exists(sc, table, user, other, &have)) != CD_OK) return st;
    return have ? CD_OK : CD_E_QUOTA_PAIRS;
}

static int pair_add_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    struct store_profile p;
    int64_t now = clock_unix_ms();
    int st = pairs_quota(ops, sc, pc->table, pc->user, pc->target);
    if (st != CD_OK) {
        job_status(pc, st);
        return st;
    }
    if (pc->table == STORE_BLOCKS) {
        st = people_block_exec(ops, sc, pc->user, pc->target, now);
    } else {
        st = ops->profile_get(sc, pc->target, &p);
        if (st == CD_OK && p.deleted_at) st = CD_E_NOT_FOUND;
        if (st == CD_OK && pc->target == pc->user) st = CD_E_INVALID_FIELD;
        if (st == CD_OK) st = ops->pair_put(sc, STORE_CONTACTS, pc->user, pc->target, now);
    }
    if (st == CD_OK) st = ops->profile_get(sc, pc->target, &p);
    if (job_status(pc, st) != CD_OK) return st;
    pc->block_change = pc->table == STORE_BLOCKS;
    pc->base.result = json_pack("{s:o}", "user", api_user_json(&p));
    return CD_OK;
}

static void pair_add(struct api_req *r, int table)
{
    struct people_call *pc;
    int64_t user;
    if (!api_body_user(r, &user) || api_room_op_limited(r)) return;
    pc = people_call_new(r);
    pc->table = table;
    pc->target = user;
    run_write(pc, pair_add_exec);
}

static int pair_remove_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    int st = ops->pair_delete(sc, pc->table, pc->user, pc->target);
    if (job_status(pc, st) != CD_OK) return st;
    pc->block_change = pc->table == STORE_BLOCKS ? -1 : 0;
    pc->base.http_status = 204;
    return CD_OK;
}

static void pair_remove(struct api_req *r, int table)
{
    struct people_call *pc;
    int64_t user;
    if (!id_parse(r->param, 'u', &user)) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such user");
        return;
    }
    pc = people_call_new(r);
    pc->table = table;
    pc->target = user;
    run_write(pc, pair_remove_exec);
}

void api_contacts_list(struct api_req *r)
{
    pairs_list(r, STORE_CONTACTS);
}
void api_contact_add(struct api_req *r)
{
    pair_add(r, STORE_CONTACTS);
}
void api_contact_remove(struct api_req *r)
{
    pair_remove(r, STORE_CONTACTS);
}
void api_blocks_list(struct api_req *r)
{
    pairs_list(r, STORE_BLOCKS);
}
void api_block_add(struct api_req *r)
{
    pair_add(r, STORE_BLOCKS);
}
void api_block_remove(struct api_req *r)
{
    pair_remove(r, STORE_BLOCKS);
}

/* ---- public rooms ---- */

static int public_row(void *ud, const struct store_room *room, const struct store_member *m)
{
    struct people_call *pc = ud;
    json_t *o;
    (void)m;
    if ((int)json_array_size(pc->arr) == pc->limit) {
        pc->more = 1;
        return 1;
    }
    pc->last = room->id;
    o = api_room_json(room);
    json_array_append_new(pc->arr, o);
    return 0;
}

static void public_work(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    pc->arr = json_array();
    call->status =
        sc ? call->app->db.ops->rooms_public(sc, pc->after, pc->limit + 1, public_row, pc)
           : CD_E_IO;
    if (call->status == CD_OK) page_result(pc, "rooms", 'r');
}

void api_rooms_public(struct api_req *r)
{
    struct people_call *pc;
    int64_t after;
    int limit;
    if (!page_params(r, 'r', PAGE_DEFAULT, PAGE_MAX, &after, &limit)) return;
    pc = people_call_new(r);
    pc->after = after;
    pc->limit = limit;
    run_read(pc, public_work);
}

/* ---- room writes: delete, join, leave ---- */

static int room_delete_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    int st = chat_room_delete(ops, sc, pc->target, pc->user, clock_unix_ms(), &pc->out);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.http_status = 204;
    return CD_OK;
}

static int room_join_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    struct store_room room;
    int st = chat_room_join(ops, sc, pc->target, pc->user, clock_unix_ms(), &pc->out);
    if (st == CD_OK) st = ops->room_get(sc, pc->target, &room);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.result = json_pack("{s:o}", "room", api_room_json(&room));
    return CD_OK;
}

static int room_leave_exec(const struct store_ops *ops, struct store_conn *sc, struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    int st = chat_room_leave(ops, sc, pc->target, pc->user, clock_unix_ms(), &pc->out);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.http_status = 204;
    return CD_OK;
}

static void room_write(struct api_req *r,
                       int (*exec)(const struct store_ops *, struct store_conn *,
                                   struct store_job *),
                       int limited)
{
    struct people_call *pc;
    int64_t room;
    if (!api_room_param(r, &room)) return;
    if (limited && api_room_op_limited(r)) return;
    pc = people_call_new(r);
    pc->target = room;
    pc->base.job.room_id = room;
    run_write(pc, exec);
}

void api_room_delete(struct api_req *r)
{
    room_write(r, room_delete_exec, 0);
}
void api_room_join(struct api_req *r)
{
    room_write(r, room_join_exec, 1);
}
void api_room_leave(struct api_req *r)
{
    room_write(r, room_leave_exec, 0);
}

/* ---- GET /v1/rooms/{id}/members ---- */

static int member_page_row(void *ud, const struct store_profile *p, const struct store_member *m,
                           int64_t at)
{
    struct people_call *pc = ud;
    char uid[32];
    (void)at;
    if ((int)json_array_size(pc->arr) == pc->limit) {
        pc->more = 1;
        return 1;
    }
    pc->last = m->user_id;
    id_format(uid, sizeof(uid), 'u', m->user_id);
    json_array_append_new(pc->arr, json_pack("{s:s,s:s,s:o}", "user_id", uid, "role",
                                             events_role_name(m->role), "user", api_user_json(p)));
    return 0;
}

static void members_work(struct api_call *call)
{
    struct people_call *pc = (struct people_call *)call;
    struct store_conn *sc = store_reader(&call->app->db);
    const struct store_ops *ops = call->app->db.ops;
    struct store_room room;
    struct store_member m;
    int st;
    if (!sc) {
        call->status = CD_E_IO;
        return;
    }
    st = ops->room_get(sc, pc->target, &room);
    if (st == CD_OK && room.state == ROOM_DELETED) st = CD_E_NOT_FOUND;
    if (st == CD_OK && (st = ops->member_get(sc, pc->target, pc->user, &m)) == CD_E_NOT_FOUND)
        st = CD_E_NOT_MEMBER;
    if ((call->status = st) != CD_OK) return;
    pc->arr = json_array();
    call->status = ops->members_page(sc, pc->target, pc->after, pc->limit + 1, member_page_row, pc);
    if (call->status == CD_OK) page_result(pc, "members", 'u');
}

void api_members_list(struct api_req *r)
{
    struct people_call *pc;
    int64_t room, after;
    int limit;
    if (!api_room_param(r, &room) ||
        !page_params(r, 'u', PAGE_DEFAULT, MEMBERS_PAGE_MAX, &after, &limit))
        return;
    pc = people_call_new(r);
    pc->target = room;
    pc->after = after;
    pc->limit = limit;
    run_read(pc, members_work);
}

/* ---- invites ---- */

static int invite_create_exec(const struct store_ops *ops, struct store_conn *sc,
                              struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    char rid[32];
    int st = chat_invite_create(ops, sc, pc->target, pc->user, &pc->invite);
    if (job_status(pc, st) != CD_OK) return st;
    id_format(rid, sizeof(rid), 'r', pc->target);
    pc->base.http_status = 201;
    pc->base.result =
        json_pack("{s:{s:s,s:s,s:I,s:I}}", "invite", "token", pc->token, "room", rid, "expires_at",
                  (json_int_t)pc->invite.expires_at, "max_uses", (json_int_t)pc->invite.max_uses);
    return CD_OK;
}

void api_invite_create(struct api_req *r)
{
    struct people_call *pc;
    json_t *ttl = json_object_get(r->body, "expires_in"),
           *uses = json_object_get(r->body, "max_uses");
    int64_t room, now = clock_unix_ms();

    if (!api_room_param(r, &room)) return;
    if (ttl && (!json_is_integer(ttl) || json_integer_value(ttl) < INVITE_TTL_MIN ||
                json_integer_value(ttl) > INVITE_TTL_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "expires_in must be 1-2592000 seconds");
        return;
    }
    if (uses && (!json_is_integer(uses) || json_integer_value(uses) < 1 ||
                 json_integer_value(uses) > INVITE_USES_MAX)) {
        api_respond_error(r, CD_E_INVALID_FIELD, "max_uses must be 1-10000");
        return;
    }
    if (api_room_op_limited(r)) return;
    pc = people_call_new(r);
    pc->target = room;
    auth_refresh_new(pc->token, pc->invite.hash);
    pc->invite.room_id = room;
    pc->invite.created_by = r->user_id;
    pc->invite.created_at = now;
    pc->invite.expires_at = now + 1000 * (ttl ? json_integer_value(ttl) : INVITE_TTL_DEFAULT);
    pc->invite.max_uses = uses ? json_integer_value(uses) : INVITE_USES_DEFAULT;
    pc->base.job.room_id = room;
    run_write(pc, invite_create_exec);
}

static int invite_accept_exec(const struct store_ops *ops, struct store_conn *sc,
                              struct store_job *j)
{
    struct people_call *pc = PEOPLE_CALL(j);
    struct store_room room;
    int64_t rid = 0;
    int st =
        chat_invite_accept(ops, sc, pc->invite.hash, pc->user, clock_unix_ms(), &pc->out, &rid);
    if (st == CD_OK) st = ops->room_get(sc, rid, &room);
    if (job_status(pc, st) != CD_OK) return st;
    pc->base.result = json_pack("{s:o}", "room", api_room_json(&room));
    return CD_OK;
}

void api_invite_accept(struct api_req *r)
{
    struct people_call *pc;
    if (r->param.len != INVITE_TOKEN_LEN) {
        api_respond_error(r, CD_E_NOT_FOUND, "no such invite");
        return;
    }
    if (api_room_op_limited(r)) return;
    pc = people_call_new(r);
    auth_refresh_hash(r->param.p, r->param.len, pc->invite.hash);
    run_write(pc, invite_accept_exec);
}
