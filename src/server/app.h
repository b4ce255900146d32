/* app.h - the server layer: composes net, auth and store into chatd's HTTP and WebSocket API.
 * Internal to src/server (handlers share these helpers); main.c uses app_run only. */
#ifndef CD_APP_H
#define CD_APP_H

#include <jansson.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "auth/revoked.h"
#include "blob/blob.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/proxy.h"
#include "chat/cluster.h"
#include "chat/fanout.h"
#include "chat/presence.h"
#include "presence/presence_redis.h"
#include "server/config.h"
#include "server/limiter.h"
#include "server/metrics.h"
#include "server/origin.h"
#include "server/web.h"
#include "roles/roles.h"
#include "store/store.h"
#include "trace/trace.h"

struct app {
    struct cfg cfg;
    struct net_server net;
    struct store_db db;
    struct jwt_keyring keys;
    struct metrics metrics;
    struct limiter auth_ip;     /* login/register attempts per client IP */
    struct limiter auth_pair;   /* failed logins per (username, client IP) */
    struct limiter auth_user;   /* failed logins per username, from any IP */
    struct limiter typing;      /* typing events per user and room */
    struct limiter reads;       /* WebSocket `read` requests per user */
    struct limiter room_ops;    /* room creations, member additions, direct-chat opens per user */
    struct limiter server_keys; /* server API calls per API key (--server-rate) */
    struct roles_run *roles;    /* the workers of --roles (roles/roles.h) */
    struct limiter user_search; /* GET /v1/users?prefix= per user */
    struct limiter uploads;     /* uploads per user (--upload-rate) */
    struct limiter searches;    /* searches per user (--search-rate) */
    struct blob_store *blobs;   /* attachment bytes (--blob-url) */
    struct files *files;        /* the expiry sweep of unreferenced uploads (api_files.c) */
    struct indexer *indexer;    /* the asynchronous search indexer (api_search.c) */
    struct presence *presence;
    struct revoked *revoked; /* sessions ended within the access-token lifetime */
    struct fanout fanout;
    struct web web;                   /* static files of the web client (n = 0: --web off) */
    struct origin_policy origins;     /* --allowed-origins */
    struct cluster *cluster;          /* NULL on a single node (no --nats-url) */
    struct presence_redis *gpresence; /* NULL without --redis-url */
    _Atomic int ready;                /* /readyz: 1 once storage is open and listeners are up */
    char node_id[128];                /* --node-id, else <hostname>-<pid> */
    double start_unix_s;              /* process start (process_start_time_seconds) */
    struct metrics_listener *mlisten; /* --metrics-listen, or NULL */
    struct proxy_list trusted;        /* --trusted-proxies */
};

/* Start chatd with the given configuration and run until SIGTERM/SIGINT has drained it.
 * Returns the process exit code (0 after a clean drain). */
int app_run(struct cfg *cfg);

/* The Prometheus text of every series (GET /metrics, or the --metrics-listen listener): appended
 * to *buf (realloc'ed; len and cap updated). Any thread while the node runs. */
void app_metrics_render(struct app *app, char **buf, size_t *len, size_t *cap);

/* ---- helpers for handlers (src/server/api_*.c) ---- */

