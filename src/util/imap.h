/* imap.h - int64 -> pointer hash map (chained, power-of-two buckets). Single-threaded; O(1)
 * average lookups. The per-thread subscription index uses it for rooms and users. */
#ifndef CD_IMAP_H
#define CD_IMAP_H

#include <stdint.h>

struct imap_ent {
    int64_t key;
    void *val;
    struct imap_ent *next;
};

struct imap {
    struct imap_ent **b;
    uint32_t nb, n;
};

void imap_init(struct imap *m);
void imap_free(struct imap *m); /* frees entries, not values */
void *imap_get(const struct imap *m, int64_t key);
void imap_put(struct imap *m, int64_t key, void *val); /* replaces */
void *imap_del(struct imap *m, int64_t key);           /* returns the old value or NULL */
/* Iterate: for (e = imap_first(m, &i); e; e = imap_next(m, e, &i)) */
struct imap_ent *imap_first(const struct imap *m, uint32_t *i);
struct imap_ent *imap_next(const struct imap *m, struct imap_ent *e, uint32_t *i);

#endif
