/* hub_sub.c - see hub_sub.h. */
#include "chat/hub_sub.h"

#include <stdlib.h>
#include <string.h>

#include "util/status.h"

static struct hub_sub_limits lim = {.pending_max = 1024, .sync_page = 256, .sync_max = 1000};

void hub_sub_limits_set(const struct hub_sub_limits *l)
{
    lim = *l;
}

static void synced(struct hub_sub *s, int has_more)
{
    if (s->req) hub__synced(s, has_more);
}

void hub_sub_pend_clear(struct hub_sub *s)
{
    for (uint32_t i = 0; i < s->npend; i++)
        rbuf_unref(s->pend[i].frame);
    free(s->pend);
    s->pend = NULL;
    s->npend = s->cappend = 0;
}

static void pend_push(struct hub_sub *s, int64_t seq, struct rbuf *f)
{
    if (s->npend >= lim.pending_max) {
        hub_sub_pend_clear(s);
        s->lost = 1;
    }
    if (s->npend == s->cappend) {
        s->cappend = s->cappend ? s->cappend * 2 : 8;
        s->pend = xrealloc(s->pend, s->cappend * sizeof(*s->pend));
    }
    s->pend[s->npend].seq = seq;
    s->pend[s->npend].frame = rbuf_ref(f);
    s->npend++;
}

void hub_sub_acks_clear(struct hub_sub *s, int send)
{
    for (uint32_t i = 0; i < s->nacks; i++) {
        if (send) hub__send(s->hc, s->acks[i].frame); /* late rather than lost */
        rbuf_unref(s->acks[i].frame);
    }
    free(s->acks);
    s->acks = NULL;
    s->nacks = 0;
}

void hub_sub_free(struct hub_sub *s)
{
    hub_sub_pend_clear(s);
    hub_sub_acks_clear(s, 0);
    free(s);
}

static void ack_hold(struct hub_sub *s, int64_t seq, struct rbuf *ack)
{
    s->acks = xrealloc(s->acks, (s->nacks + 1) * sizeof(*s->acks));
    s->acks[s->nacks].seq = seq;
    s->acks[s->nacks].frame = rbuf_ref(ack);
    s->nacks++;
}

/* Send entry seq (== next_seq): the connection's own ack in place of its own message. */
static void emit(struct hub_sub *s, int64_t seq, struct rbuf *f)
{
    for (uint32_t i = 0; i < s->nacks; i++)
        if (s->acks[i].seq == seq) {
            struct rbuf *ack = s->acks[i].frame;
            hub__send(s->hc, ack);
            rbuf_unref(ack);
            s->acks[i] = s->acks[--s->nacks];
            if (!s->nacks) hub_sub_acks_clear(s, 0);
            s->next_seq = seq + 1;
            return;
        }
    hub__send(s->hc, f);
    s->next_seq = seq + 1;
}

int hub_sub_left(struct hub_sub *s)
{
    if (!s->leaving_seq || s->next_seq <= s->leaving_seq) return 0;
    hub__unsubscribe(s);
    return 1;
}

void hub_sub_fetched(struct hub_sub *s, int rc, const int64_t *seqs, struct rbuf *const *frames,
                     uint32_t n, uint32_t limit)
{
    s->fetching = 0;
    if (rc != CD_OK) {
        s->state = SUB_PAGED; /* the client will retry with sync */
        synced(s, 1);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        if (seqs[i] == s->next_seq && (!s->leaving_seq || seqs[i] <= s->leaving_seq)) {
            emit(s, seqs[i], frames[i]);
            s->replayed++;
        }
    if (hub_sub_left(s)) return;
    if (n == limit) {
        if (s->req && s->replayed >= lim.sync_max) {
            s->state = SUB_PAGED;
            hub_sub_pend_clear(s);
            s->lost = 0;
            synced(s, 1);
        } else {
            hub_sub_fetch(s);
        }
        return;
    }
    hub_sub_drain(s);
}

void hub_sub_fetch(struct hub_sub *s)
{
    uint32_t limit = lim.sync_page;
    if (s->fetching) return;
    /* A replay for a sync stops at sync_max rows (hub_sub_fetched pages on a full read). */
    if (s->req && lim.sync_max - s->replayed < limit) limit = lim.sync_max - s->replayed;
    s->fetching = 1;
    s->lost = 0;
    s->state = SUB_SYNC;
    hub__read(s, s->next_seq - 1, limit);
}

void hub_sub_drain(struct hub_sub *s)
{
    uint32_t i = 0;
    for (; i < s->npend; i++) {
        struct hub_pend *p = &s->pend[i];
        if (p->seq < s->next_seq) continue;
        if (p->seq > s->next_seq) break; /* gap: storage has what is missing */
        emit(s, p->seq, p->frame);
    }
    if (i > 0) {
        for (uint32_t k = 0; k < i; k++)
            rbuf_unref(s->pend[k].frame);
        memmove(s->pend, s->pend + i, (s->npend - i) * sizeof(*s->pend));
        s->npend -= i;
    }
    if (hub_sub_left(s)) return;
    if (s->npend || s->lost) {
        hub_sub_fetch(s);
        return;
    }
    hub_sub_pend_clear(s);
    s->state = SUB_LIVE;
    synced(s, 0);
}

void hub_sub_deliver(struct hub_sub *s, int64_t seq, struct rbuf *f)
{
    if (s->leaving_seq && seq > s->leaving_seq) return; /* after the user left */
    switch (s->state) {
    case SUB_LIVE:
        if (seq == s->next_seq) {
            emit(s, seq, f);
        } else if (seq > s->next_seq) {
            pend_push(s, seq, f);
            hub_sub_fetch(s); /* a gap: fill it from storage */
        }
        break;
    case SUB_HOLD:
    case SUB_SYNC:
        if (seq >= s->next_seq) pend_push(s, seq, f);
        break;
    default: /* SUB_PAGED: the client pages on with sync */
        break;
    }
}

int hub_sub_entry(struct hub_sub *s, int64_t seq, struct rbuf *frame, struct rbuf *reply)
{
    if (reply) {
        if (seq < s->next_seq) {
            /* The entry already went out as a message, read from storage by a replay or a gap
             * fill that ran between the commit and this delivery (frequent in a cluster, where
             * other nodes' entries reveal gaps all the time). The ack still answers the
             * request; held, it would wait for a seq the stream has passed, forever. */
            hub__send(s->hc, reply);
            return 1;
        }
        if (s->state == SUB_LIVE && seq == s->next_seq) {
            hub__send(s->hc, reply);
            s->next_seq++;
            return 1;
        }
        ack_hold(s, seq, reply); /* replaying or held: goes out at its seq */
        hub_sub_deliver(s, seq, frame);
        return 1;
    }
    hub_sub_deliver(s, seq, frame);
    return 0;
}