/* Every route; the index is the metrics label. */
#define ROUTE_MAP(X)                                                                               \
    X(HEALTHZ, "healthz")                                                                          \
    X(READYZ, "readyz")                                                                            \
    X(METRICS, "metrics")                                                                          \
    X(REGISTER, "auth_register")                                                                   \
    X(LOGIN, "auth_login")                                                                         \
    X(REFRESH, "auth_refresh")                                                                     \
    X(LOGOUT, "auth_logout")                                                                       \
    X(ME, "me")                                                                                    \
    X(USER, "user")                                                                                \
    X(USER_FIND, "user_find")                                                                      \
    X(WS, "ws")                                                                                    \
    X(ROOMS_CREATE, "rooms_create")                                                                \
    X(ROOMS_LIST, "rooms_list")                                                                    \
    X(ROOM_GET, "room_get")                                                                        \
    X(ROOM_PATCH, "room_patch")                                                                    \
    X(MEMBER_ADD, "member_add")                                                                    \
    X(MEMBER_REMOVE, "member_remove")                                                              \
    X(DMS, "dms")                                                                                  \
    X(HISTORY, "messages_list")                                                                    \
    X(MESSAGE_POST, "messages_post")                                                               \
    X(ROOM_SETTINGS, "room_settings")                                                              \
    X(WEBHOOKS_LIST, "webhooks_list")                                                              \
    X(WEBHOOKS_CREATE, "webhooks_create")                                                          \
    X(WEBHOOKS_DELETE, "webhooks_delete")                                                          \
    X(WEBHOOKS_DEAD, "webhooks_dead")                                                              \
    X(WEBHOOKS_REPLAY, "webhooks_replay")                                                          \
    X(SERVER_EVENTS, "server_events")                                                              \
    X(SERVER_USERS, "server_users")                                                                \
    X(SERVER_TOKENS, "server_tokens")                                                              \
    X(SERVER_ROOMS, "server_rooms")                                                                \
    X(SERVER_MEMBER_ADD, "server_member_add")                                                      \
    X(SERVER_MEMBER_REMOVE, "server_member_remove")                                                \
    X(SERVER_MESSAGE, "server_message")                                                            \
    X(SERVER_USER_PATCH, "server_user_patch")                                                      \
    X(WEBHOOKS_DEAD_DELETE, "webhooks_dead_delete")                                                \
    X(MESSAGE_EDIT, "message_edit")                                                                \
    X(MESSAGE_DELETE, "message_delete")                                                            \
    X(MESSAGE_REACT, "message_react")                                                              \
    X(THREAD_MESSAGES, "thread_messages")                                                          \
    X(RECEIPTS, "receipts")                                                                        \
    X(DELIVERED, "delivered")                                                                      \
    X(DELIVERED_BATCH, "delivered_batch")                                                          \
    X(SETTINGS_GET, "settings_get")                                                                \
    X(SETTINGS_PATCH, "settings_patch")                                                            \
    X(ME_PATCH, "me_patch")                                                                        \
    X(ME_DELETE, "me_delete")                                                                      \
    X(ME_PASSWORD, "me_password")                                                                  \
    X(SESSIONS_LIST, "sessions_list")                                                              \
    X(SESSION_END, "session_end")                                                                  \
    X(CONTACTS_LIST, "contacts_list")                                                              \
    X(CONTACT_ADD, "contact_add")                                                                  \
    X(CONTACT_REMOVE, "contact_remove")                                                            \
    X(BLOCKS_LIST, "blocks_list")                                                                  \
    X(BLOCK_ADD, "block_add")                                                                      \
    X(BLOCK_REMOVE, "block_remove")                                                                \
    X(ROOMS_PUBLIC, "rooms_public")                                                                \
    X(ROOM_DELETE, "room_delete")                                                                  \
    X(ROOM_JOIN, "room_join")                                                                      \
    X(ROOM_LEAVE, "room_leave")                                                                    \
    X(MEMBERS_LIST, "members_list")                                                                \
    X(INVITE_CREATE, "invite_create")                                                              \
    X(INVITE_ACCEPT, "invite_accept")                                                              \
    X(UPLOAD, "upload")                                                                            \
    X(ATTACHMENT, "attachment_get")                                                                \
    X(SEARCH, "search")                                                                            \
    X(WEB, "web")                                                                                  \
    X(PREFLIGHT, "preflight")                                                                      \
    X(UNMATCHED, "unmatched")

enum route_id {
#define ROUTE_ENUM(name, label) ROUTE_##name,
    ROUTE_MAP(ROUTE_ENUM)
#undef ROUTE_ENUM
        ROUTE__COUNT
};
_Static_assert(ROUTE__COUNT <= METRICS_MAX_ROUTES, "grow METRICS_MAX_ROUTES (server/metrics.h)");

/* What a handler gets: the request plus what the route table already checked. */
struct api_req {
    struct app *app;
    struct conn *c;
    struct http_request *http;
    int route;
    int64_t user_id;      /* authenticated user (routes with ROUTE_F_AUTH), else 0 */
    int64_t sid;          /* ... and the session of its access token (0: a token without one) */
    struct slice param;   /* the first {id} path segment, if the route has one */
    struct slice param2;  /* the second one */
    json_t *body;         /* parsed JSON object (routes with ROUTE_F_JSON), else NULL */
    uint8_t key_hash[32]; /* SHA-256 of the API key (routes with ROUTE_F_SERVER) */
};

/* An HTTP request answered later: holds the connection across worker-thread and writer-thread
 * work and answers on the connection's own I/O thread. */
