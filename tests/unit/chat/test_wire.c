/* The bus payload: records survive a round trip with their routing fields and client text, a
 * frame is encoded on arrival, local-only kinds do not cross, and malformed input is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat/events.h"
#include "chat/wire.h"
#include "util/status.h"

static struct rbuf *frame_of(const char *text)
{
    struct jsonw w;
    struct rbuf *f;
    jsonw_init(&w, 16);
    jsonw_lit(&w, text);
    f = events_frame(&w);
    jsonw_free(&w);
    return f;
}

static void round_trip(void **state)
{
    static const char big[] = "{\"type\":\"message\",\"body\":\"";
    char text[400];
    struct jsonw w;
    struct fan_batch *b = fan_batch_new();
    int64_t rooms[3] = {7, 8, 9};
    struct fan_ev log = {
        .kind = FAN_LOG, .member = FAN_M_JOIN, .room = 7, .seq = 41, .user = 3, .member_count = 12};
    struct fan_ev pres = {.kind = FAN_PRESENCE, .user = 3, .rooms = rooms, .nrooms = 3};
    (void)state;
    snprintf(text, sizeof(text), "%s%0300d\"}", big, 0); /* a 2-byte-length frame */
    log.frame = frame_of(text);
    pres.frame = frame_of("{\"type\":\"presence\"}");
    assert_int_equal(wire_channel(&log), 7);
    assert_int_equal(wire_channel(&pres), 0);
    jsonw_init(&w, 16);
    wire_encode(&w, &log, NULL);
    wire_encode(&w, &pres, NULL);
    assert_int_equal(wire_decode((const uint8_t *)jsonw_text(&w), jsonw_text_len(&w), b), CD_OK);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->ev[0].kind, FAN_LOG);
    assert_int_equal(b->ev[0].member, FAN_M_JOIN);
    assert_int_equal(b->ev[0].room, 7);
    assert_int_equal(b->ev[0].seq, 41);
    assert_int_equal(b->ev[0].user, 3);
    assert_int_equal(b->ev[0].member_count, 12);
    assert_null(b->ev[0].origin);
    assert_int_equal(b->ev[0].frame->len, log.frame->len); /* the same frame, encoded here */
    assert_memory_equal(b->ev[0].frame->data, log.frame->data, log.frame->len);
    assert_int_equal(b->ev[1].nrooms, 3);
    assert_int_equal(b->ev[1].rooms[2], 9);
    assert_memory_equal(b->ev[1].frame->data, pres.frame->data, pres.frame->len);
    fan_batch_unref(b);
    jsonw_free(&w);
    rbuf_unref(log.frame);
    rbuf_unref(pres.frame);
}

/* A block crosses on the control channel with no frame: who, whom, on or off. */
static void block_crosses_without_frame(void **state)
{
    struct jsonw w;
    struct fan_batch *b = fan_batch_new();
    struct fan_ev blk = {.kind = FAN_BLOCK, .user = 11, .seq = 22, .member = 1};
    (void)state;
    assert_int_equal(wire_channel(&blk), 0);
    jsonw_init(&w, 16);
    wire_encode(&w, &blk, NULL);
    assert_int_equal(wire_decode((const uint8_t *)jsonw_text(&w), jsonw_text_len(&w), b), CD_OK);
    assert_int_equal(b->n, 1);
    assert_int_equal(b->ev[0].kind, FAN_BLOCK);
    assert_int_equal(b->ev[0].user, 11);
    assert_int_equal(b->ev[0].seq, 22);
    assert_int_equal(b->ev[0].member, 1);
    fan_batch_unref(b);
    jsonw_free(&w);
}

static void local_kinds_stay(void **state)
{
    struct fan_ev reply = {.kind = FAN_REPLY}, loaded = {.kind = FAN_LOADED},
                  head = {.kind = FAN_HEAD, .room = 3};
    (void)state;
    assert_true(wire_channel(&reply) < 0);
    assert_true(wire_channel(&loaded) < 0);
    assert_true(wire_channel(&head) < 0);
}

