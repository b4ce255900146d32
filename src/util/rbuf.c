#include "util/rbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *xstrndup(const char *s, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

struct rbuf *rbuf_new(size_t len)
{
    struct rbuf *b = xmalloc(sizeof(*b) + len);
    atomic_init(&b->refs, 1);
    b->len = (uint32_t)len;
    return b;
}

struct rbuf *rbuf_copy(const void *p, size_t len)
{
    struct rbuf *b = rbuf_new(len);
    if (len) memcpy(b->data, p, len);
    return b;
}

void rbuf_unref(struct rbuf *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) free(b);
}
