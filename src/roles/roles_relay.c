/* roles_relay.c - the JetStream relay (see roles_relay.h). A batch is published asynchronously
 * on one connection and then waited for with js_PublishAsyncComplete; every acknowledgement
 * (stored, duplicate or error) is recorded per message by the ack handler.
 *
 * Order across failures: message i of a batch is published with Nats-Expected-Last-Sequence =
 * anchor + i, where anchor is the stream sequence of the event just before the batch (the last
 * one acknowledged). The stream checks the message id against its duplicate window first, then
 * the expected sequence: once one message is refused (an error, a limit, no acknowledgement),
 * the stream's last sequence stops matching and every later message of the batch is refused
 * too, instead of being stored ahead of it. The handler reports the acknowledged prefix to the
 * outbox (*taken), which moves past exactly that and hands the rest again, anchored on the last
 * acknowledged sequence. A message whose acknowledgement timed out but that the stream did
 * store is found again as a duplicate (its original sequence comes back in the duplicate ack),
 * so the chain stays consistent. Needs the relay to be the stream's only publisher that stores
 * anything (a second relay publishing the same events only produces duplicates: its chain is the
 * same events in the same order). */
#include "roles/roles_relay.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "outbox/outbox.h"
#include "roles/roles_db.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

#define DUP_WINDOW_NS (INT64_C(600) * 1000000000) /* 10 minutes */

/* One message of the batch in flight: filled by the ack handler (NATS's thread). */
struct relay_slot {
    natsMsg *m;      /* identifies the ack; NULL once acknowledged or taken back */
    int state;       /* 0 no answer yet, 1 stored, 2 duplicate, -1 refused */
    uint64_t seq;    /* stream sequence (of the original for a duplicate) */
    natsStatus err;  /* refused: why */
    jsErrCode jcode; /* refused: the JetStream error code, 0 when none */
    char text[96];   /* refused: the server's description */
};

struct roles_relay {
    struct store_db *db;
    char *stream;
    int replicas;
    int64_t timeout_ms;
    natsConnection *nc;
    jsCtx *js;
    int stream_ready;    /* consumer thread only */
    int anchor_known;    /* consumer thread: anchor is the sequence of the event before the batch */
    uint64_t anchor;     /* its stream sequence (0: the stream was empty) */
    uv_mutex_t slots_mu; /* slots, nslots, cursor: the consumer thread and the ack handler */
    struct relay_slot *slots;
    size_t nslots, cursor;
    struct outbox_consumer *oc;
};

static struct {
    _Atomic uint64_t published, duplicates, failures;
} stats; /* one relay per process */
static atomic_int stats_running;

int roles_relay_stats(struct roles_relay_stats *out)
{
    out->published = atomic_load_explicit(&stats.published, memory_order_relaxed);
    out->duplicates = atomic_load_explicit(&stats.duplicates, memory_order_relaxed);
    out->failures = atomic_load_explicit(&stats.failures, memory_order_relaxed);
    return atomic_load(&stats_running);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    struct roles_relay *r = closure;
    (void)js;
    uv_mutex_lock(&r->slots_mu);
    /* Acks come in publish order: the search starts where the last one was found. */
    for (size_t k = 0; k < r->nslots; k++) {
        size_t i = (r->cursor + k) % r->nslots;
        struct relay_slot *sl = &r->slots[i];
        if (sl->m != msg) continue;
        sl->m = NULL;
        if (pa) {
            sl->state = pa->Duplicate ? 2 : 1;
            sl->seq = pa->Sequence;
        } else {
            sl->state = -1;
            sl->err = pae ? pae->Err : NATS_ERR;
            sl->jcode = pae ? pae->ErrCode : 0;
            snprintf(sl->text, sizeof(sl->text), "%s",
                     pae && pae->ErrText ? pae->ErrText : natsStatus_GetText(sl->err));
            for (char *p = sl->text; *p; p++) /* logged inside a JSON string */
                if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) *p = ' ';
        }
        r->cursor = i + 1 < r->nslots ? i + 1 : 0;
        break;
    }
    uv_mutex_unlock(&r->slots_mu);
    natsMsg_Destroy(msg); /* a late ack of a batch given up on finds no slot */
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    log_info("relay connected to NATS", "\"role\":\"relay\"");
}