struct api_call {
    struct app *app;
    struct conn *c;
    int route;
    uint64_t start_ms;
    char request_id[HTTP_REQUEST_ID_LEN + 1]; /* on the log lines of the call's threads */
    char trace_id[33];                        /* tracing: the request's trace id, or "" */
    struct trace_ctx trace;                   /* tracing: the request span's context */
    int status;                               /* CD_OK or an error for the response */
    json_t *result;                           /* response object on success (owned) */
    int http_status;                          /* success status (200/201/204) */
    int64_t retry_ms; /* with status CD_E_RATE_LIMITED: the wait for Retry-After (0: none) */
    const char *error_message; /* static text of an error answer (NULL: the status's own) */
    char *raw;                 /* prebuilt JSON response body (malloc'ed), instead of result */
    size_t raw_len;
    /* Optional, writer thread, after the commit and before the answer: publish events. */
    void (*committed)(struct api_call *call);
    /* Optional, I/O thread, when the call is freed: release the subclass's own memory. */
    void (*cleanup)(struct api_call *call);
    uv_work_t work;
    struct store_job job;
    struct net_task task;
    void (*work_fn)(struct api_call *call);  /* worker thread: blocking reads, hashing */
    void (*after_fn)(struct api_call *call); /* I/O thread, after work_fn */
};

/* Allocate a call for r (holds the connection). Free it with api_call_finish. */
struct api_call *api_call_new(struct api_req *r, size_t size);
/* Run call->work_fn on the thread pool, then call->after_fn on the I/O thread. */
void api_call_work(struct api_call *call);
/* Queue call->job (exec set by the caller) on the writer; afterwards answer with call->status /
 * call->result on the I/O thread. */
void api_call_write(struct api_call *call);
/* Answer the request with call->status/result and free the call. I/O thread. */
void api_call_finish(struct api_call *call);
/* Free the call without answering (it was answered otherwise, or the connection is gone). */
void api_call_free(struct api_call *call);

/* An optional non-negative integer query parameter: 1-18 decimal digits, nothing else (no sign,
 * no spaces), given at most once. Anything else is answered with 400 (returns 0), never
 * ignored or truncated. *present is 1 when it was given. */
int api_query_int(struct api_req *r, const char *name, int64_t *out, int *present);

/* Respond now. json_respond steals `obj`. */
void api_respond_json(struct api_req *r, int http_status, json_t *obj);
void api_respond_error(struct api_req *r, int status, const char *message);
void api_respond_retry(struct api_req *r, int64_t retry_ms);
/* Respond on a connection (used by api_call_finish and the route table). */
void api_send_json(struct app *app, struct conn *c, int route, uint64_t start_ms, int http_status,
                   json_t *obj, const char *extra_headers);
void api_send_error(struct app *app, struct conn *c, int route, uint64_t start_ms, int status,
                    const char *message, const char *extra_headers);

/* The token response {user, access_token, refresh_token, token_type, expires_in} of a session
 * (sid) with its refresh token: NULL when signing fails. Any thread. */
json_t *api_token_json(struct app *app, int64_t user, const char *username, int64_t sid,
                       const char *refresh);
/* Verify an access token (exp and iat with --token-leeway seconds of clock skew): CD_OK with its
 * claims; CD_E_TOKEN_EXPIRED, or CD_E_UNAUTHORIZED for a bad token or one of a session that
 * ended (app_session_end). Counted in the auth failure metrics. */
int api_verify_claims(struct app *app, const char *tok, size_t len, struct jwt_claims *out);
/* api_verify_claims for the user id and the session id (sid may be NULL). */
int api_verify_token(struct app *app, const char *tok, size_t len, int64_t *user_id, int64_t *sid);
/* Writer thread, after the commit that revoked session sid of user: its access tokens are
 * refused from now on and its open WebSockets close with 4001. */
void app_session_end(struct app *app, int64_t user, int64_t sid);

/* The route table's lookup of a request line: the index of the route for method and path, with
 * its "{id}" segments in *p1 and *p2 (slices of path; empty when the route has fewer), or
 * ROUTE_LOOKUP_NONE when no route has this path, ROUTE_LOOKUP_METHOD when only other methods
 * do. O(routes x path length); no allocation. */
#define ROUTE_LOOKUP_NONE   (-1)
#define ROUTE_LOOKUP_METHOD (-2)
int route_lookup(int method, struct slice path, struct slice *p1, struct slice *p2);
/* Opaque external ids: "u_<n>" for users. Returns the length written. */
int id_format(char *out, size_t cap, char kind, int64_t n);
/* Parse "<kind>_<n>"; returns 1 and sets *n on success. */
int id_parse(struct slice s, char kind, int64_t *n);

