/* attach.h - the rules of attachments: ids, file names, content types, ranges, and what a
 * message that references uploads stores and shows.
 *
 * An upload is a blob (src/blob) plus a row (store_ops.attachment_insert). A send references at
 * most CHAT_ATTACH_MAX of the sender's own uploads; the message entry then carries their
 * metadata as "attachments":[{"id","size","content_type","name","sha256"}] (kept beside the
 * log in event_extras, so history and sync show it too). Pure functions except the two
 * chat_attach_* ones, which run on the writer thread inside the send's job.
 */
#ifndef CD_ATTACH_H
#define CD_ATTACH_H

#include <stddef.h>
#include <stdint.h>

#include "chat/rooms.h"
#include "store/store.h"
#include "util/jsonw.h"

#define CHAT_ATTACH_MAX   10                     /* attachments referenced by one message */
#define ATTACH_EXT_ID_LEN (4 + STORE_ATT_ID_LEN) /* "att_" + 32 hex digits */
#define ATTACH_TYPE_LIST_DEFAULT                                                                   \
    "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain"

/* The attachments of one send (ids without the "att_" prefix). */
struct chat_attach {
    int n;
    char ids[CHAT_ATTACH_MAX][STORE_ATT_ID_LEN + 1];
};

/* A new random id (32 lowercase hex digits, 128 bits from libsodium). */
void attach_id_new(char out[STORE_ATT_ID_LEN + 1]);
/* "att_<32 hex>" -> the id; 1 on success, 0 when malformed. */
int attach_id_parse(const char *s, size_t len, char out[STORE_ATT_ID_LEN + 1]);

/* A file name as clients may give it -> one safe to store and show: only the last path
 * segment (after '/' or '\\'), C0/C1 control characters, DEL, '"' and invalid UTF-8 removed,
 * leading/trailing spaces and dots trimmed, cut to at most STORE_ATT_NAME_MAX bytes on a
 * character boundary. Returns the length written to out (cap > STORE_ATT_NAME_MAX); 0 when
 * nothing is left (the caller then uses "file"). */
size_t attach_name_sanitize(const char *in, size_t len, char *out, size_t cap);

/* The media type of a Content-Type header value (before ';', trimmed, lowercased) into out,
 * if it is one of the comma-separated list (entries compared case-insensitively; "type/ *"
 * accepts a whole type). Returns 1 when allowed, 0 otherwise (out then holds the type, or ""
 * when it is malformed or too long). */
int attach_type_allowed(const char *list, const char *ctype, size_t len, char *out, size_t cap);

/* Content-Disposition for a download: attachment; filename="<ASCII fallback>";
 * filename*=UTF-8''<percent-encoded name> (RFC 6266 / RFC 8187). */
void attach_disposition(const char *name, char *out, size_t cap);

/* A Range header for a blob of size bytes. Only a single "bytes=a-b", "bytes=a-" or
 * "bytes=-n" range is honoured. Returns 1 (a satisfiable range: *start..*end inclusive), 0 (no
 * usable range: serve the whole blob, as RFC 9110 allows for what it does not understand) or
 * -1 (416: the range starts past the end). */
int attach_range(const char *h, size_t len, uint64_t size, uint64_t *start, uint64_t *end);

/* {"id","size","content_type","name","sha256"} of an attachment. */
void attach_json(struct jsonw *w, const struct store_attachment *a);

/* Writer thread, before the message is appended: every id exists and was uploaded by sender
 * (CD_E_NOT_FOUND for an unknown id, CD_E_FORBIDDEN for another user's upload, both changing
 * nothing); extra gets "attachments":[...] for the entry. */
int chat_attach_check(const struct store_ops *ops, struct store_conn *sc, int64_t sender,
                      const struct chat_attach *a, struct jsonw *extra);
/* Writer thread, after the append of message ev (ev->extra set to the check's text): records
 * the references and the extra members, and re-encodes the message's frame in out (its last
 * event) with them. */
int chat_attach_commit(const struct store_ops *ops, struct store_conn *sc,
                       const struct store_event *ev, const struct chat_attach *a,
                       struct chat_out *out);

#endif
