/* client.c - chatbench's WebSocket client engine: one epoll loop per worker process driving
 * thousands of connections, an open-loop sender and the receive path.
 *
 * Receive path (the part that must reach >= 3,000,000 frames/s on one core): one read() of up to
 * 1 MiB into a per-worker buffer, every complete frame in it parsed in place, the body marker
 * found at a fixed offset (or by one memchr inside an envelope), one clock reading per read()
 * shared by all the frames it returned, and no allocation per frame. A frame cut by the end of a
 * read is carried in the connection's small `in` buffer and glued in front of the next read.
 *
 * Send path: open loop. Message k of this worker is due at start + phase + k * period whatever the
 * server does; a timerfd wakes the loop at the next due time and every message due by then goes
 * out, stamped with its due time (not the time it left), so lateness of the generator or of a full
 * socket shows up as latency instead of silently lowering the offered rate. Bytes a socket does not
 * take are queued (bounded) and written on EPOLLOUT. With --tick-us the timer fires at most once
 * per tick (at 100,000 msgs/s a wake-up per message would cost the load core more than the sends);
 * the wait for the tick still counts as latency, since messages keep their due time.
 */
#include "cb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "wsaccept.h"

#define RBUF_SIZE (1u << 20)       /* one read() */
#define MAX_FRAME (1u << 20)       /* largest frame we accept from a server */
#define MAX_OUT (64u << 20)        /* queued output per connection before we give up on it */
#define MAX_UPGRADE_RESPONSE 8192
#define TIMER_TAG UINT64_MAX
#define MAX_EVENTS 1024

static uint8_t *rbuf;  /* RBUF_SIZE + MAX_FRAME: carried bytes + one read */
static uint8_t txbuf[14 + 256 * 1024];
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static int fail_reports;

uint64_t cb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static uint32_t rnd32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

uint64_t cb_hex(const uint8_t *p, int digits)
{
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        unsigned ch = p[i];
        unsigned d;
        if (ch - '0' < 10u)
            d = ch - '0';
        else if ((ch | 0x20u) - 'a' < 6u)
            d = (ch | 0x20u) - 'a' + 10;
        else
            return UINT64_MAX;
        v = v << 4 | d;
    }
    return v;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs("chatbench: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void set_events(struct cb_worker *w, struct cb_conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(c - w->conns)};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void release(struct cb_conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* SO_LINGER 0: reset, no TIME_WAIT left on the client's ports */
    c->fd = -1;
    free(c->in);
    free(c->app);
    free(c->out);
    free(c->last_seq);
    c->in = c->app = c->out = NULL;
    c->last_seq = NULL;
    c->in_len = c->in_cap = c->app_len = c->app_cap = 0;
    c->out_off = c->out_len = c->out_cap = 0;
    c->want_out = 0;
}

/* The connection is gone (EOF, error, close frame, or our decision). */
static void conn_lost(struct cb_worker *w, struct cb_conn *c)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_READY) {
        w->st->closed++;
    } else if (c->reconnecting) {
        w->st->reconnect_failed++;
        w->inflight--;
    } else if (c->state != CS_PENDING) {
        w->st->conns_failed++;
        w->inflight--;
        w->opened++;
    }
    c->state = CS_CLOSED;
    release(c);
}

void cb_conn_fail(struct cb_worker *w, struct cb_conn *c, const char *why)
{
    w->st->errors++;
    if (fail_reports < 5) {
        fail_reports++;
        fprintf(stderr, "chatbench[%d]: connection %u: %s\n", w->id, c->gid, why);
    }
    conn_lost(w, c);
}

void cb_conn_ready(struct cb_worker *w, struct cb_conn *c)
{
    if (c->state == CS_READY)
        return;
    uint64_t now = cb_now();
    c->state = CS_READY;
    w->inflight--;
    if (c->reconnecting)
        return; /* mix churn: counted when synced */
    w->opened++;
    w->st->conns_ok++;
    if (c->role == ROLE_RECV) {
        w->st->recv_ready++;
        if (w->sh->total_senders > 0 && w->o->scenario != SC_MIX)
            c->last_seq = calloc((size_t)w->sh->total_senders, sizeof *c->last_seq);
    } else if (c->role == ROLE_SEND) {
        w->st->send_ready++;
    }
    cb_hist_add(&w->st->hs, now - c->t0);
    if (now > w->st->t_last_ready)
        w->st->t_last_ready = now;
}

