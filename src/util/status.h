/* status.h - the one status enum of chatd.
 *
 * Every fallible function returns `int`: CD_OK (0) on success, CD_AGAIN when a non-blocking
 * operation needs more input or room, or one of the negative codes below. The X-macro table is the
 * single source of the protocol's error codes: the HTTP status, the snake_case code sent to clients
 * and the default message all come from here, so code and docs/PROTOCOL.md cannot drift apart.
 */
#ifndef CD_STATUS_H
#define CD_STATUS_H

/*  name                  http  protocol code           default message */
#define CD_STATUS_MAP(X)                                                                           \
    X(BAD_REQUEST, 400, "bad_request", "the request is malformed")                                 \
    X(INVALID_JSON, 400, "invalid_json", "the body is not valid JSON")                             \
    X(INVALID_FIELD, 400, "invalid_field", "a field is missing or has the wrong type")             \
    X(INVALID_USERNAME, 400, "invalid_username",                                                   \
      "username must be 3-32 characters of a-z, 0-9, '_', '.', '-'")                               \
    X(WEAK_PASSWORD, 400, "invalid_password", "password must be 8-256 bytes")                      \
    X(UNKNOWN_TYPE, 400, "unknown_type", "unknown message type")                                   \
    X(INVALID_UTF8, 400, "invalid_utf8", "text is not valid UTF-8")                                \
    X(UNAUTHORIZED, 401, "unauthorized", "missing or invalid access token")                        \
    X(TOKEN_EXPIRED, 401, "token_expired", "the access token has expired")                         \
    X(INVALID_CREDENTIALS, 401, "invalid_credentials", "wrong username or password")               \
    X(INVALID_REFRESH, 401, "invalid_refresh_token", "the refresh token is invalid or spent")      \
    X(FORBIDDEN, 403, "forbidden", "not allowed")                                                  \
    X(NOT_MEMBER, 403, "not_member", "you are not a member of this room")                          \
    X(NOT_FOUND, 404, "not_found", "no such resource")                                             \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "method not allowed on this resource")        \
    X(TIMEOUT, 408, "request_timeout", "the request took too long to arrive")                      \
    X(CONFLICT, 409, "conflict", "the resource is in a conflicting state")                         \
    X(USERNAME_TAKEN, 409, "username_taken", "that username is already registered")                \
    X(QUOTA_OWNED_ROOMS, 409, "quota_exceeded",                                                    \
      "you own the most group rooms allowed (--max-owned-rooms)")                                  \
    X(QUOTA_ROOM_MEMBERS, 409, "quota_exceeded",                                                   \
      "the room has the most members allowed (--max-room-members)")                                \
    X(QUOTA_USER_ROOMS, 409, "quota_exceeded",                                                     \
      "a user is in the most group rooms allowed (--max-rooms-per-user)")                          \
    X(BLOCKED, 403, "blocked", "this user blocks you")                                             \
    X(ROOM_ARCHIVED, 409, "room_archived", "the room is archived (read-only)")                     \
    X(INVITE_GONE, 410, "invite_expired", "the invite has expired or is used up")                  \
    X(QUOTA_PAIRS, 409, "quota_exceeded", "you have the most contacts or blocks allowed (10000)")  \
    X(TOO_LARGE, 413, "payload_too_large", "the body or message is too large")                     \
    X(UNSUPPORTED_MEDIA, 415, "unsupported_media_type", "the body must be application/json")       \
    X(UPLOAD_TYPE, 415, "unsupported_media_type",                                                  \
      "this content type is not accepted (--upload-types)")                                        \
    X(RANGE, 416, "range_not_satisfiable", "the range is outside the attachment")                  \
    X(UPGRADE_REQUIRED, 426, "upgrade_required", "this endpoint needs a WebSocket upgrade")        \
    X(RATE_LIMITED, 429, "rate_limited", "too many requests; retry later")                         \
    X(HEADERS_TOO_LARGE, 431, "headers_too_large", "request headers are too large or too many")    \
    X(INTERNAL, 500, "internal", "internal error")                                                 \
    X(UNAVAILABLE, 503, "unavailable", "the server is shutting down or overloaded")                \
    X(NOMEM, 503, "out_of_memory", "out of memory")                                                \
    X(IO, 500, "io_error", "storage or I/O error")                                                 \
    X(GONE, 410, "message_deleted", "the message was deleted")

enum cd_status {
    CD_OK = 0,
    CD_AGAIN = 1, /* non-blocking: not done yet, call again (not an error) */
#define CD_STATUS_ENUM(name, http, code, msg) CD_E_##name,
    CD__FIRST_ERROR = -1000,
    CD_STATUS_MAP(CD_STATUS_ENUM)
#undef CD_STATUS_ENUM
        CD__LAST_ERROR
};

/* HTTP status for an error status (500 for unknown values, 200 for CD_OK). */
int cd_status_http(int status);
/* snake_case protocol error code ("ok" for CD_OK). Never NULL; static storage. */
const char *cd_status_code(int status);
/* Default human-readable message. Never NULL; static storage. */
const char *cd_status_message(int status);

#endif
