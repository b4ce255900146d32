/* proto.c - one adapter per target: what path to open, what to say after the upgrade, how a
 * message is wrapped for publishing, and where the body sits in what the server delivers.
 *
 *   ceiling, ws  raw broadcast: the body is the whole frame; senders connect to /pub.
 *   socketio     Engine.IO v4 / Socket.IO v5 over WebSocket: "0{...}" open, "40" connect,
 *                42["msg","body"] events, ping "2" -> pong "3". Senders add &pub=1 (not in room).
 *   nats         NATS text protocol over WebSocket: INFO, CONNECT, SUB, PING/PONG, PUB, MSG.
 *                A stream protocol: one frame may hold many ops, an op may span frames.
 *   mqtt         MQTT 3.1.1 over WebSocket binary frames, subprotocol "mqtt", QoS 0.
 *   chatd        chatd's JSON protocol (docs/PROTOCOL.md): hello, send -> ack, message.
 */
#include "cb.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- ceiling / ws ---------------- */

/* Senders publish on /pub; in `durable` they use /ack, where the ceiling acks every frame. */
static void raw_path(struct cb_worker *w, struct cb_conn *c, char *out, size_t cap)
{
    const char *send_path = w->o->scenario == SC_DURABLE ? "/ack" : "/pub";
    snprintf(out, cap, "%s", c->role == ROLE_SEND ? send_path : w->o->path);
}

static void ready_now(struct cb_worker *w, struct cb_conn *c)
{
    cb_conn_ready(w, c);
}

static void record_ack(struct cb_worker *w, const uint8_t *p, size_t n);

static size_t raw_data(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    if (n >= 2 && p[0] == '#' && p[1] == 'T')
        cb_record(w, c, p, n);
    else if (n > 0 && p[0] == '{')
        record_ack(w, p, n); /* the ceiling's /ack */
    return n;
}

static size_t raw_encode(struct cb_worker *w, struct cb_conn *c, uint8_t *out, const char *body,
                         size_t blen)
{
    memcpy(out, body, blen);
    return blen;
}

/* ---------------- socket.io ---------------- */

static void sio_path(struct cb_worker *w, struct cb_conn *c, char *out, size_t cap)
{
    snprintf(out, cap, "/socket.io/?EIO=4&transport=websocket%s",
             c->role == ROLE_SEND ? "&pub=1" : "");
}

static void nothing(struct cb_worker *w, struct cb_conn *c)
{
}

static size_t sio_data(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    if (n == 0)
        return n;
    switch (p[0]) {
    case '0': /* Engine.IO open: connect to the default namespace */
        cb_send_frame(w, c, 1, "40", 2);
        break;
    case '2': /* Engine.IO ping */
        cb_send_frame(w, c, 1, "3", 1);
        break;
    case '4':
        if (n >= 2 && p[1] == '2') {
            if (!cb_record_scan(w, c, p, n))
                w->st->errors++;
        } else if (n >= 2 && p[1] == '0') {
            cb_conn_ready(w, c);
        } else if (n >= 2 && (p[1] == '4' || p[1] == '1')) {
            cb_conn_fail(w, c, "socket.io connect refused or disconnected");
        }
        break;
    case '1':
        cb_conn_fail(w, c, "engine.io close");
        break;
    default:
        break;
    }
    return n;
}

static size_t sio_encode(struct cb_worker *w, struct cb_conn *c, uint8_t *out, const char *body,
                         size_t blen)
{
    memcpy(out, "42[\"msg\",\"", 10);
    memcpy(out + 10, body, blen);
    memcpy(out + 10 + blen, "\"]", 2);
    return blen + 12;
}

/* ---------------- NATS ---------------- */

static void slash_path(struct cb_worker *w, struct cb_conn *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", w->o->path);
}