/* Write p[0..n) after whatever is queued; queue the rest. */
static void conn_write(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n)
{
    if (c->fd < 0)
        return;
    if (c->out_len == c->out_off) {
        c->out_off = c->out_len = 0;
        ssize_t r = write(c->fd, p, n);
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_lost(w, c);
                return;
            }
            r = 0;
        }
        p += r;
        n -= (size_t)r;
        if (n == 0)
            return;
    }
    if ((size_t)(c->out_len - c->out_off) + n > MAX_OUT) {
        cb_conn_fail(w, c, "output queue over 64 MiB (server not reading)");
        return;
    }
    if (c->out_len + n > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    if (!c->want_out) {
        c->want_out = 1;
        set_events(w, c, EPOLLIN | EPOLLOUT);
    }
}

static void flush_out(struct cb_worker *w, struct cb_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t r = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_lost(w, c);
            return;
        }
        c->out_off += (uint32_t)r;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > 65536) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    c->want_out = 0;
    set_events(w, c, EPOLLIN);
}

void cb_send_frame(struct cb_worker *w, struct cb_conn *c, int opcode, const void *payload,
                   size_t n)
{
    if (n > sizeof txbuf - 14) {
        cb_conn_fail(w, c, "frame too large for the send buffer");
        return;
    }
    uint8_t *f = txbuf;
    size_t h;
    f[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        f[1] = (uint8_t)(0x80 | n);
        h = 2;
    } else if (n < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t)(n >> 8);
        f[3] = (uint8_t)n;
        h = 4;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    uint32_t key = rnd32();
    memcpy(f + h, &key, 4);
    const uint8_t *k = f + h;
    const uint8_t *src = payload;
    uint8_t *dst = f + h + 4;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ k[i & 3];
    conn_write(w, c, f, h + 4 + n);
}

void cb_record(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n)
{
    struct cb_stats *st = w->st;
    if (n < CB_BODY_MIN || p[0] != '#' || p[1] != 'T') {
        st->errors++;
        return;
    }
    uint64_t ts = cb_hex(p + 2, 16);
    uint64_t snd = cb_hex(p + 19, 8);
    uint64_t seq = cb_hex(p + 28, 8);
    if (ts == UINT64_MAX || snd == UINT64_MAX || seq == UINT64_MAX) {
        st->errors++;
        return;
    }
    st->received_total++;
    if (c->role != ROLE_RECV)
        return;
    if (c->last_seq && snd < (uint64_t)w->sh->total_senders) {
        if (seq <= c->last_seq[snd]) {
            st->dups++;
            return;
        }
        c->last_seq[snd] = (uint32_t)seq;
    }
    if (ts >= w->win_start && ts < w->win_end) {
        st->received++;
        cb_record_latency(w, c, ts, snd);
    }
}

void cb_record_latency(struct cb_worker *w, struct cb_conn *c, uint64_t ts, uint64_t snd)
{
    uint64_t lat = w->now > ts ? w->now - ts : 0;
    cb_hist_add(&w->st->lat, lat);
    uint32_t n = (uint32_t)w->o->nurls;
    if (n > 1) {
        /* the sender's connection number: mix senders are connections 0..S-1, the other
         * scenarios' come after the receivers */
        uint64_t sg = w->o->scenario == SC_MIX ? snd : (uint64_t)w->sh->total_receivers + snd;
        if (sg % n != c->gid % n)
            cb_hist_add(&w->st->lat_cross, lat);
    }
}

int cb_record_scan(struct cb_worker *w, struct cb_conn *c, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *h = memchr(p, '#', (size_t)(end - p));
        if (!h)
            return 0;
        if (h + 1 < end && h[1] == 'T') {
            cb_record(w, c, h, (size_t)(end - h));
            return 1;
        }
        p = h + 1;
    }
    return 0;
}