/* Handlers (api_auth.c, api_ws.c, routes.c). */
void api_register(struct api_req *r);
void api_login(struct api_req *r);
void api_refresh(struct api_req *r);
void api_logout(struct api_req *r);
void api_me(struct api_req *r);
void api_user(struct api_req *r);
void api_user_find(struct api_req *r);
void api_ws_upgrade(struct api_req *r);
void api_rooms_create(struct api_req *r);
void api_rooms_list(struct api_req *r);
void api_room_get(struct api_req *r);
void api_room_patch(struct api_req *r);
void api_member_add(struct api_req *r);
void api_member_remove(struct api_req *r);
void api_dms(struct api_req *r);
void api_history(struct api_req *r);
void api_message_post(struct api_req *r);
/* api_webhooks.c: room settings, webhook endpoints and dead letters */
void api_room_settings(struct api_req *r);
void api_webhooks_list(struct api_req *r);
void api_webhooks_create(struct api_req *r);
void api_webhooks_delete(struct api_req *r);
void api_webhooks_dead(struct api_req *r);
void api_webhooks_replay(struct api_req *r);
void api_webhooks_dead_delete(struct api_req *r);
/* The server API (api_server.c): API key routes. */
/* Worker thread: look up the API key whose SHA-256 is hash and take a token of its rate
 * (--server-rate). Returns 1 when the key exists (*key set; call->status is CD_OK, or
 * CD_E_RATE_LIMITED with call->retry_ms), 0 when it does not or is revoked (call->status
 * CD_E_UNAUTHORIZED, counted) or the read failed. Every route with ROUTE_F_SERVER runs it. */
int api_server_key_check(struct api_call *call, const uint8_t hash[32], struct store_apikey *key);
/* The audit line of a server API call (I/O thread, when it is freed): key id and name (never
 * the key), route label, outcome; or a warning when the key was refused. */
void api_server_audit(const struct api_call *call, int key_ok, const struct store_apikey *key,
                      const char *label);
void api_server_events(struct api_req *r);
void api_server_user_put(struct api_req *r);
void api_server_tokens(struct api_req *r);
void api_server_rooms_create(struct api_req *r);
void api_server_member_add(struct api_req *r);
void api_server_member_remove(struct api_req *r);
void api_server_message(struct api_req *r);
void api_server_user_patch(struct api_req *r);
void api_message_edit(struct api_req *r); /* api_msgops.c */
void api_message_delete(struct api_req *r);
void api_message_react(struct api_req *r);
void api_receipts(struct api_req *r);
void api_delivered(struct api_req *r);
void api_settings_get(struct api_req *r);
void api_settings_patch(struct api_req *r);
/* The JSON answer of an edit, delete or reaction (REST body; the WebSocket ack has the same
 * fields). */
struct chat_op;
struct chat_sent;
json_t *api_op_result(const struct chat_op *op, const struct chat_sent *sent);
/* Shared request pieces (api_rooms.c); each answers 400/404/429 itself and returns 0 then
 * (api_query_int: above). */
/* The {id} path segment as a room id (404 otherwise). */
int api_room_param(struct api_req *r, int64_t *room);
/* The body's "user_id" (400 otherwise). */
int api_body_user(struct api_req *r, int64_t *user);
/* The per-user room-operation bucket (--room-rate): 1 when it answered 429. */
int api_room_op_limited(struct api_req *r);
/* People and room features (api_people.c). */
/* The profile fields of a PATCH body (PATCH /v1/me, PATCH /v1/server/users/{id}): each absent
 * (has_ = 0), null (has_ = 1, "": cleared) or a valid value (chat/people.h rules). */
struct api_profile {
    char display_name[STORE_DISPLAY_NAME_MAX + 1], avatar[STORE_AVATAR_MAX + 1],
        status_text[STORE_STATUS_TEXT_MAX + 1];
    int has_display_name, has_avatar, has_status_text;
};
/* Parse r's body into out: 1, or 0 after answering 400 invalid_field. */
int api_profile_fields(struct api_req *r, struct api_profile *out);
/* Writer thread: store the fields present, then read the profile into out. CD_E_NOT_FOUND: no
 * such user (or the avatar is not the user's upload: *why says which). A new avatar must be the
 * user's own image upload (people_avatar_check). Profile changes are no log entries
 * (docs/PROTOCOL.md): every read shows them. */
