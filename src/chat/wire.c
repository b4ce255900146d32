#include "chat/wire.h"

#include <stdlib.h>
#include <string.h>

#include "chat/events.h"
#include "util/status.h"

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_i64(uint8_t *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return (int64_t)v;
}

/* The JSON text inside a server frame (unmasked: 2, 4 or 10 header bytes). */
static void frame_text(const struct rbuf *f, const char **p, size_t *n)
{
    size_t h = 2;
    if (!f || f->len < 2) {
        *p = "";
        *n = 0;
        return;
    }
    if ((f->data[1] & 0x7f) == 126) h = 4;
    if ((f->data[1] & 0x7f) == 127) h = 10;
    *p = (const char *)f->data + h;
    *n = f->len - h;
}

int64_t wire_channel(const struct fan_ev *ev)
{
    switch (ev->kind) {
    case FAN_LOG:
    case FAN_TYPING:
    case FAN_RECEIPT:
        return ev->room;
    case FAN_PRESENCE:
    case FAN_USER:
    case FAN_SESSION_END:
    case FAN_BLOCK:
        return 0;
    default:
        return -1;
    }
}

void wire_encode(struct jsonw *out, const struct fan_ev *ev, const struct trace_ctx *trace)
{
    int traced = trace && trace->valid && trace->sampled;
    uint8_t h[WIRE_HEADER_LEN] = {WIRE_VERSION, ev->kind, ev->member, traced ? WIRE_F_TRACE : 0};
    const char *text;
    size_t len;
    uint32_t nrooms = ev->kind == FAN_PRESENCE ? ev->nrooms : 0;

    frame_text(ev->frame, &text, &len);
    put_u32(h + 4, nrooms);
    put_i64(h + 8, ev->room);
    put_i64(h + 16, ev->seq);
    put_i64(h + 24, ev->user);
    put_i64(h + 32, ev->member_count);
    put_u32(h + 40, (uint32_t)len);
    put_u32(h + 44, 0);
    jsonw_raw(out, (const char *)h, sizeof(h));
    if (traced) {
        uint8_t t[WIRE_TRACE_LEN];
        memcpy(t, trace->trace_id, 16);
        memcpy(t + 16, trace->span_id, 8);
        t[24] = 1;
        jsonw_raw(out, (const char *)t, sizeof(t));
    }
    for (uint32_t i = 0; i < nrooms; i++) {
        uint8_t r[8];
        put_i64(r, ev->rooms[i]);
        jsonw_raw(out, (const char *)r, sizeof(r));
    }
    jsonw_raw(out, text, len);
}

int wire_decode(const uint8_t *p, size_t n, struct fan_batch *b)
{
    while (n) {
        struct fan_ev ev = {0};
        uint32_t nrooms, tlen;
        uint8_t flags;
        struct jsonw w;

        if (n < WIRE_HEADER_LEN || p[0] != WIRE_VERSION) return CD_E_BAD_REQUEST;
        ev.kind = p[1];
        ev.member = p[2];
        nrooms = get_u32(p + 4);
        ev.room = get_i64(p + 8);
        ev.seq = get_i64(p + 16);
        ev.user = get_i64(p + 24);
        ev.member_count = get_i64(p + 32);
        tlen = get_u32(p + 40);
        flags = p[3];
        if (nrooms > WIRE_MAX_ROOMS || ev.member > FAN_M_LEAVE) return CD_E_BAD_REQUEST;
        if (wire_channel(&ev) < 0 || (nrooms && ev.kind != FAN_PRESENCE)) return CD_E_BAD_REQUEST;
        if (flags & ~WIRE_F_TRACE) return CD_E_BAD_REQUEST;
        p += WIRE_HEADER_LEN;
        n -= WIRE_HEADER_LEN;
        if (flags & WIRE_F_TRACE) {
            if (n < WIRE_TRACE_LEN) return CD_E_BAD_REQUEST;
            if (!b->trace.valid) {
                memcpy(b->trace.trace_id, p, 16);
                memcpy(b->trace.span_id, p + 16, 8);
                b->trace.sampled = p[24] & 1;
                b->trace.valid = 1;
            }
            p += WIRE_TRACE_LEN;
            n -= WIRE_TRACE_LEN;
        }
        if ((uint64_t)nrooms * 8 + tlen > n) return CD_E_BAD_REQUEST;
        if (nrooms) {
            ev.rooms = xmalloc(nrooms * sizeof(int64_t));
            ev.nrooms = nrooms;
            for (uint32_t i = 0; i < nrooms; i++)
                ev.rooms[i] = get_i64(p + 8 * i);
            p += 8 * (size_t)nrooms;
            n -= 8 * (size_t)nrooms;
        }
        if (tlen) {
            jsonw_init(&w, tlen);
            jsonw_raw(&w, (const char *)p, tlen);
            ev.frame = events_frame(&w);
            jsonw_free(&w);
        }
        p += tlen;
        n -= tlen;
        fan_batch_add(b, &ev);
    }
    return CD_OK;
}
