/* js_dump: prints a JetStream stream as JSON lines, for the cluster tests (Debian has no `nats`
 * CLI). First line: {"stream":..,"messages":N,"replicas":R,"first":F,"last":L}; then one line
 * per stored message: {"seq":S,"subject":"...","msg_id":"...","stored_ns":T,"data":<the payload>}
 * (stored_ns: when the stream stored it, unix ns).
 *
 *   js_dump nats://127.0.0.1:4222[,nats://...] STREAM
 *   js_dump NATS_URLS STREAM --max-msg-size N
 *
 * The second form sets the stream's largest message (-1: no limit), creating the stream as the
 * relay would (subjects chatd.events.>, file storage, 3 replicas, 10-minute duplicate window)
 * when it is missing, then prints the first line only: the relay tests use it to make the stream
 * refuse one message mid-batch.
 *
 * Exit 0 when the stream was read, 1 when it does not exist or NATS is unreachable. */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Creates or updates STREAM with MaxMsgSize = max. */
static natsStatus set_max_msg_size(jsCtx *js, const char *stream, int32_t max, jsErrCode *jerr)
{
    jsStreamInfo *si = NULL;
    jsStreamConfig sc;
    const char *subjects[] = {"chatd.events.>"};
    natsStatus st = js_GetStreamInfo(&si, js, stream, NULL, jerr);
    if (st == NATS_OK) {
        si->Config->MaxMsgSize = max;
        st = js_UpdateStream(NULL, js, si->Config, NULL, jerr);
        jsStreamInfo_Destroy(si);
        return st;
    }
    if (st != NATS_NOT_FOUND) return st;
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = 3;
    sc.Duplicates = INT64_C(600) * 1000000000;
    sc.MaxMsgSize = max;
    return js_AddStream(NULL, js, &sc, NULL, jerr);
}

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

    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--max-msg-size") == 0)) {
        fprintf(stderr, "usage: js_dump NATS_URLS STREAM [--max-msg-size N]\n");
        return 2;
    }
    snprintf(list, sizeof(list), "%s", argv[1]);
    for (char *t = strtok_r(list, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
        servers[n++] = t;
    st = natsOptions_Create(&o);
    if (st == NATS_OK) st = natsOptions_SetServers(o, servers, n);
    if (st == NATS_OK) st = natsConnection_Connect(&nc, o);
    if (st == NATS_OK) st = natsConnection_JetStream(&js, nc, NULL);
    if (st == NATS_OK && argc == 5)
        st = set_max_msg_size(js, argv[2], (int32_t)strtol(argv[4], NULL, 10), &jerr);
    if (st == NATS_OK) st = js_GetStreamInfo(&si, js, argv[2], NULL, &jerr);
    if (st != NATS_OK) {
        fprintf(stderr, "js_dump: %s (%d)\n", natsStatus_GetText(st), (int)jerr);
        return 1;
    }
    printf("{\"stream\":\"%s\",\"messages\":%" PRIu64 ",\"replicas\":%" PRId64 ",\"first\":%" PRIu64
           ",\"last\":%" PRIu64 "}\n",
           argv[2], si->State.Msgs, si->Config->Replicas, si->State.FirstSeq, si->State.LastSeq);
    for (uint64_t seq = si->State.FirstSeq; argc == 3 && si->State.Msgs && seq <= si->State.LastSeq;
         seq++) {
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
