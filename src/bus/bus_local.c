/* bus_local.c - nodes inside one process joined by name (tests, and the single node).
 *
 * A publish is handed synchronously to every other member of the group with interest in the
 * channel. One mutex per process guards the groups: this bus is for tests and for the single
 * node, where the group has one member and a publish returns after one check. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "util/imap.h"
#include "util/rbuf.h"
#include "util/status.h"

struct lbus {
    struct bus b;
    char *group;
    struct imap rooms; /* room -> (void *)1 while interested; under mu */
    struct lbus *next;
    uint64_t published, received;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct lbus *members; /* every open lbus of the process, under mu */

static int lb_publish(struct bus *b, int64_t room, const void *data, size_t len)
{
    struct lbus *self = (struct lbus *)b, *to[64];
    size_t n = 0;

    pthread_mutex_lock(&mu);
    self->published++;
    for (struct lbus *m = members; m && n < sizeof(to) / sizeof(to[0]); m = m->next)
        if (m != self && !strcmp(m->group, self->group) && (room == 0 || imap_get(&m->rooms, room)))
            to[n++] = m;
    for (size_t i = 0; i < n; i++)
        to[i]->received++;
    pthread_mutex_unlock(&mu);
    /* Delivered outside the lock: a receiver may publish or change its interest. A member
     * closing meanwhile is the test's own race to avoid (close after traffic stops). */
    for (size_t i = 0; i < n; i++)
        to[i]->b.recv(to[i]->b.ud, room, data, len);
    return CD_OK;
}

static int lb_interest(struct bus *b, int64_t room, int on)
{
    struct lbus *self = (struct lbus *)b;
    pthread_mutex_lock(&mu);
    if (on)
        imap_put(&self->rooms, room, (void *)1);
    else
        imap_del(&self->rooms, room);
    pthread_mutex_unlock(&mu);
    return CD_OK;
}

static int lb_connected(struct bus *b)
{
    (void)b;
    return 1;
}

static void lb_stats(struct bus *b, struct bus_stats *out)
{
    struct lbus *self = (struct lbus *)b;
    pthread_mutex_lock(&mu);
    out->published = self->published;
    out->publish_failed = 0;
    out->received = self->received;
    out->interest_rooms = self->rooms.n;
    pthread_mutex_unlock(&mu);
}

static void lb_close(struct bus *b)
{
    struct lbus *self = (struct lbus *)b;
    pthread_mutex_lock(&mu);
    for (struct lbus **p = &members; *p; p = &(*p)->next)
        if (*p == self) {
            *p = self->next;
            break;
        }
    pthread_mutex_unlock(&mu);
    imap_free(&self->rooms);
    free(self->group);
    free(self);
}

static const struct bus_ops lbus_ops = {
    .name = "local",
    .publish = lb_publish,
    .interest = lb_interest,
    .connected = lb_connected,
    .stats = lb_stats,
    .close = lb_close,
};

int bus_local_open(struct bus **out, const char *group, bus_recv_fn recv, void *ud)
{
    struct lbus *self = xcalloc(1, sizeof(*self));
    self->b.ops = &lbus_ops;
    self->b.recv = recv;
    self->b.ud = ud;
    self->group = xstrndup(group, strlen(group));
    imap_init(&self->rooms);
    pthread_mutex_lock(&mu);
    self->next = members;
    members = self;
    pthread_mutex_unlock(&mu);
    *out = &self->b;
    return CD_OK;
}
