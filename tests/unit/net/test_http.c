/* HTTP limits of the network core, driven over a real loopback socket against an in-process
 * net_server (one I/O thread) whose handler answers 200 with the body length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/conn.h"
#include "net/http.h"
#include "util/status.h"

static struct net_server srv;
static int port;

static void on_request(struct conn *c, struct http_request *req)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"len\":%zu}", req->body.len);
    http_respond(c, 200, "application/json", body, (size_t)n, NULL);
}

static void on_ws_message(struct conn *c, uint8_t *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static int setup(void **state)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    (void)state;
    srv.lim = (struct net_limits){.http_max_header = 1024,
                                  .http_max_headers = 8,
                                  .http_max_body = 100,
                                  .http_timeout = 1,
                                  .http_keepalive = 30,
                                  .ws = {65536, 65536},
                                  .ws_idle = 60,
                                  .ws_max_outq = 1 << 20,
                                  .max_conns = 100,
                                  .drain_timeout = 2};
    srv.h.on_request = on_request;
    srv.h.on_ws_message = on_ws_message;
    if (net_start(&srv, "127.0.0.1:0", 1) != CD_OK) return -1;
    uv_tcp_getsockname(&srv.io[0].listener, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    net_drain(&srv);
    net_join(&srv);
    net_free(&srv);
    return 0;
}

static int dial(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return; /* the server may close early on a limit; the reply tells */
        p += w;
        n -= (size_t)w;
    }
}

/* Read until the server closes or `want` responses' worth of "HTTP/1.1" are seen with bodies. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = recv(fd, buf + n, cap - 1 - n, 0)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

static int status_of(const char *resp)
{
    int st = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &st) != 1) return -1;
    return st;
}

static int request_status(const char *req, char *resp, size_t cap)
{
    int fd = dial();
    send_all(fd, req, strlen(req));
    shutdown(fd, SHUT_WR);
    read_all(fd, resp, cap);
    close(fd);
    return status_of(resp);
}

static void ok_request(void **state)
{
    char resp[4096];
    (void)state;
    assert_int_equal(request_status("GET /x HTTP/1.1\r\nHost: a\r\n\r\n", resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, "{\"len\":0}"));
}

static void body_within_and_over_limit(void **state)
{
    char resp[4096], req[512];
    (void)state;
    snprintf(req, sizeof(req), "POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\n%0100d", 0);
    assert_int_equal(request_status(req, resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, "{\"len\":100}"));
    snprintf(req, sizeof(req), "POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n%0101d", 0);
    assert_int_equal(request_status(req, resp, sizeof(resp)), 413);
    assert_non_null(strstr(resp, "payload_too_large"));
    /* chunked bodies are counted as they arrive */
    assert_int_equal(request_status("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "64\r\n"
                                    "0000000000000000000000000000000000000000000000000000"
                                    "000000000000000000000000000000000000000000000000\r\n"
                                    "1\r\nx\r\n0\r\n\r\n",
                                    resp, sizeof(resp)),
                     413);
}

static void too_many_headers(void **state)
{
    char resp[4096], req[1024] = "GET /x HTTP/1.1\r\n";
    (void)state;
    for (int i = 0; i < 9; i++)
        snprintf(req + strlen(req), sizeof(req) - strlen(req), "X-H%d: v\r\n", i);
    strcat(req, "\r\n");
    assert_int_equal(request_status(req, resp, sizeof(resp)), 431);
    assert_non_null(strstr(resp, "headers_too_large"));
    assert_non_null(strstr(resp, "Connection: close"));
}

static void header_bytes_over_limit(void **state)
{
    char resp[4096], req[4096];
    (void)state;
    snprintf(req, sizeof(req), "GET /x HTTP/1.1\r\nX-Big: %02000d\r\n\r\n", 0);
    assert_int_equal(request_status(req, resp, sizeof(resp)), 431);
    snprintf(req, sizeof(req), "GET /%02000d HTTP/1.1\r\n\r\n", 0);
    assert_int_equal(request_status(req, resp, sizeof(resp)), 414);
}

static void malformed(void **state)
{
    char resp[4096];
    (void)state;
    assert_int_equal(request_status("BLAH\r\n\r\n", resp, sizeof(resp)), 400);
    assert_non_null(strstr(resp, "bad_request"));
    assert_int_equal(
        request_status("GET /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n", resp, sizeof(resp)), 400);
}

