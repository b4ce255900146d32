/* api_ws.c - the WebSocket endpoint: authenticated upgrade, the operation table, replies. */
#include <string.h>

#include "server/app.h"
#include "util/log.h"
#include "util/status.h"

#define WS_ID_MAX 64 /* longest client request "id" echoed back */

/* Send a JSON object as one text message; steals obj. */
static void ws_send_json(struct conn *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text) conn_ws_text(c, text, strlen(text));
    free(text);
    json_decref(obj);
}

/* {"type":"error","id":...,"code":...,"message":...}; id may be NULL. */
static void ws_send_error(struct conn *c, json_t *id, int status, const char *message)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "type", "error", "code", cd_status_code(status),
                          "message", message ? message : cd_status_message(status));
    if (id) json_object_set(o, "id", id);
    ws_send_json(c, o);
}

/* ---- operations ---- */

struct ws_op {
    const char *type;
    void (*handler)(struct conn *c, json_t *msg, json_t *id);
};

static void op_ping(struct conn *c, json_t *msg, json_t *id)
{
    json_t *o = json_pack("{s:s}", "type", "pong");
    (void)msg;
    if (id) json_object_set(o, "id", id);
    ws_send_json(c, o);
}

static const struct ws_op ws_ops[] = {
    {"ping", op_ping},
};

void api_ws_message(struct conn *c, uint8_t *data, size_t len)
{
    json_error_t err;
    json_t *msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
    json_t *id, *type;

    if (!json_is_object(msg)) {
        ws_send_error(c, NULL, CD_E_INVALID_JSON, "message must be a JSON object");
        json_decref(msg);
        return;
    }
    id = json_object_get(msg, "id");
    if (id &&
        !((json_is_string(id) && json_string_length(id) <= WS_ID_MAX) || json_is_integer(id))) {
        ws_send_error(c, NULL, CD_E_INVALID_FIELD, "id must be a string (<= 64 bytes) or integer");
        json_decref(msg);
        return;
    }
    type = json_object_get(msg, "type");
    if (!json_is_string(type)) {
        ws_send_error(c, id, CD_E_INVALID_FIELD, "type (string) is required");
        json_decref(msg);
        return;
    }
    for (size_t i = 0; i < sizeof(ws_ops) / sizeof(ws_ops[0]); i++)
        if (!strcmp(ws_ops[i].type, json_string_value(type))) {
            ws_ops[i].handler(c, msg, id);
            json_decref(msg);
            return;
        }
    ws_send_error(c, id, CD_E_UNKNOWN_TYPE, NULL);
    json_decref(msg);
}

void api_ws_close(struct conn *c)
{
    (void)c;
}

/* ---- upgrade ---- */

void api_ws_upgrade(struct api_req *r)
{
    char accept[29], tok[JWT_MAX_TOKEN + 1], uid[24];
    struct slice h;
    size_t toklen = 0;
    int64_t user_id;
    int rc;

    if (http_header(r->http, "authorization", &h) && h.len > 7 &&
        slice_case_eq((struct slice){h.p, 7}, "bearer ") && h.len - 7 <= JWT_MAX_TOKEN) {
        toklen = h.len - 7;
        memcpy(tok, h.p + 7, toklen);
    } else if (http_query_param(r->http, "access_token", tok, sizeof(tok))) {
        toklen = strlen(tok);
    }
    if (!toklen) {
        metrics_auth_failure(&r->app->metrics, AUTH_FAIL_TOKEN);
        api_respond_error(r, CD_E_UNAUTHORIZED, "missing access token");
        return;
    }
    if ((rc = api_verify_token(r->app, tok, toklen, &user_id)) != CD_OK) {
        api_send_error(r->app, r->c, r->route, r->http->start_ms, rc, NULL,
                       "WWW-Authenticate: Bearer\r\n");
        return;
    }
    if ((rc = http_ws_check(r->http, accept)) != CD_OK) {
        api_send_error(r->app, r->c, r->route, r->http->start_ms, rc, NULL,
                       rc == CD_E_UPGRADE_REQUIRED ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return;
    }
    metrics_http(&r->app->metrics, r->route, 101, (net_now_ms() - r->http->start_ms) * 1000);
    http_upgrade_ws(r->c, accept);
    r->c->user_id = user_id;
    id_format(uid, sizeof(uid), 'u', user_id);
    ws_send_json(r->c, json_pack("{s:s,s:s,s:s,s:{s:I,s:I}}", "type", "hello", "user", uid,
                                 "server", "chatd " CHATD_VERSION, "limits", "max_message",
                                 (json_int_t)r->app->cfg.ws_max_message, "idle_timeout",
                                 (json_int_t)r->app->cfg.ws_idle));
}
