/* chatd.c - chatd-only parts of chatbench: users, tokens and rooms made through the REST API
 * before the workers start, and the REST-only history scenario. Kept apart from the engine so
 * the peers never depend on chatd's protocol. */
#include "cb.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cb_chatd_register(const struct cb_opts *o, int *fd, const char *prefix, int i,
                      struct cb_user *u)
{
    char json[256], *body = NULL;
    snprintf(json, sizeof json, "{\"username\":\"%s_%d\",\"password\":\"chatbench-pass\"}", prefix,
             i);
    int st = cb_http(fd, o->host, o->port, "POST", "/v1/auth/register", NULL, json, &body);
    int ok = st == 201 && body && cb_json_str(body, "access_token", u->token, sizeof u->token) == 0 &&
             cb_json_str(body, "id", u->id, sizeof u->id) == 0;
    if (!ok)
        fprintf(stderr, "chatbench: register %s_%d failed: HTTP %d %s\n", prefix, i, st,
                body ? body : "");
    free(body);
    return ok ? 0 : -1;
}

static int add_member(const struct cb_opts *o, int *fd, const struct cb_user *owner,
                      const struct cb_room *r, const struct cb_user *u)
{
    char path[128], json[128], *body = NULL;
    snprintf(path, sizeof path, "/v1/rooms/%s/members", r->id);
    snprintf(json, sizeof json, "{\"user_id\":\"%s\"}", u->id);
    int st = cb_http(fd, o->host, o->port, "POST", path, owner->token, json, &body);
    if (st / 100 != 2)
        fprintf(stderr, "chatbench: add member failed: HTTP %d %s\n", st, body ? body : "");
    free(body);
    return st / 100 == 2 ? 0 : -1;
}

static int create_room(const struct cb_opts *o, int *fd, const struct cb_user *owner,
                       const char *name, struct cb_room *r)
{
    char json[256], *body = NULL;
    snprintf(json, sizeof json, "{\"name\":\"%s\",\"members\":[]}", name);
    int st = cb_http(fd, o->host, o->port, "POST", "/v1/rooms", owner->token, json, &body);
    int ok = st == 201 && body && cb_json_str(body, "id", r->id, sizeof r->id) == 0;
    if (!ok)
        fprintf(stderr, "chatbench: create room failed: HTTP %d %s\n", st, body ? body : "");
    free(body);
    return ok ? 0 : -1;
}

/* POST one message to room r as its owner; returns its seq, or -1. */
static long long post_message(const struct cb_opts *o, int *fd, const struct cb_world *world,
                              int r, const char *tag)
{
    static unsigned counter;
    char path[128], json[256], *body = NULL;
    snprintf(path, sizeof path, "/v1/rooms/%s/messages", world->rooms[r].id);
    snprintf(json, sizeof json, "{\"body\":\"%s %u\",\"client_msg_id\":\"%s-%d-%u-%d\"}", tag,
             counter, tag, r, counter, (int)getpid());
    counter++;
    int st = cb_http(fd, o->host, o->port, "POST", path,
                     world->users[r % world->nusers].token, json, &body);
    long long seq = st / 100 == 2 && body ? cb_json_num(body, "seq") : -1;
    if (seq < 0)
        fprintf(stderr, "chatbench: post message failed: HTTP %d %s\n", st, body ? body : "");
    free(body);
    return seq;
}

int cb_chatd_post_missed(const struct cb_opts *o, const struct cb_world *world)
{
    int fd = -1, failures = 0;
    for (int k = 0; k < o->missed; k++)
        for (int r = 0; r < world->nrooms; r++)
            if (post_message(o, &fd, world, r, "missed") < 0)
                failures++;
    if (fd >= 0)
        close(fd);
    return failures;
}

void cb_chatd_send_sync(struct cb_worker *w, struct cb_conn *c)
{
    char buf[256];
    const struct cb_room *r = &w->world->rooms[c->room];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"sync\",\"id\":\"s%u\",\"rooms\":{\"%s\":%" PRIu64 "}}",
                     c->gid, r->id, r->last_seq);
    cb_send_frame(w, c, 1, buf, (size_t)n);
}

