/* bus_nats.c - the bus over core NATS (libnats, nats.c).
 *
 * Subjects: chatd.r.<room> per room, chatd.ctl for the control channel. A node subscribes to a
 * room's subject while it has interest (NATS then forwards the room only to nodes that need
 * it, as its routes forward only where there is interest). The connection is opened with
 * no_echo, so a node never receives what it published. Subscriptions share libnats' global
 * delivery threads instead of one thread each. libnats reconnects by itself (forever, every
 * server of the list) and re-subscribes; what is published while disconnected goes to its
 * reconnect buffer (8 MiB) and is sent after the reconnect, or dropped when that is full.
 *
 * Why libnats and not our own client on the I/O loops: the bus is off the hot path of the
 * single node (a node publishes once per group commit and room, not per recipient), and
 * libnats brings cluster discovery, reconnects, re-subscription and the reconnect buffer. */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "util/imap.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

#define SUBJ_MAX      48
#define PENDING_MSGS  (1 << 20) /* per subscription before libnats drops (slow consumer) */
#define PENDING_BYTES (256 << 20)

struct nbus {
    struct bus b;
    natsConnection *nc;
    natsSubscription *ctl;
    pthread_mutex_t mu;
    struct imap subs; /* room -> natsSubscription*, under mu */
    _Atomic uint64_t published, publish_failed, received;
};