/* A data message, or for stream adapters a run of stream bytes glued to any carried remainder. */
static void deliver(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    const struct cb_proto *pr = w->proto;
    if (!pr->stream) {
        pr->on_data(w, c, p, n);
        return;
    }
    if (c->app_len == 0) {
        size_t used = pr->on_data(w, c, p, n);
        if (c->state == CS_CLOSED || used == n)
            return;
        p += used;
        n -= used;
        if (n > c->app_cap) {
            c->app = xrealloc(c->app, n);
            c->app_cap = (uint32_t)n;
        }
        memcpy(c->app, p, n);
        c->app_len = (uint32_t)n;
        return;
    }
    if (c->app_len + n > MAX_FRAME) {
        cb_conn_fail(w, c, "stream op larger than 1 MiB");
        return;
    }
    if (c->app_len + n > c->app_cap) {
        c->app = xrealloc(c->app, c->app_len + n);
        c->app_cap = c->app_len + (uint32_t)n;
    }
    memcpy(c->app + c->app_len, p, n);
    c->app_len += (uint32_t)n;
    size_t used = pr->on_data(w, c, c->app, c->app_len);
    if (c->state == CS_CLOSED)
        return;
    memmove(c->app, c->app + used, c->app_len - used);
    c->app_len -= (uint32_t)used;
}

/* Parse the complete server frames in p[0..n); returns the bytes consumed. */
static size_t parse_frames(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    uint64_t frames = 0;
    while (n - off >= 2) {
        uint8_t *f = p + off;
        uint64_t len;
        size_t hl;
        if (f[1] & 0x80) {
            cb_conn_fail(w, c, "masked frame from server");
            break;
        }
        if (wsa_frame_len(f, n - off, &len, &hl))
            break;
        if (len > MAX_FRAME) {
            cb_conn_fail(w, c, "frame over 1 MiB");
            break;
        }
        if (n - off < hl + len)
            break;
        uint8_t *payload = f + hl;
        off += hl + len;
        frames++;
        switch (f[0] & 0x0F) {
        case 0x1:
        case 0x2:
            if (!(f[0] & 0x80)) {
                cb_conn_fail(w, c, "fragmented message (not supported)");
                goto out;
            }
            deliver(w, c, payload, len);
            break;
        case 0x8:
            if (c->state == CS_READY && w->sh->stop == 0 && fail_reports < 5) {
                fail_reports++;
                fprintf(stderr, "chatbench[%d]: connection %u closed by server (%u)\n", w->id,
                        c->gid, len >= 2 ? (unsigned)(payload[0] << 8 | payload[1]) : 0u);
            }
            conn_lost(w, c);
            goto out;
        case 0x9:
            cb_send_frame(w, c, 0xA, payload, len);
            break;
        case 0xA:
            break;
        default:
            cb_conn_fail(w, c, "unexpected opcode");
            goto out;
        }
        if (c->state == CS_CLOSED)
            goto out;
    }
out:
    w->st->frames_in += frames;
    return off;
}

static void send_upgrade(struct cb_worker *w, struct cb_conn *c)
{
    char path[1024], req[2048];
    uint8_t nonce[16];
    char key[32];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = rnd32();
        memcpy(nonce + i, &r, 4);
    }
    wsa_base64(nonce, 16, key);
    w->proto->path(w, c, path, sizeof path);
    const struct cb_url *u = &w->o->urls[c->gid % (uint32_t)w->o->nurls];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     path, u->host, u->port, key,
                     w->proto->subprotocol ? "Sec-WebSocket-Protocol: " : "",
                     w->proto->subprotocol ? w->proto->subprotocol : "",
                     w->proto->subprotocol ? "\r\n" : "");
    c->state = CS_UPGRADING;
    set_events(w, c, EPOLLIN);
    conn_write(w, c, (const uint8_t *)req, (size_t)n);
}

