/* jsonw.h - a tiny append-only JSON text builder for hot paths (fanout frames are built once per
 * event without a DOM). The buffer reserves WS_MAX_HEADER bytes in front so a WebSocket header
 * can be prepended without copying. Aborts on OOM (chatd's policy). */
#ifndef CD_JSONW_H
#define CD_JSONW_H

#include <stddef.h>
#include <stdint.h>

#define JSONW_HEADROOM 10

struct jsonw {
    char *buf;  /* buf[JSONW_HEADROOM..len) is the text */
    size_t len; /* includes the headroom */
    size_t cap;
};

void jsonw_init(struct jsonw *w, size_t hint);
void jsonw_free(struct jsonw *w);
void jsonw_raw(struct jsonw *w, const char *s, size_t n);
void jsonw_lit(struct jsonw *w, const char *s); /* NUL-terminated raw text */
/* "s" with JSON escaping (input must be valid UTF-8; control characters become \u00XX). */
void jsonw_str(struct jsonw *w, const char *s, size_t n);
void jsonw_int(struct jsonw *w, int64_t v);
/* ,"key": (comma unless first member) */
void jsonw_key(struct jsonw *w, const char *key, int first);
/* "x_<n>" id string */
void jsonw_id(struct jsonw *w, char kind, int64_t n);
/* "m_<room>_<seq>", a message id string */
void jsonw_msg_id(struct jsonw *w, int64_t room, int64_t seq);
static inline const char *jsonw_text(const struct jsonw *w)
{
    return w->buf + JSONW_HEADROOM;
}
static inline size_t jsonw_text_len(const struct jsonw *w)
{
    return w->len - JSONW_HEADROOM;
}

#endif
