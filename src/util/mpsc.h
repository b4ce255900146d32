/* mpsc.h - intrusive lock-free multi-producer single-consumer queue (Vyukov's design).
 *
 * Producers on any thread push nodes embedded in their own structs; one consumer thread pops.
 * No allocation, no locks: a push is one atomic exchange. The queue never owns the nodes.
 */
#ifndef CD_MPSC_H
#define CD_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

struct mpsc_node {
    _Atomic(struct mpsc_node *) next;
};

struct mpsc {
    _Atomic(struct mpsc_node *) head; /* producers swap themselves in here */
    struct mpsc_node *tail;           /* consumer side */
    struct mpsc_node stub;
};

void mpsc_init(struct mpsc *q);
/* Push from any thread. Never blocks; the caller wakes the consumer (e.g. uv_async_send). */
void mpsc_push(struct mpsc *q, struct mpsc_node *n);
/* Pop on the consumer thread. Returns NULL when empty or when a producer is mid-push (the node
 * will be visible on a later call; producers always wake the consumer after pushing). */
struct mpsc_node *mpsc_pop(struct mpsc *q);

#define mpsc_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