static void on_readable(struct cb_worker *w, struct cb_conn *c)
{
    size_t have = c->in_len;
    if (have)
        memcpy(rbuf, c->in, have);
    ssize_t r = read(c->fd, rbuf + have, RBUF_SIZE);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (c->state != CS_READY && fail_reports < 5) {
            fail_reports++;
            fprintf(stderr, "chatbench[%d]: connection %u: closed during the handshake (%s)\n",
                    w->id, c->gid, r == 0 ? "EOF" : strerror(errno));
        }
        conn_lost(w, c);
        return;
    }
    w->now = cb_now();
    w->st->reads++;
    w->st->bytes_in += (uint64_t)r;
    size_t n = have + (size_t)r;
    size_t off = 0;
    if (c->state == CS_UPGRADING) {
        uint8_t *e = memmem(rbuf, n, "\r\n\r\n", 4);
        if (!e) {
            if (n > MAX_UPGRADE_RESPONSE)
                cb_conn_fail(w, c, "upgrade response too large");
            else
                goto keep;
            return;
        }
        if (n < 12 || memcmp(rbuf, "HTTP/1.1 101", 12) != 0) {
            char line[128];
            size_t l = (size_t)(e - rbuf);
            uint8_t *eol = memchr(rbuf, '\r', l);
            if (eol)
                l = (size_t)(eol - rbuf);
            snprintf(line, sizeof line, "upgrade refused: %.*s", (int)(l < 100 ? l : 100),
                     (const char *)rbuf);
            cb_conn_fail(w, c, line);
            return;
        }
        off = (size_t)(e - rbuf) + 4;
        c->state = CS_OPENING;
        w->proto->on_open(w, c);
        if (c->state == CS_CLOSED)
            return;
    }
    off += parse_frames(w, c, rbuf + off, n - off);
    if (c->state == CS_CLOSED)
        return;
keep:
    if (off == n) {
        c->in_len = 0;
        if (c->in_cap > 65536) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        return;
    }
    if (n - off > c->in_cap) {
        free(c->in);
        c->in = xrealloc(NULL, n - off);
        c->in_cap = (uint32_t)(n - off);
    }
    memcpy(c->in, rbuf + off, n - off);
    c->in_len = (uint32_t)(n - off);
}

static void start_connect(struct cb_worker *w, struct cb_conn *c)
{
    const struct cb_opts *o = w->o;
    c->t0 = cb_now();
    if (w->st->t_first_connect == 0)
        w->st->t_first_connect = c->t0;
    c->state = CS_CONNECTING;
    w->inflight++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        cb_conn_fail(w, c, "socket() failed (out of descriptors?)");
        return;
    }
    c->fd = fd;
    int one = 1;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(c->gid % (uint32_t)o->src_addrs));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
        cb_conn_fail(w, c, "bind to the source address failed");
        return;
    }
    const struct cb_url *u = &o->urls[c->gid % (uint32_t)o->nurls];
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)u->port)};
    inet_pton(AF_INET, u->host, &dst.sin_addr);
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        char msg[128];
        snprintf(msg, sizeof msg, "connect: %s", strerror(errno));
        cb_conn_fail(w, c, msg);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)(c - w->conns)};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void on_connected(struct cb_worker *w, struct cb_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        char msg[128];
        snprintf(msg, sizeof msg, "connect: %s", strerror(err));
        cb_conn_fail(w, c, msg);
        return;
    }
    send_upgrade(w, c);
}

static void send_message(struct cb_worker *w, struct cb_conn *c, uint64_t due)
{
    static char body[65536 + 64];
    static uint8_t payload[65536 + 1024];
    size_t size = (size_t)w->o->size;
    c->seq++;
    if (w->o->scenario == SC_MIX)
        cb_mix_pick_room(w, c);
    snprintf(body, sizeof body, "#T%016" PRIx64 "S%08" PRIx32 "Q%08" PRIx32, due, c->sender,
             c->seq);
    memset(body + CB_BODY_MIN, '.', size - CB_BODY_MIN);
    body[size] = '\0';
    size_t n = w->proto->encode(w, c, payload, body, size);
    cb_send_frame(w, c, w->proto->opcode, payload, n);
    w->st->sent_total++;
    if (due >= w->win_start && due < w->win_end) {
        w->st->sent++;
        if (w->o->scenario == SC_MIX)
            w->st->expected += w->world->room_conns[c->room] - 1;
    }
    if (w->o->scenario == SC_MIX)
        c->pending++;
}

