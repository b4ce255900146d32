/* One connection's stream of one room (src/chat/hub_sub.c) without the hub around it: this file
 * provides the hub__ functions (what was sent, which storage reads were asked for, which sync
 * answers, which unsubscribes), so every case asserts the exact stream the connection gets.
 * hub_sub.o is the only object taken from chatd_chat: the hub__ symbols it needs are defined
 * here, so hub.o is never pulled from the archive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat/hub_sub.h"
#include "util/status.h"

#define ACK_BASE 1000 /* a held ack of seq s is sent as frame "1000 + s" */

static struct {
    int64_t sent[64];
    int nsent;
    int64_t read_after[8];
    uint32_t read_limit[8];
    int nreads;
    int synced, has_more;
    int unsubscribed;
} rec;

static struct rbuf *frame(int64_t v)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%lld", (long long)v);
    return rbuf_copy(text, (size_t)n);
}

void hub__send(struct hub_conn *hc, struct rbuf *f)
{
    char text[32];
    (void)hc;
    assert_true(f->len < sizeof(text));
    memcpy(text, f->data, f->len);
    text[f->len] = 0;
    assert_true(rec.nsent < 64);
    rec.sent[rec.nsent++] = strtoll(text, NULL, 10);
}

void hub__read(struct hub_sub *s, int64_t after, uint32_t limit)
{
    (void)s;
    assert_true(rec.nreads < 8);
    rec.read_after[rec.nreads] = after;
    rec.read_limit[rec.nreads] = limit;
    rec.nreads++;
}

void hub__synced(struct hub_sub *s, int has_more)
{
    assert_non_null(s->req);
    s->req = NULL;
    rec.synced++;
    rec.has_more = has_more;
}

void hub__unsubscribe(struct hub_sub *s)
{
    (void)s;
    rec.unsubscribed++;
}

static struct hub_sub *sub_new(int state, int64_t next_seq)
{
    struct hub_sub *s = calloc(1, sizeof(*s));
    s->state = (uint8_t)state;
    s->next_seq = next_seq;
    return s;
}

static void deliver(struct hub_sub *s, int64_t seq)
{
    struct rbuf *f = frame(seq);
    hub_sub_deliver(s, seq, f);
    rbuf_unref(f);
}

/* Storage returns seqs from..to (inclusive) for the last read. */
static void fetched(struct hub_sub *s, int64_t from, int64_t to, uint32_t limit)
{
    int64_t seqs[64];
    struct rbuf *frames[64];
    uint32_t n = 0;
    for (int64_t q = from; q <= to; q++, n++) {
        seqs[n] = q;
        frames[n] = frame(q);
    }
    hub_sub_fetched(s, CD_OK, seqs, frames, n, limit);
    for (uint32_t i = 0; i < n; i++)
        rbuf_unref(frames[i]);
}