int cb_chatd_setup(const struct cb_opts *o, struct cb_world *world)
{
    int nusers, nrooms;
    switch (o->scenario) {
    case SC_FANOUT:
        nusers = o->users > 0 ? o->users : (o->receivers + o->senders < 50 ? o->receivers + o->senders : 50);
        nrooms = 1;
        break;
    case SC_CONNECTIONS:
        nusers = o->users > 0 ? o->users : 10;
        nrooms = 1;
        break;
    case SC_DURABLE:
        nrooms = o->rooms > 0 ? o->rooms : o->senders;
        nusers = nrooms;
        break;
    default:
        nrooms = o->rooms > 0 ? o->rooms : 100;
        nusers = nrooms;
        break;
    }
    if (nusers < 1)
        nusers = 1;
    int rc = -1;
    world->users = calloc((size_t)nusers, sizeof *world->users);
    world->rooms = calloc((size_t)nrooms, sizeof *world->rooms);
    if (!world->users || !world->rooms)
        return -1;
    char prefix[24];
    snprintf(prefix, sizeof prefix, "cb%08x", (unsigned)(time(NULL) ^ (getpid() << 16)));
    int fd = -1;
    uint64_t t0 = cb_now();
    for (int i = 0; i < nusers; i++)
        if (cb_chatd_register(o, &fd, prefix, i, &world->users[i]) != 0)
            goto done;
    world->nusers = nusers;
    if (o->scenario == SC_CONNECTIONS) {
        /* Idle connections need no room; one is made when the server has rooms, so the
         * connections are subscribed as in real use. */
        if (create_room(o, &fd, &world->users[0], "bench", &world->rooms[0]) == 0)
            for (int i = 1; i < nusers; i++)
                if (add_member(o, &fd, &world->users[0], &world->rooms[0], &world->users[i]) != 0)
                    goto done;
    } else if (o->scenario == SC_FANOUT) {
        if (create_room(o, &fd, &world->users[0], "bench", &world->rooms[0]) != 0)
            goto done;
        for (int i = 1; i < nusers; i++)
            if (add_member(o, &fd, &world->users[0], &world->rooms[0], &world->users[i]) != 0)
                goto done;
    } else {
        for (int r = 0; r < nrooms; r++)
            if (create_room(o, &fd, &world->users[r % nusers], "bench", &world->rooms[r]) != 0)
                goto done;
    }
    world->nrooms = nrooms;
    if (o->scenario == SC_STORM) {
        /* Some history before the drop, so `sync` must skip what the connections saw. */
        for (int r = 0; r < nrooms; r++)
            for (int k = 0; k < 5; k++) {
                long long seq = post_message(o, &fd, world, r, "before");
                if (seq < 0)
                    goto done;
                world->rooms[r].last_seq = (uint64_t)seq;
            }
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        free(world->users);
        free(world->rooms);
        world->users = NULL;
        world->rooms = NULL;
        world->nusers = world->nrooms = 0;
        return rc;
    }
    if (!o->quiet)
        fprintf(stderr, "chatbench: chatd setup: %d users, %d rooms in %.2f s\n", nusers, nrooms,
                (double)(cb_now() - t0) / 1e9);
    return 0;
}

/* ---- history: fill one room over a blocking, pipelined WebSocket, then time REST queries ---- */

struct wsb {
    int fd;
    uint8_t *buf;
    size_t len, cap;
};

static int wsb_fill(struct wsb *b)
{
    if (b->len == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 1 << 20;
        b->buf = realloc(b->buf, b->cap);
        if (!b->buf)
            abort();
    }
    ssize_t r = read(b->fd, b->buf + b->len, b->cap - b->len);
    if (r <= 0)
        return -1;
    b->len += (size_t)r;
    return 0;
}

