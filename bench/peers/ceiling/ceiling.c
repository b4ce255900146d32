/* ceiling.c - the smallest, fastest WebSocket broadcast server we can write for this machine.
 *
 * It is the yardstick of bench/: no chat logic, no JSON, one thread, epoll. Every data frame a
 * client sends is broadcast to every connected client (one implicit room) except the clients
 * that connected to the path /pub (publishers do not receive) or /ack.
 *
 * /ack is the floor of chatbench's `durable` scenario: each data frame is answered, to its sender
 * only, with an ack shaped and sized like chatd's (the frame's "#T<16 hex>" send time as its
 * id), and stored nowhere. What chatd adds on top of this is its storage.
 *
 * Why it is fast:
 *   - Per-iteration coalescing (corking): frames received while handling one epoll_wait batch are
 *     re-encoded once, back to back, into a single shared batch buffer. After the batch every
 *     receiver gets the whole buffer in ONE write(). Under load an iteration carries more frames,
 *     so each write grows and the syscalls per delivery fall.
 *   - Nothing per delivery allocates, encodes or copies, unless the socket is full: then only the
 *     unwritten remainder is copied into that connection's backlog (bounded, 4 MiB by default; a
 *     slower reader is disconnected).
 *   - Tiny per-connection state (struct conn, indexed by fd, no buffers while idle).
 *
 * Usage: ceiling [--port N] [--host ADDR] [--max-backlog BYTES]   (pin it with taskset)
 */
#include "../../common/wsaccept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)  /* one read() at most; also the largest accepted frame */
#define MAX_HANDSHAKE 4096     /* an upgrade request larger than this is refused */
#define MAX_EVENTS 1024

enum { ST_FREE = 0, ST_HANDSHAKE, ST_OPEN };
enum { ROLE_RECV = 0, ROLE_PUB, ROLE_ACK }; /* by path: /pub and /ack never receive broadcasts */

struct conn {
    uint8_t state;    /* ST_* */
    uint8_t role;     /* ROLE_* */
    uint8_t dead;     /* close at the end of the iteration */
    uint8_t want_out; /* EPOLLOUT registered */
    uint32_t rx_idx;  /* index in the receivers array when receiving */
    uint8_t *in;      /* incomplete input carried between reads (NULL when none) */
    uint32_t in_len;
    uint32_t out_off; /* backlog: unwritten bytes out[out_off..out_len) */
    uint32_t out_len;
    uint32_t out_cap;
    uint8_t *out;
};

static struct conn *conns; /* indexed by fd */
static int nconns_max;
static int *receivers; /* fds of open non-publisher connections */
static int nreceivers;
static int *dead_list;
static int ndead;
static int epfd;
static size_t max_backlog = 4u << 20;

static uint8_t *batch; /* frames received this iteration, server-encoded, back to back */
static size_t batch_len, batch_cap;
static int *ack_list; /* /ack connections with acks queued this iteration */
static int nack;
static uint64_t ack_seq;
static uint8_t rbuf[READ_BUF + MAX_HANDSHAKE];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs("ceiling: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void mark_dead(int fd)
{
    struct conn *c = &conns[fd];
    if (c->dead)
        return;
    c->dead = 1;
    dead_list[ndead++] = fd;
}

static void close_conn(int fd)
{
    struct conn *c = &conns[fd];
    if (c->state == ST_OPEN && c->role == ROLE_RECV) {
        int last = receivers[--nreceivers];
        receivers[c->rx_idx] = last;
        conns[last].rx_idx = c->rx_idx;
    }
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

static void set_out_interest(int fd, int on)
{
    struct conn *c = &conns[fd];
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    c->want_out = (uint8_t)on;
}

/* Append bytes to the backlog without asking for EPOLLOUT; the connection dies if it would
 * exceed max_backlog. Returns 0 when queued. */
static int backlog_queue(int fd, const uint8_t *p, size_t n)
{
    struct conn *c = &conns[fd];
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if ((size_t)(c->out_len - c->out_off) + n > max_backlog) {
        mark_dead(fd);
        return -1;
    }
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 16384;
            while (cap < c->out_len + n)
                cap *= 2;
            c->out = xrealloc(c->out, cap);
            c->out_cap = (uint32_t)cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    return 0;
}

/* Append bytes to the backlog, written when the socket is writable again. */
static void backlog_append(int fd, const uint8_t *p, size_t n)
{
    if (backlog_queue(fd, p, n) == 0) set_out_interest(fd, 1);
}

/* Write backlog (if any) then p[0..n) with one writev; queue what the socket does not take. */
static void send_bytes(int fd, const uint8_t *p, size_t n)
{
    struct conn *c = &conns[fd];
    if (c->dead)
        return;
    size_t pending = c->out_len - c->out_off;
    struct iovec iov[2];
    int cnt = 0;
    if (pending) {
        iov[cnt].iov_base = c->out + c->out_off;
        iov[cnt++].iov_len = pending;
    }
    if (n) {
        iov[cnt].iov_base = (void *)p;
        iov[cnt++].iov_len = n;
    }
    if (cnt == 0)
        return;
    ssize_t w = cnt == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, cnt);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            mark_dead(fd);
            return;
        }
        w = 0;
    }
    size_t wr = (size_t)w;
    if (wr < pending) {
        c->out_off += (uint32_t)wr;
        if (n)
            backlog_append(fd, p, n);
        return;
    }
    c->out_off = c->out_len = 0;
    wr -= pending;
    if (wr < n) {
        backlog_append(fd, p + wr, n - wr);
        return;
    }
    if (c->out_cap > 65536) { /* release a large backlog once drained */
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    set_out_interest(fd, 0);
}