static void assert_sent(const int64_t *want, int n)
{
    assert_int_equal(rec.nsent, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(rec.sent[i], want[i]);
}

static int setup(void **state)
{
    (void)state;
    memset(&rec, 0, sizeof(rec));
    hub_sub_limits_set(&(struct hub_sub_limits){.pending_max = 4, .sync_page = 8, .sync_max = 20});
    return 0;
}

static void live_in_order_skips_duplicates(void **state)
{
    struct hub_sub *s = sub_new(SUB_LIVE, 5);
    (void)state;
    deliver(s, 5);
    deliver(s, 6);
    deliver(s, 6);
    deliver(s, 4);
    assert_sent((int64_t[]){5, 6}, 2);
    assert_int_equal(s->next_seq, 7);
    assert_int_equal(rec.nreads, 0);
    hub_sub_free(s);
}

static void gap_is_filled_from_storage_then_buffer_merged(void **state)
{
    struct hub_sub *s = sub_new(SUB_LIVE, 5);
    (void)state;
    deliver(s, 7); /* 5 and 6 are missing */
    assert_int_equal(rec.nsent, 0);
    assert_int_equal(rec.nreads, 1);
    assert_int_equal(rec.read_after[0], 4);
    assert_int_equal(s->state, SUB_SYNC);
    deliver(s, 8); /* buffered behind the read */
    assert_int_equal(rec.nreads, 1);
    fetched(s, 5, 7, 8); /* a short read: storage has no more */
    assert_sent((int64_t[]){5, 6, 7, 8}, 4);
    assert_int_equal(s->state, SUB_LIVE);
    assert_int_equal(s->npend, 0);
    deliver(s, 9);
    assert_int_equal(rec.sent[4], 9);
    hub_sub_free(s);
}

static void held_until_released(void **state)
{
    struct hub_sub *s = sub_new(SUB_HOLD, 1);
    (void)state;
    deliver(s, 1);
    deliver(s, 2);
    assert_int_equal(rec.nsent, 0);
    hub_sub_drain(s); /* the client's first request */
    assert_sent((int64_t[]){1, 2}, 2);
    assert_int_equal(s->state, SUB_LIVE);
    hub_sub_free(s);
}

static void buffer_overflow_reads_storage_again(void **state)
{
    struct hub_sub *s = sub_new(SUB_LIVE, 1);
    (void)state;
    deliver(s, 3); /* gap: read after 0 */
    for (int64_t q = 4; q <= 8; q++)
        deliver(s, q); /* pending_max 4: 7 overflows the buffer, 3..6 are dropped (lost) */
    assert_int_equal(s->lost, 1);
    fetched(s, 1, 2, 8);
    assert_sent((int64_t[]){1, 2}, 2);
    assert_int_equal(rec.nreads, 2); /* 3..6 were dropped: storage again from 2 */
    assert_int_equal(rec.read_after[1], 2);
    fetched(s, 3, 8, 8);
    assert_sent((int64_t[]){1, 2, 3, 4, 5, 6, 7, 8}, 8);
    assert_int_equal(s->state, SUB_LIVE);
    hub_sub_free(s);
}

static void own_ack_takes_the_message_place(void **state)
{
    struct hub_sub *s = sub_new(SUB_HOLD, 1);
    struct rbuf *ack1 = frame(ACK_BASE + 1), *ack4 = frame(ACK_BASE + 4),
                *ack2 = frame(ACK_BASE + 2);
    struct rbuf *f1 = frame(1), *f4 = frame(4), *f2 = frame(2), *f5 = frame(5);
    (void)state;
    assert_int_equal(hub_sub_entry(s, 1, f1, ack1), 1); /* held: waits for its place */
    deliver(s, 2);
    assert_int_equal(rec.nsent, 0);
    hub_sub_drain(s);
    assert_sent((int64_t[]){ACK_BASE + 1, 2}, 2);
    deliver(s, 3);
    assert_int_equal(hub_sub_entry(s, 4, f4, ack4), 1); /* live and in place: the ack at once */
    assert_int_equal(hub_sub_entry(s, 2, f2, ack2), 1); /* already passed: the ack still goes */
    assert_sent((int64_t[]){ACK_BASE + 1, 2, 3, ACK_BASE + 4, ACK_BASE + 2}, 5);
    assert_int_equal(s->next_seq, 5);
    assert_int_equal(hub_sub_entry(s, 5, f5, NULL), 0); /* not the origin */
    assert_int_equal(rec.sent[5], 5);
    rbuf_unref(ack1);
    rbuf_unref(ack4);
    rbuf_unref(ack2);
    rbuf_unref(f1);
    rbuf_unref(f4);
    rbuf_unref(f2);
    rbuf_unref(f5);
    hub_sub_free(s);
}

static void sync_pages_at_sync_max(void **state)
{
    struct hub_sub *s = sub_new(SUB_SYNC, 1);
    (void)state;
    hub_sub_limits_set(&(struct hub_sub_limits){.pending_max = 4, .sync_page = 2, .sync_max = 3});
    s->req = (struct sync_req *)s; /* any non-NULL request */
    hub_sub_fetch(s);
    assert_int_equal(rec.read_limit[0], 2);
    fetched(s, 1, 2, 2); /* a full page: read on, at most sync_max - replayed */
    assert_int_equal(rec.nreads, 2);
    assert_int_equal(rec.read_limit[1], 1);
    fetched(s, 3, 3, 1);
    assert_sent((int64_t[]){1, 2, 3}, 3);
    assert_int_equal(s->state, SUB_PAGED);
    assert_int_equal(rec.synced, 1);
    assert_int_equal(rec.has_more, 1);
    deliver(s, 9); /* paged: live entries wait for the next sync */
    assert_int_equal(rec.nsent, 3);
    assert_int_equal(s->npend, 0);
    hub_sub_free(s);
}

static void sync_answered_when_caught_up(void **state)
{
    struct hub_sub *s = sub_new(SUB_SYNC, 1);
    (void)state;
    s->req = (struct sync_req *)s;
    hub_sub_fetch(s);
    fetched(s, 1, 3, 8);
    assert_int_equal(rec.synced, 1);
    assert_int_equal(rec.has_more, 0);
    assert_int_equal(s->state, SUB_LIVE);
    hub_sub_free(s);
}

static void failed_read_pages(void **state)
{
    struct hub_sub *s = sub_new(SUB_LIVE, 1);
    (void)state;
    s->req = (struct sync_req *)s;
    deliver(s, 2);
    hub_sub_fetched(s, CD_E_IO, NULL, NULL, 0, 8);
    assert_int_equal(s->state, SUB_PAGED);
    assert_int_equal(rec.synced, 1);
    assert_int_equal(rec.has_more, 1);
    assert_int_equal(s->fetching, 0);
    hub_sub_free(s);
}

static void nothing_after_leaving(void **state)
{
    struct hub_sub *s = sub_new(SUB_LIVE, 1);
    (void)state;
    s->leaving_seq = 2;
    deliver(s, 1);
    assert_int_equal(hub_sub_left(s), 0);
    deliver(s, 3); /* after the leave: never sent */
    deliver(s, 2);
    assert_int_equal(hub_sub_left(s), 1);
    assert_sent((int64_t[]){1, 2}, 2);
    assert_int_equal(rec.unsubscribed, 1);
    hub_sub_free(s);
}

static void replay_stops_at_the_leave(void **state)
{
    struct hub_sub *s = sub_new(SUB_LIVE, 1);
    (void)state;
    s->leaving_seq = 2;
    deliver(s, 3); /* a gap (and past the leave: dropped) */
    assert_int_equal(rec.nreads, 0);
    s->state = SUB_SYNC;
    hub_sub_fetch(s);
    fetched(s, 1, 4, 8);
    assert_sent((int64_t[]){1, 2}, 2);
    assert_int_equal(rec.unsubscribed, 1);
    hub_sub_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(live_in_order_skips_duplicates, setup),
        cmocka_unit_test_setup(gap_is_filled_from_storage_then_buffer_merged, setup),
        cmocka_unit_test_setup(held_until_released, setup),
        cmocka_unit_test_setup(buffer_overflow_reads_storage_again, setup),
        cmocka_unit_test_setup(own_ack_takes_the_message_place, setup),
        cmocka_unit_test_setup(sync_pages_at_sync_max, setup),
        cmocka_unit_test_setup(sync_answered_when_caught_up, setup),
        cmocka_unit_test_setup(failed_read_pages, setup),
        cmocka_unit_test_setup(nothing_after_leaving, setup),
        cmocka_unit_test_setup(replay_stops_at_the_leave, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