/* Parse complete NATS ops; returns the bytes consumed (an incomplete op is left). */
static size_t nats_data(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        uint8_t *line = p + off;
        uint8_t *nl = memchr(line, '\n', n - off);
        if (!nl)
            break;
        size_t llen = (size_t)(nl - line) + 1;
        if (llen >= 4 && memcmp(line, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n */
            uint8_t *q = nl - 1; /* at '\r' */
            uint8_t *d = q;
            while (d > line && d[-1] >= '0' && d[-1] <= '9')
                d--;
            size_t plen = 0;
            for (uint8_t *x = d; x < q; x++)
                plen = plen * 10 + (size_t)(*x - '0');
            if (n - off < llen + plen + 2)
                break;
            uint8_t *payload = line + llen;
            if (plen >= 2 && payload[0] == '#' && payload[1] == 'T')
                cb_record(w, c, payload, plen);
            off += llen + plen + 2;
            continue;
        }
        if (llen >= 4 && memcmp(line, "PING", 4) == 0) {
            cb_send_frame(w, c, 2, "PONG\r\n", 6);
        } else if (llen >= 4 && memcmp(line, "PONG", 4) == 0) {
            if (c->state != CS_READY)
                cb_conn_ready(w, c);
        } else if (llen >= 5 && memcmp(line, "INFO ", 5) == 0) {
            if (c->pstate == 0) {
                char buf[256];
                int k = snprintf(buf, sizeof buf,
                                 "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,"
                                 "\"name\":\"chatbench\",\"lang\":\"c\",\"version\":\"1\"}\r\n"
                                 "%sPING\r\n",
                                 c->role == ROLE_SEND ? "" : "SUB room 1\r\n");
                cb_send_frame(w, c, 2, buf, (size_t)k);
                c->pstate = 1;
            }
        } else if (llen >= 4 && memcmp(line, "-ERR", 4) == 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "nats: %.*s", (int)(llen > 120 ? 120 : llen - 2),
                     (const char *)line);
            cb_conn_fail(w, c, msg);
            return n;
        }
        off += llen;
    }
    return off;
}

static size_t nats_encode(struct cb_worker *w, struct cb_conn *c, uint8_t *out, const char *body,
                          size_t blen)
{
    int h = sprintf((char *)out, "PUB room %zu\r\n", blen);
    memcpy(out + h, body, blen);
    memcpy(out + h + blen, "\r\n", 2);
    return (size_t)h + blen + 2;
}

/* ---------------- MQTT 3.1.1 ---------------- */

static size_t mqtt_varint(uint8_t *out, size_t v)
{
    size_t i = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[i++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return i;
}

static void mqtt_open(struct cb_worker *w, struct cb_conn *c)
{
    uint8_t pkt[64];
    char cid[24];
    int cl = snprintf(cid, sizeof cid, "cb%d-%u", w->id, c->gid);
    size_t vlen = 10 + 2 + (size_t)cl;
    size_t i = 0;
    pkt[i++] = 0x10;
    i += mqtt_varint(pkt + i, vlen);
    static const uint8_t vh[10] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0}; /* clean, no keepalive */
    memcpy(pkt + i, vh, 10);
    i += 10;
    pkt[i++] = 0;
    pkt[i++] = (uint8_t)cl;
    memcpy(pkt + i, cid, (size_t)cl);
    i += (size_t)cl;
    cb_send_frame(w, c, 2, pkt, i);
}

static size_t mqtt_data(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2) {
        uint8_t type = p[off];
        size_t rl = 0, shift = 0, i = off + 1;
        for (;;) {
            if (i >= n)
                return off;
            rl |= (size_t)(p[i] & 0x7F) << shift;
            shift += 7;
            if (!(p[i++] & 0x80))
                break;
            if (shift > 21) {
                cb_conn_fail(w, c, "mqtt: bad remaining length");
                return n;
            }
        }
        if (n - i < rl)
            return off;
        uint8_t *body = p + i;
        switch (type >> 4) {
        case 2: /* CONNACK */
            if (rl < 2 || body[1] != 0) {
                cb_conn_fail(w, c, "mqtt: connection refused");
                return n;
            }
            if (c->role == ROLE_SEND) {
                cb_conn_ready(w, c);
            } else {
                static const uint8_t sub[] = {0x82, 9, 0, 1, 0, 4, 'r', 'o', 'o', 'm', 0};
                cb_send_frame(w, c, 2, sub, sizeof sub);
            }
            break;
        case 9: /* SUBACK */
            if (rl >= 3 && body[2] == 0x80) {
                cb_conn_fail(w, c, "mqtt: subscription refused");
                return n;
            }
            cb_conn_ready(w, c);
            break;
        case 3: { /* PUBLISH (QoS 0: no packet id) */
            if (rl >= 2) {
                size_t tl = (size_t)body[0] << 8 | body[1];
                size_t hdr = 2 + tl + (((type >> 1) & 3) ? 2 : 0);
                if (hdr <= rl && rl - hdr >= 2 && body[hdr] == '#' && body[hdr + 1] == 'T')
                    cb_record(w, c, body + hdr, rl - hdr);
            }
            break;
        }
        default: /* PINGRESP and anything else: ignored */
            break;
        }
        off = i + rl;
    }
    return off;
}

