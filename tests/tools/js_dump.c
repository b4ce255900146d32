/* js_dump: prints a JetStream stream as JSON lines, for the cluster tests (Debian has no `nats`
 * CLI). First line: {"stream":..,"messages":N,"replicas":R,"first":F,"last":L}; then one line
 * per stored message: {"seq":S,"subject":"...","msg_id":"...","stored_ns":T,"data":<the payload>}
 * (stored_ns: when the stream stored it, unix ns).
 *
 *   js_dump nats://127.0.0.1:4222[,nats://...] STREAM
 *
 * Exit 0 when the stream was read, 1 when it does not exist or NATS is unreachable. */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    natsConnection *nc = NULL;
    natsOptions *o = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st;
    const char *servers[16];
    char list[2048], *save = NULL;
    int n = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: js_dump NATS_URLS STREAM\n");
        return 2;
    }
    snprintf(list, sizeof(list), "%s", argv[1]);
    for (char *t = strtok_r(list, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
        servers[n++] = t;
    st = natsOptions_Create(&o);
    if (st == NATS_OK) st = natsOptions_SetServers(o, servers, n);
    if (st == NATS_OK) st = natsConnection_Connect(&nc, o);
    if (st == NATS_OK) st = natsConnection_JetStream(&js, nc, NULL);
    if (st == NATS_OK) st = js_GetStreamInfo(&si, js, argv[2], NULL, &jerr);
    if (st != NATS_OK) {
        fprintf(stderr, "js_dump: %s (%d)\n", natsStatus_GetText(st), (int)jerr);
        return 1;
    }
    printf("{\"stream\":\"%s\",\"messages\":%" PRIu64 ",\"replicas\":%" PRId64 ",\"first\":%" PRIu64
           ",\"last\":%" PRIu64 "}\n",
           argv[2], si->State.Msgs, si->Config->Replicas, si->State.FirstSeq, si->State.LastSeq);
    for (uint64_t seq = si->State.FirstSeq; si->State.Msgs && seq <= si->State.LastSeq; seq++) {
        natsMsg *m = NULL;
        const char *id = "";
        if (js_GetMsg(&m, js, argv[2], seq, NULL, &jerr) != NATS_OK) continue; /* deleted */
        natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
        printf("{\"seq\":%" PRIu64 ",\"subject\":\"%s\",\"msg_id\":\"%s\",\"stored_ns\":%" PRId64
               ",\"data\":%.*s}\n",
               seq, natsMsg_GetSubject(m), id ? id : "", natsMsg_GetTime(m),
               natsMsg_GetDataLength(m), natsMsg_GetData(m));
        natsMsg_Destroy(m);
    }
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return 0;
}
