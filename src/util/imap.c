#include "util/imap.h"

#include <stdlib.h>

#include "util/rbuf.h"

static uint32_t slot(int64_t key, uint32_t nb)
{
    uint64_t x = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(x >> 32) & (nb - 1);
}

void imap_init(struct imap *m)
{
    m->nb = 16;
    m->n = 0;
    m->b = xcalloc(m->nb, sizeof(*m->b));
}

void imap_free(struct imap *m)
{
    for (uint32_t i = 0; i < m->nb; i++)
        for (struct imap_ent *e = m->b[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

void *imap_get(const struct imap *m, int64_t key)
{
    for (struct imap_ent *e = m->b[slot(key, m->nb)]; e; e = e->next)
        if (e->key == key) return e->val;
    return NULL;
}

static void grow(struct imap *m)
{
    uint32_t nb = m->nb * 2;
    struct imap_ent **b = xcalloc(nb, sizeof(*b));
    for (uint32_t i = 0; i < m->nb; i++)
        for (struct imap_ent *e = m->b[i], *n; e; e = n) {
            uint32_t k = slot(e->key, nb);
            n = e->next;
            e->next = b[k];
            b[k] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void imap_put(struct imap *m, int64_t key, void *val)
{
    struct imap_ent *e;
    uint32_t k = slot(key, m->nb);
    for (e = m->b[k]; e; e = e->next)
        if (e->key == key) {
            e->val = val;
            return;
        }
    if (m->n >= m->nb) {
        grow(m);
        k = slot(key, m->nb);
    }
    e = xmalloc(sizeof(*e));
    e->key = key;
    e->val = val;
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
}

void *imap_del(struct imap *m, int64_t key)
{
    struct imap_ent **p = &m->b[slot(key, m->nb)];
    for (; *p; p = &(*p)->next)
        if ((*p)->key == key) {
            struct imap_ent *e = *p;
            void *v = e->val;
            *p = e->next;
            free(e);
            m->n--;
            return v;
        }
    return NULL;
}

struct imap_ent *imap_first(const struct imap *m, uint32_t *i)
{
    for (*i = 0; *i < m->nb; (*i)++)
        if (m->b[*i]) return m->b[*i];
    return NULL;
}

struct imap_ent *imap_next(const struct imap *m, struct imap_ent *e, uint32_t *i)
{
    if (e->next) return e->next;
    for ((*i)++; *i < m->nb; (*i)++)
        if (m->b[*i]) return m->b[*i];
    return NULL;
}