static size_t frame_header(uint8_t *h, int opcode, size_t len)
{
    h[0] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4])
{
    uint32_t k32;
    memcpy(&k32, key, 4);
    uint64_t k64 = (uint64_t)k32 << 32 | k32;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= k64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

/* Queue the ack of one frame from an /ack connection; flushed at the end of the iteration with
 * the connection's other acks in one write. The ack has the fields and length of chatd's. */
static void queue_ack(int fd, const uint8_t *payload, size_t len, const uint8_t key[4])
{
    struct conn *c = &conns[fd];
    uint8_t ts[18] = "#T0000000000000000";
    uint8_t frame[256];
    unmask_copy(ts, payload, len < sizeof ts ? len : sizeof ts, key);
    ack_seq++;
    int n = snprintf((char *)frame + 4, sizeof frame - 4,
                     "{\"type\":\"ack\",\"id\":\"T%.16s\",\"room\":\"r_1\",\"seq\":%llu,"
                     "\"msg_id\":\"m_1_%llu\",\"ts\":1764600000000,\"client_msg_id\":\"0-%llu\","
                     "\"duplicate\":false}",
                     (const char *)ts + 2, (unsigned long long)ack_seq, (unsigned long long)ack_seq,
                     (unsigned long long)ack_seq);
    size_t h = frame_header(frame, 0x1, (size_t)n);
    if (h == 2) /* shorter than 126: move the header next to the payload */
        memcpy(frame + 2, frame, 2);
    const uint8_t *f = h == 2 ? frame + 2 : frame;
    if (c->out_len == c->out_off && !c->want_out) ack_list[nack++] = fd;
    backlog_queue(fd, f, h + (size_t)n);
}

/* Parse complete client frames in p[0..n). Returns bytes consumed, or -1 to close. */
static ssize_t parse_frames(int fd, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2) {
        uint8_t *f = p + off;
        int opcode = f[0] & 0x0F;
        if (!(f[1] & 0x80))
            return -1; /* client frames must be masked */
        uint64_t len;
        size_t hl;
        if (wsa_frame_len(f, n - off, &len, &hl))
            break;
        if (len > READ_BUF)
            return -1;
        if (n - off < hl + 4 + len)
            break;
        const uint8_t *key = f + hl;
        const uint8_t *payload = key + 4;
        switch (opcode) {
        case 0x0:
        case 0x1:
        case 0x2: {
            if (conns[fd].role == ROLE_ACK) {
                queue_ack(fd, payload, len, key);
                break;
            }
            size_t need = batch_len + 10 + len;
            if (need > batch_cap) {
                batch_cap = batch_cap ? batch_cap : 65536;
                while (batch_cap < need)
                    batch_cap *= 2;
                batch = xrealloc(batch, batch_cap);
            }
            /* Forward FIN and opcode as received (our clients never fragment). */
            size_t h = frame_header(batch + batch_len, opcode, len);
            batch[batch_len] = (uint8_t)((f[0] & 0x80) | opcode);
            unmask_copy(batch + batch_len + h, payload, len, key);
            batch_len += h + len;
            break;
        }
        case 0x8: { /* close: echo an empty close, then drop */
            static const uint8_t close_frame[2] = {0x88, 0x00};
            send_bytes(fd, close_frame, 2);
            return -1;
        }
        case 0x9: { /* ping -> pong with the same payload (at most 125 bytes) */
            uint8_t pong[2 + 125];
            if (len > 125)
                return -1;
            pong[0] = 0x8A;
            pong[1] = (uint8_t)len;
            unmask_copy(pong + 2, payload, len, key);
            send_bytes(fd, pong, 2 + len);
            break;
        }
        case 0xA:
            break;
        default:
            return -1;
        }
        off += hl + 4 + len;
    }
    return (ssize_t)off;
}