/* Send every message due by now; arm the timer for the next one. */
static void send_due(struct cb_worker *w)
{
    if (w->nsenders == 0)
        return;
    uint64_t now = cb_now();
    for (;;) {
        uint64_t due = w->sh->start_ns + w->phase_ns + (uint64_t)((double)w->k * w->period);
        if (due >= w->win_end)
            return;
        if (due > now) {
            /* With a tick, wake at most once per tick: what falls due meanwhile waits for it
             * (stamped with its due time, so the wait counts as latency). */
            uint64_t tick = (uint64_t)(w->o->tick_us * 1e3);
            if (tick && due < now + tick)
                due = now + tick;
            struct itimerspec its = {0};
            its.it_value.tv_sec = (time_t)(due / 1000000000ull);
            its.it_value.tv_nsec = (long)(due % 1000000000ull);
            timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
            return;
        }
        if (now - due > w->st->send_lag_max)
            w->st->send_lag_max = now - due;
        struct cb_conn *c = &w->conns[w->senders[w->k % (uint64_t)w->nsenders]];
        if (c->state == CS_READY)
            send_message(w, c, due);
        else if (w->o->scenario == SC_MIX && c->reconnecting && c->state != CS_CLOSED)
            w->st->skipped_offline += due >= w->win_start; /* churned: back soon */
        else if (due >= w->win_start)
            w->st->errors++; /* a lost sender: its share of the load is missing */
        w->k++;
    }
}

static void poll_once(struct cb_worker *w, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(w->ep, evs, MAX_EVENTS, timeout_ms);
    int timer = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == TIMER_TAG) {
            uint64_t x;
            if (read(w->tfd, &x, sizeof x) < 0) {
                /* spurious: nothing to do */
            }
            timer = 1;
            continue;
        }
        struct cb_conn *c = &w->conns[evs[i].data.u64];
        if (c->state == CS_CLOSED || c->fd < 0)
            continue;
        if (c->state == CS_CONNECTING) {
            on_connected(w, c);
            continue;
        }
        if ((evs[i].events & EPOLLOUT) && c->want_out)
            flush_out(w, c);
        if (c->state != CS_CLOSED && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            on_readable(w, c);
    }
    if (timer)
        send_due(w);
}

/* Storm: wait for phase 1, drop every connection at once, wait for phase 2 (the parent posted
 * the messages they miss), then reconnect them all as fast as possible; each sends `sync` after
 * hello and counts what comes back until `synced`. */
static void storm_run(struct cb_worker *w)
{
    while (w->sh->phase < 1 && !w->sh->stop)
        poll_once(w, 10);
    for (int i = 0; i < w->nconns; i++) {
        struct cb_conn *c = &w->conns[i];
        if (c->fd >= 0)
            release(c);
        c->state = CS_PENDING;
        c->got = 0;
    }
    w->st->dropped = 1;
    while (w->sh->phase < 2 && !w->sh->stop) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    w->storm = 1;
    w->next_connect = 0;
    w->opened = 0;
    w->inflight = 0;
    while (!w->sh->stop) {
        while (w->next_connect < w->nconns && w->inflight < w->o->concurrency)
            start_connect(w, &w->conns[w->next_connect++]);
        poll_once(w, 10);
    }
}

/* mix: reset --churn connections/s (this worker's share), round robin, and reconnect each at
 * once; after hello it syncs from the last seqs it saw. A connection with unacked sends or
 * unsent bytes is skipped (a client would resend those; this one does not). */