static size_t mqtt_encode(struct cb_worker *w, struct cb_conn *c, uint8_t *out, const char *body,
                          size_t blen)
{
    size_t i = 0;
    out[i++] = 0x30;
    i += mqtt_varint(out + i, 2 + 4 + blen);
    out[i++] = 0;
    out[i++] = 4;
    memcpy(out + i, "room", 4);
    i += 4;
    memcpy(out + i, body, blen);
    return i + blen;
}

/* ---------------- chatd ---------------- */

static void chatd_path(struct cb_worker *w, struct cb_conn *c, char *out, size_t cap)
{
    const struct cb_user *u = &w->world->users[c->user];
    snprintf(out, cap, "/v1/ws?access_token=%s", u->token);
}

/* Is this JSON object's "type" equal to t? Checks the usual first position, then searches. */
static int json_type_is(const uint8_t *p, size_t n, const char *t)
{
    size_t tl = strlen(t);
    if (n > 9 + tl && memcmp(p, "{\"type\":\"", 9) == 0)
        return memcmp(p + 9, t, tl) == 0 && p[9 + tl] == '"';
    const uint8_t *k = memmem(p, n, "\"type\":\"", 8);
    if (!k)
        return 0;
    k += 8;
    return (size_t)(p + n - k) > tl && memcmp(k, t, tl) == 0 && k[tl] == '"';
}

/* An ack (chatd's, or the ceiling's /ack) carries the send time in its id: "T<16 hex>". */
static void record_ack(struct cb_worker *w, const uint8_t *p, size_t n)
{
    const uint8_t *k = memmem(p, n, "\"id\":\"T", 7);
    if (!k || (size_t)(p + n - k) < 7 + 16) return;
    uint64_t ts = cb_hex(k + 7, 16);
    if (ts == UINT64_MAX) return;
    w->st->acks++;
    uint64_t now = cb_now();
    if (ts >= w->win_start && ts < w->win_end) {
        w->st->ack_window++;
        w->st->ack_in_time += now < w->win_end;
        cb_hist_add(&w->st->ack, now > ts ? now - ts : 0);
    }
}

/* mix: every log entry checked for order; acks carry the sender's seq; sync from the last seqs. */
static size_t mix_data(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    if (json_type_is(p, n, "message") || json_type_is(p, n, "member") ||
        json_type_is(p, n, "room")) {
        cb_mix_on_message(w, c, p, n);
    } else if (json_type_is(p, n, "ack")) {
        record_ack(w, p, n);
        cb_mix_on_ack(w, c, p, n);
    } else if (json_type_is(p, n, "hello")) {
        cb_mix_send_sync(w, c);
    } else if (json_type_is(p, n, "synced")) {
        if (c->state != CS_READY)
            cb_conn_ready(w, c);
        cb_mix_on_synced(w, c, p, n);
    } else if (json_type_is(p, n, "error")) {
        static int shown;
        w->st->errors++;
        if (memmem(p, n, "\"id\":\"T", 7) && c->pending)
            c->pending--; /* a refused send */
        if (shown++ < 5)
            fprintf(stderr, "chatbench[%d]: chatd error: %.*s\n", w->id, (int)(n > 200 ? 200 : n),
                    (const char *)p);
    }
    return n;
}

