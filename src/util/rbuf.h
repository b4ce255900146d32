/* rbuf.h - refcounted immutable byte buffers: the unit of output.
 *
 * A fanout event is encoded once into one rbuf (WebSocket header + payload) and every recipient
 * connection queues a reference to it. Reference counts are atomic because buffers cross I/O
 * threads. Out-of-memory policy of chatd: allocation failure aborts (as h2o does); a server that
 * cannot allocate a few hundred bytes cannot keep its promises anyway.
 */
#ifndef CD_RBUF_H
#define CD_RBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct rbuf {
    atomic_uint refs; /* owners; freed when it drops to 0 */
    uint32_t len;     /* bytes in data */
    uint8_t data[];
};

/* New buffer of len bytes (uninitialised), refcount 1. Aborts on OOM. */
struct rbuf *rbuf_new(size_t len);
/* New buffer holding a copy of p[0..len). */
struct rbuf *rbuf_copy(const void *p, size_t len);
static inline struct rbuf *rbuf_ref(struct rbuf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
/* Drop one reference; frees on the last. NULL is ignored. */
void rbuf_unref(struct rbuf *b);

/* malloc/realloc/calloc that abort on failure (chatd's OOM policy). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);

#endif