/* Next complete server frame; payload points into b->buf, valid until the next call.
 * Returns the opcode, or -1 on EOF/timeout. *used is what to drop before the next call. */
static int wsb_next(struct wsb *b, size_t *used, uint8_t **payload, size_t *plen)
{
    if (*used) {
        memmove(b->buf, b->buf + *used, b->len - *used);
        b->len -= *used;
        *used = 0;
    }
    for (;;) {
        if (b->len >= 2) {
            uint64_t len = b->buf[1] & 0x7F;
            size_t hl = 2;
            if (len == 126 && b->len >= 4) {
                len = (uint64_t)b->buf[2] << 8 | b->buf[3];
                hl = 4;
            } else if (len == 127 && b->len >= 10) {
                len = 0;
                for (int i = 0; i < 8; i++)
                    len = len << 8 | b->buf[2 + i];
                hl = 10;
            } else if (len >= 126) {
                hl = 0;
            }
            if (hl && b->len >= hl + len) {
                *payload = b->buf + hl;
                *plen = (size_t)len;
                *used = hl + (size_t)len;
                return b->buf[0] & 0x0F;
            }
        }
        if (wsb_fill(b) != 0)
            return -1;
    }
}

static size_t mask_frame(uint8_t *out, const char *p, size_t n)
{
    size_t h = 0;
    out[h++] = 0x81;
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    static const uint8_t key[4] = {0x1b, 0x2c, 0x3d, 0x4e};
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = (uint8_t)p[i] ^ key[i & 3];
    return h + n;
}

static int ws_open_blocking(const struct cb_opts *o, const char *token, struct wsb *b)
{
    int fd = -1;
    char *body = NULL;
    /* Reuse the REST client's connect by issuing the upgrade by hand on a fresh socket. */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, o->host, &sa.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto fail;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /v1/ws?access_token=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     token, o->host, o->port);
    if (write(fd, req, (size_t)n) != n)
        goto fail;
    b->fd = fd;
    for (;;) {
        if (wsb_fill(b) != 0)
            goto fail;
        uint8_t *e = memmem(b->buf, b->len, "\r\n\r\n", 4);
        if (!e)
            continue;
        if (memcmp(b->buf, "HTTP/1.1 101", 12) != 0)
            goto fail;
        size_t hl = (size_t)(e - b->buf) + 4;
        memmove(b->buf, b->buf + hl, b->len - hl);
        b->len -= hl;
        return 0;
    }
fail:
    fprintf(stderr, "chatbench: history: WebSocket open failed\n");
    free(body);
    if (fd >= 0)
        close(fd);
    return -1;
}

static void hist_json(const char *name, const struct cb_hist *h)
{
    printf("\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
           "\"max\":%.3f}",
           name, h->total, cb_hist_pct(h, 50) / 1e6, cb_hist_pct(h, 90) / 1e6,
           cb_hist_pct(h, 99) / 1e6, cb_hist_pct(h, 99.9) / 1e6, h->max / 1e6);
}