static void room_subject(char *out, int64_t room)
{
    if (room)
        snprintf(out, SUBJ_MAX, "chatd.r.%lld", (long long)room);
    else
        snprintf(out, SUBJ_MAX, "chatd.ctl");
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct nbus *nb = closure;
    const char *subj = natsMsg_GetSubject(msg);
    int64_t room = 0;
    (void)nc;
    (void)sub;
    if (!strncmp(subj, "chatd.r.", 8)) room = strtoll(subj + 8, NULL, 10);
    atomic_fetch_add(&nb->received, 1);
    nb->b.recv(nb->b.ud, room, (const uint8_t *)natsMsg_GetData(msg),
               (size_t)natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

static int nb_publish(struct bus *b, int64_t room, const void *data, size_t len)
{
    struct nbus *nb = (struct nbus *)b;
    char subj[SUBJ_MAX];
    room_subject(subj, room);
    if (natsConnection_Publish(nb->nc, subj, data, (int)len) != NATS_OK) {
        atomic_fetch_add(&nb->publish_failed, 1);
        return CD_E_UNAVAILABLE;
    }
    atomic_fetch_add(&nb->published, 1);
    return CD_OK;
}

static natsSubscription *subscribe(struct nbus *nb, int64_t room)
{
    char subj[SUBJ_MAX];
    natsSubscription *s = NULL;
    room_subject(subj, room);
    if (natsConnection_Subscribe(&s, nb->nc, subj, on_msg, nb) != NATS_OK) {
        log_warn("nats subscribe failed", "\"subject\":\"%s\",\"error\":\"%s\"", subj,
                 nats_GetLastError(NULL));
        return NULL;
    }
    natsSubscription_SetPendingLimits(s, PENDING_MSGS, PENDING_BYTES);
    return s;
}

static int nb_interest(struct bus *b, int64_t room, int on)
{
    struct nbus *nb = (struct nbus *)b;
    natsSubscription *s;
    int rc = CD_OK;

    pthread_mutex_lock(&nb->mu);
    if (on) {
        if (!imap_get(&nb->subs, room)) {
            s = subscribe(nb, room);
            if (s)
                imap_put(&nb->subs, room, s);
            else
                rc = CD_E_UNAVAILABLE;
        }
    } else if ((s = imap_del(&nb->subs, room))) {
        natsSubscription_Unsubscribe(s);
        natsSubscription_Destroy(s);
    }
    pthread_mutex_unlock(&nb->mu);
    return rc;
}

static int nb_connected(struct bus *b)
{
    struct nbus *nb = (struct nbus *)b;
    return natsConnection_Status(nb->nc) == NATS_CONN_STATUS_CONNECTED;
}

static void nb_stats(struct bus *b, struct bus_stats *out)
{
    struct nbus *nb = (struct nbus *)b;
    out->published = atomic_load(&nb->published);
    out->publish_failed = atomic_load(&nb->publish_failed);
    out->received = atomic_load(&nb->received);
    pthread_mutex_lock(&nb->mu);
    out->interest_rooms = nb->subs.n;
    pthread_mutex_unlock(&nb->mu);
}

static void nb_close(struct bus *b)
{
    struct nbus *nb = (struct nbus *)b;
    struct imap_ent *e;
    uint32_t i;

    pthread_mutex_lock(&nb->mu);
    for (e = imap_first(&nb->subs, &i); e; e = imap_next(&nb->subs, e, &i)) {
        natsSubscription_Unsubscribe(e->val);
        natsSubscription_Destroy(e->val);
    }
    imap_free(&nb->subs);
    pthread_mutex_unlock(&nb->mu);
    if (nb->ctl) {
        natsSubscription_Unsubscribe(nb->ctl);
        natsSubscription_Destroy(nb->ctl);
    }
    natsConnection_Close(nb->nc);
    natsConnection_Destroy(nb->nc);
    nats_CloseAndWait(2000); /* joins libnats' threads: no callback runs after this */
    pthread_mutex_destroy(&nb->mu);
    free(nb);
}

static const struct bus_ops nbus_ops = {
    .name = "nats",
    .publish = nb_publish,
    .interest = nb_interest,
    .connected = nb_connected,
    .stats = nb_stats,
    .close = nb_close,
};

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    log_warn("nats disconnected", "\"reconnecting\":true");
}

static void on_connected(natsConnection *nc, void *closure)
{
    char url[256] = "";
    (void)closure;
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("nats connected", "\"url\":\"%s\"", url);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    char url[256] = "";
    (void)closure;
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("nats reconnected", "\"url\":\"%s\"", url);
}

int bus_nats_open(struct bus **out, const char *urls, const char *node, bus_recv_fn recv, void *ud)
{
    struct nbus *nb;
    natsOptions *o = NULL;
    const char *servers[16];
    char *list = xstrndup(urls, strlen(urls)), *save = NULL;
    int n = 0;
    natsStatus st;

    for (char *t = strtok_r(list, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (*t) servers[n++] = t;
    }
    if (n == 0) {
        free(list);
        return CD_E_INVALID_FIELD;
    }
    nb = xcalloc(1, sizeof(*nb));
    nb->b.ops = &nbus_ops;
    nb->b.recv = recv;
    nb->b.ud = ud;
    pthread_mutex_init(&nb->mu, NULL);
    imap_init(&nb->subs);
    st = nats_Open(-1);
    if (st == NATS_OK) st = natsOptions_Create(&o);
    if (st == NATS_OK) st = natsOptions_SetServers(o, servers, n);
    if (st == NATS_OK) st = natsOptions_SetName(o, node);
    if (st == NATS_OK) st = natsOptions_SetNoEcho(o, true);
    if (st == NATS_OK) st = natsOptions_UseGlobalMessageDelivery(o, true);
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, 250);
    if (st == NATS_OK) st = natsOptions_SetReconnectBufSize(o, 8 << 20);
    if (st == NATS_OK) st = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, nb);
    if (st == NATS_OK) st = natsOptions_SetDisconnectedCB(o, on_disconnected, nb);
    if (st == NATS_OK) st = natsOptions_SetReconnectedCB(o, on_reconnected, nb);
    if (st == NATS_OK) {
        st = natsConnection_Connect(&nb->nc, o);
        if (st == NATS_NOT_YET_CONNECTED) st = NATS_OK; /* connects in the background */
    }
    if (st == NATS_OK && !(nb->ctl = subscribe(nb, 0))) st = NATS_ERR;
    natsOptions_Destroy(o);
    free(list);
    if (st != NATS_OK) {
        log_error("nats bus failed to start", "\"error\":\"%s\"", natsStatus_GetText(st));
        if (nb->nc) natsConnection_Destroy(nb->nc);
        imap_free(&nb->subs);
        pthread_mutex_destroy(&nb->mu);
        free(nb);
        return CD_E_IO;
    }
    *out = &nb->b;
    return CD_OK;
}
