/* roles_relay.c - the JetStream relay (see roles_relay.h). A batch is published asynchronously
 * (one connection, so the server stores it in publish order) and then waited for with
 * js_PublishAsyncComplete; failed acknowledgements are counted by the error handler. */
#include "roles/roles_relay.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/outbox.h"
#include "roles/roles_db.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/status.h"

#define DUP_WINDOW_NS (INT64_C(600) * 1000000000) /* 10 minutes */

struct roles_relay {
    struct store_db *db;
    char *stream;
    int replicas;
    int64_t timeout_ms;
    natsConnection *nc;
    jsCtx *js;
    int stream_ready; /* consumer thread only */
    atomic_int pub_errors;
    struct outbox_consumer *oc;
};

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    struct roles_relay *r = closure;
    (void)js;
    if (atomic_fetch_add(&r->pub_errors, 1) == 0)
        log_warn("relay: publish not acknowledged", "\"error\":\"%s\",\"text\":\"%s\"",
                 natsStatus_GetText(pae->Err), pae->ErrText ? pae->ErrText : "");
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

/* Look the stream up; create it when missing. CD_OK once it exists. */
static int ensure_stream(struct roles_relay *r)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st;
    if (r->stream_ready) return CD_OK;
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
    if (si) jsStreamInfo_Destroy(si);
    if (st != NATS_OK) {
        log_warn("relay: stream not available", "\"stream\":\"%s\",\"error\":\"%s\",\"code\":%d",
                 r->stream, natsStatus_GetText(st), (int)jerr);
        return CD_E_UNAVAILABLE;
    }
    r->stream_ready = 1;
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

static int handle(void *ud, const struct store_outbox_event *evs, size_t n)
{
    struct roles_relay *r = ud;
    jsPubOptions po;
    natsStatus st = NATS_OK;
    size_t sent = 0;
    int rc;

    if ((rc = ensure_stream(r)) != CD_OK) return rc;
    atomic_store(&r->pub_errors, 0);
    for (size_t i = 0; i < n && st == NATS_OK; i++) {
        const struct store_outbox_event *e = &evs[i];
        char subj[80], id[STORE_EVENT_ID_MAX + 1];
        natsMsg *m = NULL;
        struct jsonw w;
        snprintf(id, sizeof(id), "%.*s", (int)e->id_len, e->id);
        subject(subj, sizeof(subj), e);
        jsPubOptions_Init(&po);
        po.MsgId = id;
        po.ExpectStream = r->stream;
        jsonw_init(&w, e->json_len + 128);
        outbox_event_json(&w, e);
        st = natsMsg_Create(&m, subj, NULL, jsonw_text(&w), (int)jsonw_text_len(&w));
        jsonw_free(&w);
        if (st == NATS_OK) st = js_PublishMsgAsync(r->js, &m, &po);
        natsMsg_Destroy(m); /* NULL once the library owns it */
        if (st == NATS_OK) sent++;
    }
    jsPubOptions_Init(&po);
    po.MaxWait = r->timeout_ms;
    if (sent) {
        natsStatus w = js_PublishAsyncComplete(r->js, &po);
        if (w != NATS_OK) {
            /* Not acknowledged in time: take the messages back (a late ack is then ignored);
             * the batch is published again, deduplicated by the stream. */
            natsMsgList pending;
            if (js_PublishAsyncGetPendingList(&pending, r->js) == NATS_OK)
                natsMsgList_Destroy(&pending);
            if (st == NATS_OK) st = w;
        }
    }
    if (st != NATS_OK || atomic_load(&r->pub_errors)) {
        if (st != NATS_OK)
            log_warn("relay: batch not published, retried", "\"events\":%zu,\"error\":\"%s\"", n,
                     natsStatus_GetText(st));
        /* The stream may have been deleted: look again next time. */
        r->stream_ready = 0;
        return CD_E_UNAVAILABLE;
    }
    return CD_OK;
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
        jo.PublishAsync.ErrHandler = on_pub_error;
        jo.PublishAsync.ErrHandlerClosure = r;
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
    *out = r;
    return CD_OK;
fail:
    if (r->js) jsCtx_Destroy(r->js);
    if (r->nc) natsConnection_Destroy(r->nc);
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
    free(r->stream);
    free(r);
}
