#include "util/mpsc.h"

void mpsc_init(struct mpsc *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    q->tail = &q->stub;
}

void mpsc_push(struct mpsc *q, struct mpsc_node *n)
{
    struct mpsc_node *prev;

    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

struct mpsc_node *mpsc_pop(struct mpsc *q)
{
    struct mpsc_node *tail = q->tail;
    struct mpsc_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);

    if (tail == &q->stub) {
        if (!next) return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire)) return NULL; /* mid-push */
    mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}
