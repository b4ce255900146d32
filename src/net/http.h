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
    int upgrade;             /* the client asked for a protocol upgrade */
    uint64_t start_ms;       /* when the first byte of the request arrived (net_now_ms) */
    const char *request_id;  /* HTTP_REQUEST_ID_LEN hex digits, unique per request: on every
                                log line of the request and in the X-Request-Id header */
    struct trace_span *span; /* tracing on: the request's span (ended by the response), else
                                NULL; a child of the request's W3C traceparent when valid */
    const char *trace_id;    /* its trace id (32 hex digits) or NULL: on the request's log lines */
    const char *client_ip;   /* the client's address: the TCP peer's, or behind a trusted proxy
                                the one it forwarded (net/proxy.h); on the access log line */
};

struct trace_span;
/* Tracing: name the pending request's span "<METHOD> <route>" (the route template, e.g.
 * /v1/rooms/{id}) and set http.route. No-op without a span. */
void http_trace_route(struct conn *c, const char *route);

#define HTTP_REQUEST_ID_LEN 16

/* Case-insensitive header lookup; returns 1 and sets *out when present. */
int http_header(const struct http_request *r, const char *name, struct slice *out);
/* Look up and percent-decode a query parameter into out (NUL-terminated, cap bytes): the first
 * "name=value" wins, %XX is a byte, '+' a space. Returns 1 when found and it fits, 0 otherwise
 * (also when the value decodes to a NUL byte, which would truncate it: "limit=5%00x"). */
int http_query_param(const struct http_request *r, const char *name, char *out, size_t cap);

/* http_query_value's results besides 1 (found, decoded into out) and 0 (absent). */
#define HTTP_QUERY_TOO_LONG (-1) /* the decoded value does not fit in cap bytes (with the NUL) */
#define HTTP_QUERY_REPEATED (-2) /* the parameter appears more than once */
#define HTTP_QUERY_NUL      (-3) /* the value decodes to a NUL byte */
/* As http_query_param, for values that must be refused (400) rather than ignored when they are
 * over-long or repeated. out is "" unless 1 is returned. */
int http_query_value(const struct http_request *r, const char *name, char *out, size_t cap);

/* The credential of "Authorization: Bearer <token>": the scheme case-insensitively, then one or
 * more spaces or tabs, then a token without whitespace (trailing whitespace ignored). The one
 * parser for every route and the WebSocket upgrade. Returns 1 and the token, 0 when there is no
 * Authorization header, -1 when there is one but it is not a bearer token of that form. */
int http_bearer_token(const struct http_request *r, struct slice *tok);

/* Send a complete response (Content-Length framing) and resume reading the next request. Only
 * valid while the request is pending. extra_headers: preformatted "Name: value\r\n" lines or
 * NULL. Every response carries X-Request-Id, X-Content-Type-Options: nosniff and Cache-Control:
 * no-store, and is logged (info, "http": method, path without the query, status, duration,
 * client address). */
void http_respond(struct conn *c, int status, const char *content_type, const void *body,
                  size_t len, const char *extra_headers);

/* A response with every option (http_respond is this with the defaults; the headers above are
 * on every response). */
struct http_response {
    int status;
    const char *content_type; /* NULL = application/json */
    const void *body;
    size_t len;                /* Content-Length (also when head_only) */
    const char *extra_headers; /* "Name: value\r\n" lines or NULL */
    const char *cache_control; /* NULL = "no-store" */
    int head_only;             /* HEAD or 304: headers with this Content-Length, no body */
};
void http_respond_full(struct conn *c, const struct http_response *r);

/* A response whose body is sent in pieces: http_respond_begin sends the head (r->len is the
 * Content-Length, r->body is ignored), the caller then queues exactly that many bytes with
 * conn_send (paced by http_on_drain) and calls http_respond_end, which resumes the connection
 * (or closes it after the flush). The request stays pending in between. */
void http_respond_begin(struct conn *c, const struct http_response *r);
void http_respond_end(struct conn *c);
#define HTTP_DRAIN_LOW (256 * 1024) /* http_on_drain fires at or below this many queued bytes */
/* Call cb once, on c's thread, when c's unwritten output falls to HTTP_DRAIN_LOW bytes or less
 * (checked after each write). One callback at a time; cleared by the response's end. */
void http_on_drain(struct conn *c, void (*cb)(struct conn *c));

/* Streamed request bodies (net_handlers.on_stream_begin): the server layer's state for the
 * request in flight on c; on_stream_abort gets it back if the connection closes first. */
void http_stream_set(struct conn *c, void *ud);
void *http_stream_get(struct conn *c);
/* Add header lines ("Name: value\r\n", at most HTTP_ADD_HEADERS_MAX bytes in all; more are
 * dropped) to the response of the pending request, whoever writes it (e.g. CORS headers set
 * by the router before the handler). Only valid while the request is pending. */
#define HTTP_ADD_HEADERS_MAX 512
void http_add_response_headers(struct conn *c, const char *lines);
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
/* After a flush: run the http_on_drain callback if the output fell low enough. */
void net__http_drained(struct conn *c);
/* The connection is closing: hand a streamed request's state to on_stream_abort. */
void net__http_closed(struct conn *c);
int net__http_timed_out(struct conn *c, uint32_t now_s);
void net__http_error(struct conn *c, int status);

#endif