static int replicas_auto(struct roles_relay *r)
{
    char **servers = NULL;
    int n = 0;
    if (r->replicas > 0) return r->replicas;
    if (natsConnection_GetServers(r->nc, &servers, &n) != NATS_OK) return 1;
    for (int i = 0; i < n; i++)
        free(servers[i]);
    free(servers);
    return n >= 3 ? 3 : 1;
}

/* Look the stream up; create it when missing. CD_OK once it exists, with *last set to its last
 * sequence when last is not NULL. */
static int ensure_stream(struct roles_relay *r, uint64_t *last)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st;
    if (r->stream_ready && !last) return CD_OK;
    st = js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr);
    if (st == NATS_NOT_FOUND) {
        jsStreamConfig sc;
        const char *subjects[] = {"chatd.events.>"};
        jsStreamConfig_Init(&sc);
        sc.Name = r->stream;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Replicas = replicas_auto(r);
        sc.Duplicates = DUP_WINDOW_NS;
        st = js_AddStream(&si, r->js, &sc, NULL, &jerr);
        if (st == NATS_OK)
            log_info("relay: stream created", "\"stream\":\"%s\",\"replicas\":%d", r->stream,
                     (int)sc.Replicas);
    }
    if (st == NATS_OK && last) *last = si->State.LastSeq;
    if (si) jsStreamInfo_Destroy(si);
    if (st != NATS_OK) {
        log_warn("relay: stream not available", "\"stream\":\"%s\",\"error\":\"%s\",\"code\":%d",
                 r->stream, natsStatus_GetText(st), (int)jerr);
        return CD_E_UNAVAILABLE;
    }
    r->stream_ready = 1;
    return CD_OK;
}

/* The anchor when the relay does not know it (start, or the stream changed under it): the
 * stream's last message. Its id found in the batch at i means evs[0..i] are stored already
 * (stored messages are always an in-order prefix): *skip = i + 1, not published again (the
 * duplicate window may be over). Otherwise the last message is taken as the batch's
 * predecessor. CD_OK or CD_E_UNAVAILABLE. */
static int resolve_anchor(struct roles_relay *r, const struct store_outbox_event *evs, size_t n,
                          size_t *skip)
{
    uint64_t last = 0;
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    const char *id = NULL;
    natsStatus st;
    int rc;

    *skip = 0;
    if ((rc = ensure_stream(r, &last)) != CD_OK) return rc;
    if (last > 0) {
        st = js_GetMsg(&m, r->js, r->stream, last, NULL, &jerr);
        if (st != NATS_OK && st != NATS_NOT_FOUND) {
            log_warn("relay: last message not readable", "\"error\":\"%s\",\"code\":%d",
                     natsStatus_GetText(st), (int)jerr);
            return CD_E_UNAVAILABLE;
        }
        if (m && natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id) {
            size_t len = strlen(id);
            for (size_t i = n; i-- > 0;)
                if (evs[i].id_len == len && memcmp(evs[i].id, id, len) == 0) {
                    *skip = i + 1;
                    break;
                }
        }
        natsMsg_Destroy(m);
    }
    r->anchor = last;
    r->anchor_known = 1;
    log_info("relay: anchored on the stream",
             "\"stream\":\"%s\",\"last_seq\":%" PRIu64 ",\"already_stored\":%zu", r->stream, last,
             *skip);
    return CD_OK;
}

