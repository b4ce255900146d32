/* revoked.c - the ended-sessions set: one hash map under a mutex, swept of expired entries as it
 * grows. Lookups of an empty set (the common case) take no lock. */
#include <stdatomic.h>
#include <stdlib.h>
#include <uv.h>

#include "auth/revoked.h"
#include "util/imap.h"
#include "util/rbuf.h"

struct revoked {
    uv_mutex_t lock;
    struct imap m;     /* sid -> end (unix seconds, stored in the pointer) */
    atomic_uint n;     /* entries, read without the lock */
    uint32_t sweep_at; /* sweep expired entries when the map reaches this size */
};

struct revoked *revoked_new(void)
{
    struct revoked *r = xcalloc(1, sizeof(*r));
    uv_mutex_init(&r->lock);
    imap_init(&r->m);
    r->sweep_at = 1024;
    return r;
}

void revoked_free(struct revoked *r)
{
    if (!r) return;
    imap_free(&r->m);
    uv_mutex_destroy(&r->lock);
    free(r);
}

/* Under the lock: drop the entries that ended before now. */
static void sweep(struct revoked *r, int64_t now)
{
    uint32_t i;
    struct imap_ent *e = imap_first(&r->m, &i);
    while (e) {
        struct imap_ent *next = imap_next(&r->m, e, &i);
        if ((int64_t)(intptr_t)e->val <= now) imap_del(&r->m, e->key);
        e = next;
    }
}

void revoked_add(struct revoked *r, int64_t sid, int64_t now, int64_t until)
{
    uv_mutex_lock(&r->lock);
    if ((int64_t)(intptr_t)imap_get(&r->m, sid) < until)
        imap_put(&r->m, sid, (void *)(intptr_t)until);
    if (r->m.n >= r->sweep_at) {
        /* Amortized: the next sweep waits until the map has doubled again. */
        sweep(r, now);
        r->sweep_at = r->m.n * 2 > 1024 ? r->m.n * 2 : 1024;
    }
    atomic_store(&r->n, r->m.n);
    uv_mutex_unlock(&r->lock);
}

int revoked_has(struct revoked *r, int64_t sid, int64_t now)
{
    int64_t end;
    if (atomic_load(&r->n) == 0) return 0;
    uv_mutex_lock(&r->lock);
    end = (int64_t)(intptr_t)imap_get(&r->m, sid);
    uv_mutex_unlock(&r->lock);
    return end > now;
}

uint32_t revoked_count(struct revoked *r)
{
    return atomic_load(&r->n);
}
