/* hub_sub.h - one connection's stream of one room (internal to src/chat): the state machine that
 * keeps it gap-free and duplicate-free.
 *
 * A subscription knows next_seq, the next seq its connection must get. A live entry equal to
 * next_seq goes out at once; an earlier one is a duplicate and skipped; a later one reveals a
 * gap, filled from storage (hub__read) before live delivery resumes. While the room is replayed
 * (a sync, a gap fill) or held (before the client's first request), live entries are buffered,
 * bounded by pending_max (an overflow drops the buffer and reads storage again), and merged
 * after the replay. The connection's own acks wait for their seq in place of its messages.
 *
 * Nothing here does I/O: the hub around it (hub.c) provides the four hub__ functions below, and
 * a unit test provides its own (tests/unit/chat/test_hub_sub.c). Everything runs on the
 * subscription's I/O thread.
 */
#ifndef CD_HUB_SUB_H
#define CD_HUB_SUB_H

#include <stdint.h>

#include "util/rbuf.h"

enum sub_state {
    SUB_HOLD = 0, /* before the client's first request: live events buffered */
    SUB_LIVE,     /* live events delivered as they come */
    SUB_SYNC,     /* replaying from storage; live events buffered */
    SUB_PAGED,    /* replay hit sync_max: live events dropped until the client syncs again */
};

struct hub_pend {
    int64_t seq;
    struct rbuf *frame;
};

struct hub_room;
struct hub_conn;
struct sync_req;

struct hub_sub {
    struct hub_room *room;
    struct hub_conn *hc;
    int64_t next_seq;  /* next seq this connection must receive for the room */
    uint32_t room_idx; /* position in room->subs */
    uint8_t state;     /* enum sub_state */
    uint8_t fetching;  /* a storage read is in flight */
    uint8_t dead;      /* unsubscribed while fetching: freed when the read returns */
    uint8_t lost;      /* buffered events were dropped (overflow): fetch before going live */
    uint32_t npend, cappend;
    struct hub_pend *pend;
    struct sync_req *req; /* the sync request this replay answers, if any */
    uint32_t replayed;    /* rows replayed for req */
    uint32_t nacks;
    struct hub_pend *acks; /* acks of this connection's own sends, waiting for their place */
    int64_t leaving_seq;   /* the user left at this seq: unsubscribe once it is delivered */
};

struct hub_sub_limits {
    uint32_t pending_max; /* live entries buffered per subscription during a replay */
    uint32_t sync_page;   /* rows per storage read */
    uint32_t sync_max;    /* rows replayed per sync request before has_more */
};

/* Set once before any subscription exists. */
void hub_sub_limits_set(const struct hub_sub_limits *l);

/* One live log entry (seq, frame) for s. */
void hub_sub_deliver(struct hub_sub *s, int64_t seq, struct rbuf *frame);
/* The same, for a connection that may be the entry's origin: reply (not NULL) is the ack its
 * request gets in the message's place. Returns 1 when the ack was taken care of. */
int hub_sub_entry(struct hub_sub *s, int64_t seq, struct rbuf *frame, struct rbuf *reply);
/* Merge the buffered entries after a replay (or a release from SUB_HOLD): go live, or read
 * storage again on a gap or after an overflow. */
void hub_sub_drain(struct hub_sub *s);
/* Start a storage read from next_seq (nothing when one is in flight). */
void hub_sub_fetch(struct hub_sub *s);
/* The storage read hub__read started returned n rows (seqs ascending, their frames) for a read
 * of `limit`, or failed (rc != CD_OK). s is alive (the hub checked). Frames stay the caller's. */
void hub_sub_fetched(struct hub_sub *s, int rc, const int64_t *seqs, struct rbuf *const *frames,
                     uint32_t n, uint32_t limit);
/* The user left at leaving_seq and the stream has passed it: unsubscribe. 1 if s is gone. */
int hub_sub_left(struct hub_sub *s);
/* Drop the live entries buffered. */
void hub_sub_pend_clear(struct hub_sub *s);
/* Drop the held acks; send: send them first (late rather than lost). */
void hub_sub_acks_clear(struct hub_sub *s, int send);
void hub_sub_free(struct hub_sub *s);

/* Provided by the hub (or a test). */
void hub__send(struct hub_conn *hc, struct rbuf *frame);
/* Read up to limit entries of s's room after `after` from storage, then call hub_sub_fetched
 * (later, on this thread). */
void hub__read(struct hub_sub *s, int64_t after, uint32_t limit);
/* s's part of its sync request (s->req, not NULL) is done: the hub clears s->req and answers
 * the request (last_seq = s->next_seq - 1, has_more) once all of its rooms are. */
void hub__synced(struct hub_sub *s, int has_more);
/* Remove s from its room and connection and free it (or mark it dead while a read is out). */
void hub__unsubscribe(struct hub_sub *s);

#endif