/* chatd.events.<type>.<room>: the type as one subject token ([a-z0-9_], '.' as '_'). */
static void subject(char *out, size_t cap, const struct store_outbox_event *e)
{
    char type[32];
    size_t k = 0;
    for (size_t i = 0; i < e->type_len && k + 1 < sizeof(type); i++) {
        char ch = e->type[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')
            type[k++] = ch;
        else if (ch == '.')
            type[k++] = '_'; /* one subject token: user.created -> user_created */
    }
    if (!k) type[k++] = '_';
    type[k] = 0;
    snprintf(out, cap, "chatd.events.%s.%" PRId64, type, e->room_id);
}

static void set_slots(struct roles_relay *r, struct relay_slot *slots, size_t n)
{
    uv_mutex_lock(&r->slots_mu);
    r->slots = slots;
    r->nslots = n;
    r->cursor = 0;
    uv_mutex_unlock(&r->slots_mu);
}

static int handle(void *ud, const struct store_outbox_event *evs, size_t n, size_t *taken)
{
    struct roles_relay *r = ud;
    struct relay_slot *slots, first_fail = {0};
    jsPubOptions po;
    natsStatus st = NATS_OK;
    size_t skip = 0, sent = 0, ok = 0, failed = 0;
    int rc;

    if ((rc = ensure_stream(r, NULL)) != CD_OK) return rc;
    if (!r->anchor_known && (rc = resolve_anchor(r, evs, n, &skip)) != CD_OK) return rc;
    *taken = skip;
    if (skip == n) return CD_OK;
    slots = xcalloc(n - skip, sizeof(*slots));
    set_slots(r, slots, n - skip);
    for (size_t i = skip; i < n && st == NATS_OK; i++) {
        const struct store_outbox_event *e = &evs[i];
        char subj[80], id[STORE_EVENT_ID_MAX + 1];
        natsMsg *m = NULL;
        struct jsonw w;
        snprintf(id, sizeof(id), "%.*s", (int)e->id_len, e->id);
        subject(subj, sizeof(subj), e);
        jsPubOptions_Init(&po);
        po.MsgId = id;
        po.ExpectStream = r->stream;
        /* 0 = no expectation: only the first message into an empty stream */
        po.ExpectLastSeq = r->anchor + (uint64_t)(i - skip);
        jsonw_init(&w, e->json_len + 128);
        outbox_event_json(&w, e);
        st = natsMsg_Create(&m, subj, NULL, jsonw_text(&w), (int)jsonw_text_len(&w));
        jsonw_free(&w);
        if (st == NATS_OK) {
            uv_mutex_lock(&r->slots_mu);
            slots[i - skip].m = m; /* before the publish: its ack may come at once */
            uv_mutex_unlock(&r->slots_mu);
            st = js_PublishMsgAsync(r->js, &m, &po);
            if (st != NATS_OK) {
                uv_mutex_lock(&r->slots_mu);
                slots[i - skip].m = NULL;
                uv_mutex_unlock(&r->slots_mu);
            }
        }
        natsMsg_Destroy(m); /* NULL once the library owns it */
        if (st == NATS_OK) sent++;
    }
    if (sent) {
        natsStatus w;
        jsPubOptions_Init(&po);
        po.MaxWait = r->timeout_ms;
        w = js_PublishAsyncComplete(r->js, &po);
        if (w != NATS_OK) {
            /* Not all acknowledged in time: take the rest back (no late ack then). Whatever the
             * stream did store of them comes back as duplicates next time. */
            natsMsgList pending;
            if (js_PublishAsyncGetPendingList(&pending, r->js) == NATS_OK)
                natsMsgList_Destroy(&pending);
            if (st == NATS_OK) st = w;
        }
    }
    set_slots(r, NULL, 0); /* from here, an ack finds no slot */
    for (size_t j = 0; j < n - skip; j++) {
        if (slots[j].state > 0 && !failed) {
            ok++;
            r->anchor = slots[j].seq;
        } else if (slots[j].state <= 0 && !failed++) {
            first_fail = slots[j];
        }
        if (slots[j].state == 1)
            atomic_fetch_add_explicit(&stats.published, 1, memory_order_relaxed);
        if (slots[j].state == 2)
            atomic_fetch_add_explicit(&stats.duplicates, 1, memory_order_relaxed);
    }
    free(slots);
    *taken = skip + ok;
    if (*taken == n) return CD_OK;
    atomic_fetch_add_explicit(&stats.failures, n - *taken, memory_order_relaxed);
    log_warn("relay: publish not acknowledged, the rest retried",
             "\"events\":%zu,\"taken\":%zu,\"error\":\"%s\",\"code\":%d", n, *taken,
             first_fail.state < 0 ? first_fail.text
                                  : natsStatus_GetText(st != NATS_OK ? st : NATS_TIMEOUT),
             (int)first_fail.jcode);
    if (ok == 0 && first_fail.jcode == JSStreamWrongLastSequenceErr) {
        /* The stream is not where the relay left it (recreated, purged, another publisher):
         * anchor again on what it holds now. */
        r->anchor_known = 0;
    }
    r->stream_ready = 0; /* deleted? look again next time */
    return CD_E_UNAVAILABLE;
}

int roles_relay_start(struct store_db *db, const struct roles_relay_cfg *cfg,
                      struct roles_relay **out)
{
    struct roles_relay *r;
    natsOptions *o = NULL;
    jsOptions jo;
    const char *servers[16];
    char *list, *save = NULL;
    int n = 0, rc = CD_E_IO;
    natsStatus st;

    *out = NULL;
    if (!cfg->nats_url || !*cfg->nats_url) return CD_E_INVALID_FIELD;
    if (!(r = calloc(1, sizeof(*r)))) return CD_E_NOMEM;
    list = strdup(cfg->nats_url);
    r->stream = strdup(cfg->stream);
    if (!list || !r->stream) {
        free(list);
        free(r->stream);
        free(r);
        return CD_E_NOMEM;
    }
    for (char *t = strtok_r(list, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t) servers[n++] = t;
    }
    r->db = db;
    uv_mutex_init(&r->slots_mu);
    r->replicas = cfg->replicas;
    r->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
    st = n ? nats_Open(-1) : NATS_INVALID_ARG;
    if (st == NATS_OK) st = natsOptions_Create(&o);
    if (st == NATS_OK) st = natsOptions_SetServers(o, servers, n);
    if (st == NATS_OK) st = natsOptions_SetName(o, "chatd-relay");
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, 250);
    /* With a callback the first connect happens in the background (without one libnats retries
     * it inside natsConnection_Connect: a NATS that is away would hold up the start). */
    if (st == NATS_OK) st = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, r);
    if (st == NATS_OK) {
        st = natsConnection_Connect(&r->nc, o);
        if (st == NATS_NOT_YET_CONNECTED) st = NATS_OK;
    }
    if (st == NATS_OK) st = jsOptions_Init(&jo);
    if (st == NATS_OK) {
        jo.Wait = r->timeout_ms;
        jo.PublishAsync.MaxPending = 4096;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = r;
        st = natsConnection_JetStream(&r->js, r->nc, &jo);
    }
    natsOptions_Destroy(o);
    free(list);
    if (st != NATS_OK) {
        log_error("relay failed to start", "\"error\":\"%s\"", natsStatus_GetText(st));
        if (st == NATS_INVALID_ARG) rc = CD_E_INVALID_FIELD;
        goto fail;
    }
    rc = roles_consume(db, "relay", handle, r, cfg->batch, (int)cfg->poll_ms, &r->oc);
    if (rc != CD_OK) goto fail;
    log_info("relay started", "\"stream\":\"%s\"", r->stream);
    atomic_store(&stats_running, 1);
    *out = r;
    return CD_OK;
fail:
    if (r->js) jsCtx_Destroy(r->js);
    if (r->nc) natsConnection_Destroy(r->nc);
    uv_mutex_destroy(&r->slots_mu);
    free(r->stream);
    free(r);
    return rc;
}

void roles_relay_stop(struct roles_relay *r)
{
    if (!r) return;
    outbox_consumer_stop(r->oc);
    jsCtx_Destroy(r->js);
    natsConnection_Close(r->nc);
    natsConnection_Destroy(r->nc);
    atomic_store(&stats_running, 0);
    uv_mutex_destroy(&r->slots_mu);
    free(r->stream);
    free(r);
}
