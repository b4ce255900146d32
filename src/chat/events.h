/* events.h - the JSON shapes of chat events and their one-time encoding into WebSocket frames.
 * Pure functions (no server state); safe on any thread. */
#ifndef CD_EVENTS_H
#define CD_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/jsonw.h"
#include "util/rbuf.h"

/* The text of a log entry as clients see it: for EV_MESSAGE
 * {"type":"message","room","seq","msg_id","sender","body","ts","client_msg_id"}, the entry's
 * extra members (store_event.extra: "attachments"), if any, plus, when set, "reply_to", "thread"
 * and the derived state read by messages_page ("edited_at", "deleted", "reply_count",
 * "last_reply_seq", "reactions", "state_seq"); for other entries
 * {"type":"member"|"room"|"edit"|"delete"|"reaction","room","seq"} followed by the stored
 * details (below). */
void events_log_json(struct jsonw *w, const struct store_event *ev);
/* A complete unmasked WebSocket text frame holding w's text (one copy). */
struct rbuf *events_frame(const struct jsonw *w);
/* A frame for a log entry: events_log_json + events_frame. */
struct rbuf *events_log_frame(const struct store_event *ev);
/* events_log_json, plus "blocked":true when `blocked` (a message from a user the reader
 * blocks; only reads for one user mark, never the shared live frames). */
void events_log_json_mark(struct jsonw *w, const struct store_event *ev, int blocked);
/* events_log_frame with the mark (a frame for one connection: replays). */
struct rbuf *events_log_frame_mark(const struct store_event *ev, int blocked);

/* Stored details of a member entry (no seq: the store assigns it at the append):
 * {"user","action","role","by","member_count","ts"}. action: "join", "leave", "kick", "role". */
void events_member_json(struct jsonw *w, int64_t user, const char *action, int role, int64_t by,
                        int64_t member_count, int64_t ts);
/* Stored details of a room entry: {"name","topic","by","ts"}. */
void events_room_json(struct jsonw *w, const char *name, const char *topic, int64_t by, int64_t ts);

const char *events_role_name(int role);
int events_role_parse(const char *s, int *role);

#endif