static void malformed_is_refused(void **state)
{
    struct jsonw w;
    struct fan_ev ev = {.kind = FAN_TYPING, .room = 2, .user = 1};
    struct fan_batch *b;
    size_t n;
    uint8_t *copy;
    (void)state;
    ev.frame = frame_of("{\"type\":\"typing\"}");
    jsonw_init(&w, 16);
    wire_encode(&w, &ev, NULL);
    n = jsonw_text_len(&w);
    copy = malloc(n);
    for (size_t cut = 0; cut < n; cut++) { /* every truncation */
        b = fan_batch_new();
        memcpy(copy, jsonw_text(&w), n);
        assert_int_equal(wire_decode(copy, cut, b) == CD_OK, cut == 0);
        fan_batch_unref(b);
    }
    memcpy(copy, jsonw_text(&w), n);
    copy[1] = FAN_LOADED; /* a local kind from the wire */
    b = fan_batch_new();
    assert_int_equal(wire_decode(copy, n, b), CD_E_BAD_REQUEST);
    assert_int_equal(b->n, 0);
    fan_batch_unref(b);
    memcpy(copy, jsonw_text(&w), n);
    copy[40] = 0xff; /* text longer than the message */
    b = fan_batch_new();
    assert_int_equal(wire_decode(copy, n, b), CD_E_BAD_REQUEST);
    fan_batch_unref(b);
    free(copy);
    jsonw_free(&w);
    rbuf_unref(ev.frame);
}

/* A sampled trace context rides in the record (25 bytes), an unsampled one does not; a record
 * with an unknown flag is refused. */
static void trace_context_crosses(void **state)
{
    struct trace_ctx tc = {.valid = 1, .sampled = 1}, off = {.valid = 1, .sampled = 0};
    struct fan_ev ev = {.kind = FAN_LOG, .room = 5, .seq = 1};
    struct jsonw w, w0;
    struct fan_batch *b = fan_batch_new();
    uint8_t *copy;
    (void)state;
    for (int i = 0; i < 16; i++)
        tc.trace_id[i] = (uint8_t)(i + 1);
    for (int i = 0; i < 8; i++)
        tc.span_id[i] = (uint8_t)(0xa0 + i);
    ev.frame = frame_of("{\"type\":\"message\"}");
    jsonw_init(&w, 16);
    jsonw_init(&w0, 16);
    wire_encode(&w, &ev, &tc);
    wire_encode(&w, &ev, &tc);
    wire_encode(&w0, &ev, &off);
    assert_int_equal(jsonw_text_len(&w0) + WIRE_TRACE_LEN, jsonw_text_len(&w) / 2);
    assert_int_equal(wire_decode((const uint8_t *)jsonw_text(&w), jsonw_text_len(&w), b), CD_OK);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->trace.valid, 1);
    assert_int_equal(b->trace.sampled, 1);
    assert_memory_equal(b->trace.trace_id, tc.trace_id, 16);
    assert_memory_equal(b->trace.span_id, tc.span_id, 8);
    assert_int_equal(b->ev[1].seq, 1);
    fan_batch_unref(b);
    b = fan_batch_new();
    assert_int_equal(wire_decode((const uint8_t *)jsonw_text(&w0), jsonw_text_len(&w0), b), CD_OK);
    assert_int_equal(b->trace.valid, 0);
    fan_batch_unref(b);
    /* Cut inside the trace context; an unknown flag. */
    b = fan_batch_new();
    assert_int_equal(wire_decode((const uint8_t *)jsonw_text(&w), WIRE_HEADER_LEN + 10, b),
                     CD_E_BAD_REQUEST);
    fan_batch_unref(b);
    copy = malloc(jsonw_text_len(&w0));
    memcpy(copy, jsonw_text(&w0), jsonw_text_len(&w0));
    copy[3] = 2;
    b = fan_batch_new();
    assert_int_equal(wire_decode(copy, jsonw_text_len(&w0), b), CD_E_BAD_REQUEST);
    fan_batch_unref(b);
    free(copy);
    jsonw_free(&w);
    jsonw_free(&w0);
    rbuf_unref(ev.frame);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(block_crosses_without_frame),
        cmocka_unit_test(local_kinds_stay),
        cmocka_unit_test(malformed_is_refused),
        cmocka_unit_test(trace_context_crosses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