int cb_chatd_history(const struct cb_opts *o)
{
    struct cb_opts so = *o;
    so.scenario = SC_DURABLE;
    so.senders = 1;
    so.rooms = 1;
    struct cb_world world = {0};
    if (cb_chatd_setup(&so, &world) != 0)
        return 1;
    int rc = 1;
    uint64_t errors = 0;
    struct wsb b = {.fd = -1};
    static struct cb_hist latest, before, after;
    long total = o->history_msgs;
    uint64_t t0 = cb_now();
    long sent = 0, acked = 0;
    const long window = 2000;
    size_t used = 0;
    if (ws_open_blocking(o, world.users[0].token, &b) != 0)
        goto done;
    uint8_t *out = malloc((size_t)window * 512);
    if (!out)
        abort();
    uint64_t deadline = t0 + 900ull * 1000000000ull;
    while (acked < total && cb_now() < deadline) {
        size_t ol = 0;
        while (sent < total && sent - acked < window) {
            char msg[400];
            int n = snprintf(msg, sizeof msg,
                             "{\"type\":\"send\",\"room\":\"%s\",\"client_msg_id\":\"h%ld\","
                             "\"body\":\"history message %ld ...........................................\"}",
                             world.rooms[0].id, sent, sent);
            ol += mask_frame(out + ol, msg, (size_t)n);
            sent++;
        }
        if (ol && write(b.fd, out, ol) != (ssize_t)ol) { /* blocking socket: all or error */
            errors++;
            break;
        }
        long goal = sent == total ? total : acked + window / 2;
        while (acked < goal) {
            uint8_t *p;
            size_t pl;
            int op = wsb_next(&b, &used, &p, &pl);
            if (op < 0) {
                fprintf(stderr, "chatbench: history: connection lost after %ld acks\n", acked);
                errors++;
                goto filled;
            }
            if (op != 1)
                continue;
            if (memmem(p, pl, "\"type\":\"ack\"", 12)) {
                acked++;
            } else if (memmem(p, pl, "\"type\":\"error\"", 14)) {
                if (errors++ < 5)
                    fprintf(stderr, "chatbench: history: %.*s\n", (int)(pl > 200 ? 200 : pl), p);
                acked++;
            }
        }
    }
filled:
    free(out);
    double fill_s = (double)(cb_now() - t0) / 1e9;
    if (!o->quiet)
        fprintf(stderr, "chatbench: history: %ld messages acknowledged in %.1f s\n", acked, fill_s);
    int fd = -1;
    unsigned seed = 12345;
    for (int kind = 0; kind < 3; kind++) {
        struct cb_hist *h = kind == 0 ? &latest : kind == 1 ? &before : &after;
        for (int q = 0; q < o->queries; q++) {
            char path[256], *body = NULL;
            seed = seed * 1103515245u + 12345u;
            long at = acked > 100 ? 51 + (long)(seed % (unsigned)(acked - 100)) : 1;
            if (kind == 0)
                snprintf(path, sizeof path, "/v1/rooms/%s/messages?limit=50", world.rooms[0].id);
            else
                snprintf(path, sizeof path, "/v1/rooms/%s/messages?%s=%ld&limit=50",
                         world.rooms[0].id, kind == 1 ? "before" : "after", at);
            uint64_t t = cb_now();
            int st = cb_http(&fd, o->host, o->port, "GET", path, world.users[0].token, NULL, &body);
            uint64_t dt = cb_now() - t;
            int n = 0;
            for (const char *x = body; x && (x = strstr(x, "\"seq\"")) != NULL; x += 5)
                n++;
            if (st != 200 || (acked >= 200 && n < 50)) {
                if (errors++ < 5)
                    fprintf(stderr, "chatbench: history query %s: HTTP %d, %d messages\n", path, st, n);
            }
            cb_hist_add(h, dt);
            free(body);
        }
    }
    if (fd >= 0)
        close(fd);
    printf("{\"scenario\":\"history\",\"target\":\"chatd\",\"url\":\"ws://%s:%d/\",\"label\":\"%s\","
           "\"params\":{\"history_msgs\":%ld,\"queries\":%d,\"conns\":1},\"fill_acked\":%ld,"
           "\"fill_seconds\":%.3f,\"fill_msgs_per_s\":%.1f,\"errors\":%" PRIu64 ",",
           o->host, o->port, o->label, total, o->queries, acked, fill_s,
           fill_s > 0 ? (double)acked / fill_s : 0.0, errors);
    hist_json("latest50_ms", &latest);
    putchar(',');
    hist_json("before50_ms", &before);
    putchar(',');
    hist_json("after50_ms", &after);
    printf(",\"ok\":%s}\n", errors == 0 && acked == total ? "true" : "false");
    rc = 0;
done:
    if (b.fd >= 0)
        close(b.fd);
    free(b.buf);
    free(world.users);
    free(world.rooms);
    return rc;
}
