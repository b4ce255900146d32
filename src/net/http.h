/* http.h - HTTP/1.1 requests on a connection (http-parser glue) and responses.
 *
 * Limits come from struct net_limits: header bytes (431, or 414 for the request line), header
 * count (431), body (413), whole-request time (408), malformed input (400). Keep-alive and
 * pipelining are supported; one request is handled at a time.
 */
#ifndef CD_HTTP_H
#define CD_HTTP_H

#include "net/net.h"

struct http_header {
    struct slice name, value;
};

struct http_request {
    int method;         /* enum http_method of http-parser (HTTP_GET, HTTP_POST, ...) */
    struct slice path;  /* without the query string */
    struct slice query; /* after '?', raw */
    struct http_header *headers;
    int nheaders;
    struct slice body;
    int keep_alive;
    int upgrade;       /* the client asked for a protocol upgrade */
    uint64_t start_ms; /* when the first byte of the request arrived (net_now_ms) */
};

/* Case-insensitive header lookup; returns 1 and sets *out when present. */
int http_header(const struct http_request *r, const char *name, struct slice *out);
/* Look up and percent-decode a query parameter into out (NUL-terminated, cap bytes): the first
 * "name=value" wins, %XX is a byte, '+' a space. Returns 1 when found and it fits, 0 otherwise
 * (also when the value decodes to a NUL byte, which would truncate it: "limit=5%00x"). */
int http_query_param(const struct http_request *r, const char *name, char *out, size_t cap);

/* Send a complete response (Content-Length framing) and resume reading the next request. Only
 * valid while the request is pending. extra_headers: preformatted "Name: value\r\n" lines or
 * NULL. */
void http_respond(struct conn *c, int status, const char *content_type, const void *body,
                  size_t len, const char *extra_headers);
/* Answer the pending request with 101 Switching Protocols and switch c to WebSocket mode. The
 * caller has validated the request (http_ws_check). */
void http_upgrade_ws(struct conn *c, const char accept_key[29]);
/* Validate a WebSocket upgrade request; returns CD_OK and the Sec-WebSocket-Accept value, or
 * CD_E_BAD_REQUEST / CD_E_UPGRADE_REQUIRED. */
int http_ws_check(const struct http_request *r, char accept_out[29]);

const char *http_reason(int status);

/* Internal to src/net. */
void net__http_input(struct conn *c);
void net__http_free(struct conn *c);
int net__http_timed_out(struct conn *c, uint32_t now_s);
void net__http_error(struct conn *c, int status);

#endif