int api_profile_set(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                    const struct api_profile *prof, struct store_profile *out, const char **why);
void api_me_patch(struct api_req *r);
void api_me_delete(struct api_req *r);
void api_me_password(struct api_req *r);
void api_sessions_list(struct api_req *r);
void api_session_end(struct api_req *r);
void api_contacts_list(struct api_req *r);
void api_contact_add(struct api_req *r);
void api_contact_remove(struct api_req *r);
void api_blocks_list(struct api_req *r);
void api_block_add(struct api_req *r);
void api_block_remove(struct api_req *r);
void api_users_prefix(struct api_req *r);
void api_rooms_public(struct api_req *r);
void api_room_delete(struct api_req *r);
void api_room_join(struct api_req *r);
void api_room_leave(struct api_req *r);
void api_members_list(struct api_req *r);
void api_invite_create(struct api_req *r);
void api_invite_accept(struct api_req *r);
/* The JSON of a user as everyone sees it: id, username (null once deleted), display_name,
 * avatar, status_text, created_at, and "deleted":true for a deleted account. */
struct store_profile;
json_t *api_user_json(const struct store_profile *p);
void api_upload(struct api_req *r);
void api_attachment_get(struct api_req *r);
void api_search(struct api_req *r);
/* net_handlers.on_stream_begin/data/abort: POST /v1/uploads streams its body (api_files.c). */
int files_stream_begin(struct conn *c, struct http_request *req);
int files_stream_data(struct conn *c, const char *p, size_t n);
void files_stream_abort(struct conn *c, void *ud);
/* The sweep thread that expires unreferenced uploads; stop before the store closes. */
struct files;
struct files *files_start(struct app *app);
void files_stop(struct files *f);
/* The asynchronous search indexer (a thread running search_index_log every --search-index-ms:
 * a writer job on SQLite, its own connection on PostgreSQL). Stop it before the store closes. */
struct indexer;
struct indexer *search_indexer_start(struct app *app);
void search_indexer_stop(struct indexer *ix);
void api_ws_ready(struct conn *c, uint32_t nrooms);
/* Writer thread: store a message (replying to reply_to, in the thread of root `thread`; 0 =
 * none), or find the original of a resent (room, sender, client_msg_id); *room_out is the room
 * of the stored message. */
struct chat_out;
struct chat_sent;
struct chat_attach;
/* att (may be NULL): the send's attachments (chat/attach.h). The text is indexed for search
 * later, by the indexer (store_ops.search_index_log). */
int api_send_exec(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t sender,
                  const char *body, size_t body_len, const char *cmid, size_t cmid_len,
                  int64_t reply_to, int64_t thread, const struct chat_attach *att,
                  struct chat_out *out, struct chat_sent *sent, int64_t *room_out);
/* The body and client_msg_id of a send request (body non-empty, at most --max-message-body;
 * client_msg_id 1-64 bytes): 1, or 0 after answering 400/413 itself. */
int api_message_fields(struct api_req *r, json_t **body, json_t **cmid);
/* The answer to a send: {room, seq, msg_id, ts, client_msg_id, duplicate}; *http_status 201, or
 * 200 for a resend. */
json_t *api_ack_json(int64_t room, const struct chat_sent *sent, const char *cmid,
                     int *http_status);
/* A send's "attachments" field (absent, or an array of at most CHAT_ATTACH_MAX distinct
 * "att_..." ids) into out. Returns 1, or 0 with *why set (400 invalid_field). */
int api_attach_list(json_t *arr, struct chat_attach *out, const char **why);
/* api_attach_list for a REST request: answers the error itself (returns 0 then). */
int api_attach_parse(struct api_req *r, json_t *arr, struct chat_attach *out);
/* An optional positive integer field (a seq: reply_to, thread); absent or null gives 0. Returns 0
 * when it has another type or value. */
int link_field(json_t *obj, const char *name, int64_t *out);
/* A positive decimal seq (a path segment such as /threads/{root}). */
int seq_param(struct slice s, int64_t *out);
/* JSON of a room (id, kind, name, topic, created_by, created_at, last_seq, member_count). */
json_t *api_room_json(const struct store_room *room);
void api_ws_message(struct conn *c, uint8_t *data, size_t len);
void api_ws_close(struct conn *c);
/* The WebSocket's access token expired (its deadline): close 4002. */
void api_ws_deadline(struct conn *c);
void app_on_request(struct conn *c, struct http_request *req);

#endif