/* Case-insensitive search for header `name` in the request; returns its trimmed value. */
static const char *find_header(const char *req, size_t reqlen, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = req, *end = req + reqlen;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

/* Handle a complete upgrade request of hlen bytes. Returns 0 when upgraded, -1 to close. */
static int handshake(int fd, const char *req, size_t hlen)
{
    struct conn *c = &conns[fd];
    size_t klen;
    const char *key = find_header(req, hlen, "Sec-WebSocket-Key", &klen);
    char accept[29];
    if (strncmp(req, "GET ", 4) != 0 || !key || wsa_accept(key, klen, accept) != 0) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        send_bytes(fd, (const uint8_t *)bad, sizeof bad - 1);
        return -1;
    }
    if ((req[8] == ' ' || req[8] == '?') && strncmp(req + 4, "/pub", 4) == 0)
        c->role = ROLE_PUB;
    else if ((req[8] == ' ' || req[8] == '?') && strncmp(req + 4, "/ack", 4) == 0)
        c->role = ROLE_ACK;
    size_t plen;
    const char *proto = find_header(req, hlen, "Sec-WebSocket-Protocol", &plen);
    char resp[256];
    int n;
    if (proto) { /* accept the first offered subprotocol */
        const char *comma = memchr(proto, ',', plen);
        if (comma)
            plen = (size_t)(comma - proto);
        if (plen > 64)
            plen = 64;
        n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %.*s\r\n\r\n",
                     accept, (int)plen, proto);
    } else {
        n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    }
    send_bytes(fd, (const uint8_t *)resp, (size_t)n);
    c->state = ST_OPEN;
    if (c->role == ROLE_RECV) {
        c->rx_idx = (uint32_t)nreceivers;
        receivers[nreceivers++] = fd;
    }
    return 0;
}

static void on_readable(int fd)
{
    struct conn *c = &conns[fd];
    size_t have = c->in_len;
    if (have)
        memcpy(rbuf, c->in, have);
    ssize_t r = read(fd, rbuf + have, READ_BUF + MAX_HANDSHAKE - have);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        mark_dead(fd);
        return;
    }
    size_t n = have + (size_t)r;
    size_t off = 0;
    if (c->state == ST_HANDSHAKE) {
        uint8_t *e = memmem(rbuf, n, "\r\n\r\n", 4);
        if (!e) {
            if (n > MAX_HANDSHAKE) {
                mark_dead(fd);
                return;
            }
            goto keep;
        }
        if (handshake(fd, (const char *)rbuf, (size_t)(e - rbuf) + 2) != 0) {
            mark_dead(fd);
            return;
        }
        off = (size_t)(e - rbuf) + 4;
    }
    ssize_t used = parse_frames(fd, rbuf + off, n - off);
    if (used < 0) {
        mark_dead(fd);
        return;
    }
    off += (size_t)used;
keep:
    if (off == n) {
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
        return;
    }
    if (n - off > READ_BUF) { /* a frame larger than we accept */
        mark_dead(fd);
        return;
    }
    if (c->in == NULL || n - off > c->in_len) {
        free(c->in);
        c->in = xrealloc(NULL, n - off);
    }
    memcpy(c->in, rbuf + off, n - off);
    c->in_len = (uint32_t)(n - off);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors (retried on the next wakeup) */
        if (fd >= nconns_max) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        memset(&conns[fd], 0, sizeof conns[fd]);
        conns[fd].state = ST_HANDSHAKE;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            conns[fd].state = ST_FREE;
            close(fd);
        }
    }
}

int main(int argc, char **argv)
{
    int port = 9001;
    const char *host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--max-backlog") && i + 1 < argc)
            max_backlog = (size_t)strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--port N] [--host ADDR] [--max-backlog BYTES]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    nconns_max = (int)rl.rlim_cur + 16;
    conns = calloc((size_t)nconns_max, sizeof *conns); /* pages touched only as fds are used */
    receivers = calloc((size_t)nconns_max, sizeof *receivers);
    dead_list = calloc((size_t)nconns_max, sizeof *dead_list);
    ack_list = calloc((size_t)nconns_max, sizeof *ack_list);
    if (!conns || !receivers || !dead_list || !ack_list) die("calloc");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        die("inet_pton");
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("bind");
    if (listen(lfd, 65535) != 0)
        die("listen");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    fprintf(stderr, "ceiling: listening on %s:%d\n", host, port);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                on_accept(lfd);
                continue;
            }
            if (conns[fd].dead)
                continue;
            if (evs[i].events & EPOLLOUT)
                send_bytes(fd, NULL, 0);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(fd);
        }
        /* Flush: every receiver gets this iteration's frames in one write. */
        if (batch_len) {
            for (int i = 0; i < nreceivers; i++)
                send_bytes(receivers[i], batch, batch_len);
            batch_len = 0;
            if (batch_cap > (8u << 20)) { /* do not keep a burst-sized batch forever */
                free(batch);
                batch = NULL;
                batch_cap = 0;
            }
        }
        /* Every /ack connection gets this iteration's acks in one write. */
        for (int i = 0; i < nack; i++) {
            int fd = ack_list[i];
            send_bytes(fd, NULL, 0);
            if (!conns[fd].dead && conns[fd].out_len > conns[fd].out_off) set_out_interest(fd, 1);
        }
        nack = 0;
        for (int i = 0; i < ndead; i++)
            close_conn(dead_list[i]);
        ndead = 0;
    }
}
