/* store_json.h - the JSON text of stored entries, shared by the fanout (chat/events.c) and the
 * outbox readers of both backends, so the stream and the WebSocket carry the same shapes. */
#ifndef CD_STORE_JSON_H
#define CD_STORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/jsonw.h"

/* The text of a log entry as clients see it: for EV_MESSAGE
 * {"type":"message","room","seq","msg_id","sender","body","ts","client_msg_id"} with the extra
 * members (attachments), reply_to, thread and the derived state messages_page reads; for member,
 * room, edit, delete and reaction entries {"type","room","seq"} followed by the stored details. */
void store_event_json(struct jsonw *w, const struct store_event *ev);
/* "u_<id>", or "system" for id 0 (the server API acting as the system, chat/rooms.h). */
void store_json_user_ref(struct jsonw *w, int64_t user);
/* The opening of a message object, {"type":"message","room","seq","msg_id","sender" with no
 * closing brace: the caller adds its own members (history: body, ts, ...; search: ts, snippet). */
void store_json_message_head(struct jsonw *w, int64_t room, int64_t seq, int64_t sender);

/* Internal to the backends: the outbox's non-log events, built at the write: their JSON into w
 * and their event id into id. */
void store__user_created_json(struct jsonw *w, char id[32], int64_t user, const char *username,
                              int64_t ts);
void store__room_created_json(struct jsonw *w, char id[32], const struct store_room *r);
/* The id of a log entry's outbox event into buf (>= 48 bytes); returns its length. */
size_t store__log_event_id(char *buf, int kind, int64_t room, int64_t seq);
/* The type name of a log entry's outbox event. */
const char *store__log_event_type(int kind);

#endif