static void keepalive_and_pipelining(void **state)
{
    char resp[8192];
    const char *two = "GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n";
    int fd = dial(), count = 0;
    const char *p;
    (void)state;
    send_all(fd, two, strlen(two));
    read_all(fd, resp, sizeof(resp));
    close(fd);
    for (p = resp; (p = strstr(p, "HTTP/1.1 200")); p++)
        count++;
    assert_int_equal(count, 3);
    p = strstr(resp, "{\"len\":0}");
    assert_non_null(p);
    assert_non_null(strstr(p, "{\"len\":3}")); /* in order */
}

static void slowloris_gets_408(void **state)
{
    char resp[4096];
    int fd = dial();
    (void)state;
    send_all(fd, "GET /x HTTP/1.1\r\nHost: a\r\n", 26); /* never finishes the headers */
    read_all(fd, resp, sizeof(resp));                   /* the server answers and closes */
    close(fd);
    assert_int_equal(status_of(resp), 408);
    assert_non_null(strstr(resp, "request_timeout"));
}

/* ---- the request parsers (no socket) ---- */

static int bearer_of(const char *value, char *out, size_t cap)
{
    struct http_header h = {SLICE_LIT("Authorization"), {value, strlen(value)}};
    struct http_request r = {.headers = &h, .nheaders = value ? 1 : 0};
    struct slice tok;
    int rc = http_bearer_token(&r, &tok);
    if (rc == 1) snprintf(out, cap, "%.*s", (int)tok.len, tok.p);
    return rc;
}

/* One parser for REST and the upgrade: any run of spaces or tabs after the scheme, any case,
 * trailing whitespace ignored; no credential, another scheme or inner whitespace refused. */
static void bearer_forms(void **state)
{
    const char *ok[] = {"Bearer abc.def",  "bearer abc.def",     "BEARER   abc.def",
                        "Bearer\tabc.def", "Bearer \t abc.def ", " Bearer abc.def\t"};
    const char *bad[] = {"Bearer",     "Bearer ",        "Bearerabc.def", "Basic abc.def",
                         "Bearer a b", "Bearer abc\x01", "Bear abc.def",  ""};
    char tok[64];
    struct http_request none = {0};
    struct slice t;
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        tok[0] = '\0';
        assert_int_equal(bearer_of(ok[i], tok, sizeof(tok)), 1);
        assert_string_equal(tok, "abc.def");
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(bearer_of(bad[i], tok, sizeof(tok)), -1);
    assert_int_equal(http_bearer_token(&none, &t), 0);
}

static int query_of(const char *query, const char *name, char *out, size_t cap)
{
    struct http_request r = {.query = {query, strlen(query)}};
    return http_query_value(&r, name, out, cap);
}

/* Over-long and repeated values are errors, not "absent" (they used to be ignored). */
static void query_values(void **state)
{
    char v[8];
    (void)state;
    assert_int_equal(query_of("limit=5&after=7", "after", v, sizeof(v)), 1);
    assert_string_equal(v, "7");
    assert_int_equal(query_of("limit=%35", "limit", v, sizeof(v)), 1);
    assert_string_equal(v, "5");
    assert_int_equal(query_of("limitx=5", "limit", v, sizeof(v)), 0);
    assert_int_equal(query_of("", "limit", v, sizeof(v)), 0);
    assert_int_equal(query_of("limit", "limit", v, sizeof(v)), 1);
    assert_string_equal(v, "");
    assert_int_equal(query_of("limit=1234567", "limit", v, sizeof(v)), 1);
    assert_int_equal(query_of("limit=12345678", "limit", v, sizeof(v)), HTTP_QUERY_TOO_LONG);
    assert_string_equal(v, "");
    assert_int_equal(query_of("limit=1&x=2&limit=3", "limit", v, sizeof(v)), HTTP_QUERY_REPEATED);
    /* the lenient lookup keeps its contract: 0 for what does not fit */
    {
        struct http_request r = {.query = SLICE_LIT("limit=12345678")};
        assert_int_equal(http_query_param(&r, "limit", v, sizeof(v)), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bearer_forms),       cmocka_unit_test(query_values),
        cmocka_unit_test(ok_request),         cmocka_unit_test(body_within_and_over_limit),
        cmocka_unit_test(too_many_headers),   cmocka_unit_test(header_bytes_over_limit),
        cmocka_unit_test(malformed),          cmocka_unit_test(keepalive_and_pipelining),
        cmocka_unit_test(slowloris_gets_408),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