static size_t chatd_data(struct cb_worker *w, struct cb_conn *c, uint8_t *p, size_t n)
{
    if (w->o->scenario == SC_MIX)
        return mix_data(w, c, p, n);
    if (json_type_is(p, n, "message")) {
        if (w->storm) {
            /* Storm: exactly seqs last_seq+1 .. last_seq+missed, in order, once each. */
            const uint8_t *k = memmem(p, n, "\"seq\":", 6);
            if (!k) {
                w->st->errors++;
                return n;
            }
            unsigned long long seq = strtoull((const char *)k + 6, NULL, 10);
            unsigned long long want = w->world->rooms[c->room].last_seq + c->got + 1;
            if (seq == want)
                c->got++;
            else if (seq < want)
                w->st->dups++;
            else {
                w->st->errors++; /* a gap: something was missed */
                c->got = (uint32_t)(seq - w->world->rooms[c->room].last_seq);
            }
            return n;
        }
        if (c->role == ROLE_RECV)
            cb_record_scan(w, c, p, n);
        else
            w->st->received_total++;
        return n;
    }
    if (json_type_is(p, n, "ack")) {
        record_ack(w, p, n);
        return n;
    }
    if (json_type_is(p, n, "hello")) {
        /* chatd holds live events until the first request: `sync` starts delivery. */
        if (w->storm) {
            cb_chatd_send_sync(w, c);
        } else {
            static const char sync_all[] = "{\"type\":\"sync\",\"id\":\"start\",\"rooms\":{}}";
            cb_send_frame(w, c, 1, sync_all, sizeof sync_all - 1);
        }
        return n;
    }
    if (json_type_is(p, n, "synced")) {
        if (c->state != CS_READY)
            cb_conn_ready(w, c);
        if (w->storm) {
            uint64_t now = cb_now();
            w->st->synced++;
            if (c->got == (uint32_t)w->o->missed)
                w->st->storm_ok++;
            cb_hist_add(&w->st->sync, now > w->sh->start_ns ? now - w->sh->start_ns : 0);
        }
        return n;
    }
    if (json_type_is(p, n, "error")) {
        static int shown;
        w->st->errors++;
        if (shown++ < 5)
            fprintf(stderr, "chatbench[%d]: chatd error: %.*s\n", w->id, (int)(n > 200 ? 200 : n),
                    (const char *)p);
    }
    return n;
}

static size_t chatd_encode(struct cb_worker *w, struct cb_conn *c, uint8_t *out, const char *body,
                           size_t blen)
{
    const struct cb_room *r = &w->world->rooms[c->room];
    /* The request id carries the send time, so the ack needs no lookup table. */
    int h = sprintf((char *)out,
                    "{\"type\":\"send\",\"id\":\"T%.16s\",\"room\":\"%s\",\"client_msg_id\":\"%u-%u\","
                    "\"body\":\"",
                    body + 2, r->id, c->sender, c->seq);
    memcpy(out + h, body, blen);
    memcpy(out + h + blen, "\"}", 2);
    return (size_t)h + blen + 2;
}

/* ---------------- table ---------------- */

static const struct cb_proto protos[] = {
    [T_CEILING] = {"ceiling", 1, NULL, 0, raw_path, ready_now, raw_data, raw_encode},
    [T_WS] = {"ws", 1, NULL, 0, raw_path, ready_now, raw_data, raw_encode},
    [T_SOCKETIO] = {"socketio", 1, NULL, 0, sio_path, nothing, sio_data, sio_encode},
    [T_NATS] = {"nats", 2, NULL, 1, slash_path, nothing, nats_data, nats_encode},
    [T_MQTT] = {"mqtt", 2, "mqtt", 1, slash_path, mqtt_open, mqtt_data, mqtt_encode},
    [T_CHATD] = {"chatd", 1, NULL, 0, chatd_path, nothing, chatd_data, chatd_encode},
};

const struct cb_proto *cb_proto_for(enum cb_target t)
{
    return &protos[t];
}

const char *cb_target_name(enum cb_target t)
{
    return protos[t].name;
}
