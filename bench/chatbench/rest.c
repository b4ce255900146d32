/* rest.c - a small blocking HTTP/1.1 client for chatd's REST API (setup and the history
 * scenario). Not on any hot path: one request at a time on a kept-alive connection. */
#include "cb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int http_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One attempt; returns the status, -1 on a transport error, -2 when the kept-alive connection
 * was closed before any response byte (worth one retry on a new connection). */
static int attempt(int *fd, const char *host, int port, const char *req, size_t reqlen,
                   char **body)
{
    if (*fd < 0 && (*fd = http_connect(host, port)) < 0)
        return -1;
    if (write_all(*fd, req, reqlen) != 0)
        return -2;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -1;
    char *hdr_end = NULL;
    long clen = -1;
    int status = -1, close_after = 0;
    for (;;) {
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return -1;
            }
            buf = nb;
            if (hdr_end) /* re-derive after the move */
                hdr_end = NULL;
        }
        ssize_t r = read(*fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (len == 0) {
                free(buf);
                return -2;
            }
            if (close_after && hdr_end)
                break; /* body delimited by EOF */
            free(buf);
            return -1;
        }
        len += (size_t)r;
        buf[len] = '\0';
        if (!hdr_end) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e)
                continue;
            hdr_end = e + 4;
            status = atoi(buf + 9);
            for (char *l = buf; l < e; l = strstr(l, "\r\n") + 2) {
                if (strncasecmp(l, "Content-Length:", 15) == 0)
                    clen = atol(l + 15);
                else if (strncasecmp(l, "Connection: close", 17) == 0)
                    close_after = 1;
            }
        }
        if (clen >= 0 && (size_t)(len - (size_t)(hdr_end - buf)) >= (size_t)clen)
            break;
    }
    if (!hdr_end) {
        char *e = strstr(buf, "\r\n\r\n");
        hdr_end = e ? e + 4 : buf + len;
    }
    size_t blen = clen >= 0 ? (size_t)clen : len - (size_t)(hdr_end - buf);
    memmove(buf, hdr_end, blen);
    buf[blen] = '\0';
    *body = buf;
    if (close_after) {
        close(*fd);
        *fd = -1;
    }
    return status;
}

int cb_http(int *fd, const char *host, int port, const char *method, const char *path,
            const char *token, const char *json, char **body)
{
    size_t jl = json ? strlen(json) : 0;
    size_t cap = strlen(path) + (token ? strlen(token) : 0) + jl + 512;
    char *req = malloc(cap);
    if (!req)
        return -1;
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s%s%s%s%zu\r\n\r\n%s", method, path, host,
                     port, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "",
                     json ? "Content-Type: application/json\r\nContent-Length: "
                          : "Content-Length: ",
                     jl, json ? json : "");
    *body = NULL;
    int st = attempt(fd, host, port, req, (size_t)n, body);
    if (st == -2) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        st = attempt(fd, host, port, req, (size_t)n, body);
    }
    if (st < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    free(req);
    return st < 0 ? -1 : st;
}

int cb_json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = json;
    while ((p = strstr(p, pat)) != NULL) {
        p += strlen(pat);
        while (*p == ' ')
            p++;
        if (*p != ':')
            continue;
        p++;
        while (*p == ' ')
            p++;
        if (*p != '"')
            return -1;
        p++;
        size_t i = 0;
        while (*p && *p != '"' && i + 1 < cap) {
            if (*p == '\\' && p[1])
                p++;
            out[i++] = *p++;
        }
        out[i] = '\0';
        return *p == '"' ? 0 : -1;
    }
    return -1;
}

long long cb_json_num(const char *json, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    return strtoll(p, NULL, 10);
}