static void churn(struct cb_worker *w, uint64_t now)
{
    const struct cb_opts *o = w->o;
    uint64_t start = w->sh->start_ns;
    if (o->churn <= 0 || !start || now < start || now >= w->win_end || w->nconns == 0)
        return;
    double per_worker = o->churn / (w->sh->nworkers > 0 ? w->sh->nworkers : 1);
    uint64_t due = (uint64_t)((double)(now - start) / 1e9 * per_worker);
    while (w->churn_k < due) {
        w->churn_k++;
        struct cb_conn *c = NULL;
        for (int tries = 0; tries < w->nconns && !c; tries++) {
            struct cb_conn *x = &w->conns[w->churn_next];
            w->churn_next = (w->churn_next + 1) % w->nconns;
            if (x->state == CS_READY && x->pending == 0 && x->out_len == x->out_off)
                c = x;
        }
        if (!c) {
            w->st->churn_deferred++;
            continue;
        }
        release(c);
        c->state = CS_PENDING;
        c->reconnecting = 1;
        c->t_drop = now;
        start_connect(w, c);
    }
}

void cb_worker_run(struct cb_worker *w)
{
    const struct cb_opts *o = w->o;
    rbuf = malloc(RBUF_SIZE + MAX_FRAME);
    if (!rbuf)
        abort();
    rng ^= (uint64_t)getpid() * 0x2545F4914F6CDD1Dull ^ cb_now();
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &tev);
    w->win_start = w->win_end = UINT64_MAX;
    if (o->scenario == SC_MIX)
        for (int i = 0; i < w->nconns; i++)
            cb_mix_init_conn(w, &w->conns[i]);

    /* Connect phase: at most o->concurrency handshakes in flight. */
    uint64_t deadline = cb_now() + (uint64_t)(o->connect_timeout * 1e9);
    while (w->opened < w->nconns && cb_now() < deadline && !w->sh->stop) {
        while (w->next_connect < w->nconns && w->inflight < o->concurrency)
            start_connect(w, &w->conns[w->next_connect++]);
        poll_once(w, 10);
    }
    for (int i = 0; i < w->nconns; i++) /* whatever is still not open has timed out */
        if (w->conns[i].state != CS_READY && w->conns[i].state != CS_CLOSED) {
            if (w->conns[i].state == CS_PENDING)
                w->st->conns_failed++;
            cb_conn_fail(w, &w->conns[i], "connect timeout");
        }
    w->st->ready = 1;

    if (o->scenario == SC_STORM) {
        storm_run(w);
        goto finish;
    }
    while (!w->sh->start_ns && !w->sh->stop)
        poll_once(w, 10);
    if (w->sh->start_ns) {
        uint64_t start = w->sh->start_ns;
        w->win_start = start + (uint64_t)(o->warmup * 1e9);
        w->win_end = w->win_start + (uint64_t)(o->duration * 1e9);
        if (w->nsenders > 0) {
            /* --rate is per sender, except in mix where it is the total */
            double rate = o->scenario == SC_MIX ? o->rate / w->sh->total_senders : o->rate;
            w->period = 1e9 / (rate * w->nsenders);
            /* Spread the workers' schedules evenly inside one period. */
            w->phase_ns = (uint64_t)(w->period * w->id / (w->sh->nworkers > 0 ? w->sh->nworkers : 1));
            struct itimerspec its = {0};
            its.it_value.tv_sec = (time_t)((start + w->phase_ns) / 1000000000ull);
            its.it_value.tv_nsec = (long)((start + w->phase_ns) % 1000000000ull);
            timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
    }
    int in_window = 0;
    uint64_t cpu0 = 0;
    while (!w->sh->stop) {
        poll_once(w, 10);
        uint64_t now = cb_now();
        churn(w, now);
        if (!in_window && now >= w->win_start && w->win_start != UINT64_MAX) {
            in_window = 1;
            cpu0 = cpu_ns();
        } else if (in_window == 1 && now >= w->win_end) {
            in_window = 2;
            w->st->cpu_window_ns = cpu_ns() - cpu0;
        }
    }
    if (in_window == 1)
        w->st->cpu_window_ns = cpu_ns() - cpu0;
finish:
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].fd >= 0)
            release(&w->conns[i]);
    w->st->done = 1;
}
