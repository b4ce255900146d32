/* msgops.h - the rules of message operations (edits, deletes, reactions, replies and threads)
 * and of receipts (delivered watermarks, read receipts).
 *
 * Edits, deletes and reactions are entries of the room's log (EV_EDIT, EV_DELETE, EV_REACTION):
 * they take the next seq like messages, reach every device through the same fanout, cluster
 * bus and `sync` as messages do, and the target message's derived state (current body,
 * edited_at, deleted, reactions, thread counts) moves in the same transaction as the entry, so a
 * history page is one query. Like chat_send, each function runs on the storage writer thread
 * inside the job's savepoint and appends what it commits to `out`.
 *
 * Errors (util/status.h): CD_E_NOT_FOUND (no such room, or no message at that seq),
 * CD_E_NOT_MEMBER, CD_E_FORBIDDEN (not the author; delete: nor an admin/owner),
 * CD_E_GONE (the message was deleted), CD_E_INVALID_FIELD, CD_E_CONFLICT (client_msg_id already
 * used in this room by another kind of request), CD_E_IO. */
#ifndef CD_MSGOPS_H
#define CD_MSGOPS_H

#include <stddef.h>
#include <stdint.h>

#include "chat/rooms.h"
#include "store/store.h"

#define CHAT_EMOJI_MAX_BYTES  32  /* a reaction's emoji: UTF-8 bytes */
#define CHAT_EMOJI_MAX_CPS    10  /* ... and code points (a ZWJ family sequence is 7) */
#define CHAT_RECEIPT_ROOM_MAX 100 /* read receipts are shared in rooms of at most this many */
#define CHAT_DELIVERED_BATCH  100 /* (room, seq) pairs in one `delivered` request */

/* 1 when s is an acceptable reaction: 1-CHAT_EMOJI_MAX_BYTES bytes of valid UTF-8 (shortest
 * form, no surrogates), 1-CHAT_EMOJI_MAX_CPS code points, at least one of them non-ASCII, no
 * ASCII but the keycap bases 0-9 # *, no C0/C1 control, space or line separator. Pure. */
int chat_emoji_valid(const char *s, size_t len);

/* An edit, delete or reaction by user on the message at `target` in room. */
struct chat_op {
    int kind; /* EV_EDIT, EV_DELETE or EV_REACTION */
    int64_t room, user, target;
    const char *body; /* EV_EDIT: the new text (the caller checked its size) */
    size_t body_len;
    const char *emoji; /* EV_REACTION: checked with chat_emoji_valid */
    size_t emoji_len;
    int on;           /* EV_REACTION: 1 add, 0 remove */
    const char *cmid; /* optional client_msg_id (NULL: none); a resend answers the original */
    size_t cmid_len;
};

/* Apply op: append its entry and move the target's state. res->seq is the entry's seq (0 when a
 * reaction changed nothing: res->changed 0, no entry); res->duplicate when op.cmid was used
 * before by the same kind of request in this room (res->seq is then the original's). */
int chat_msg_op(const struct store_ops *ops, struct store_conn *sc, const struct chat_op *op,
                int64_t now_ms, struct chat_out *out, struct chat_sent *res);

/* chat_send of a message that replies to reply_to and/or belongs to the thread of root `thread`
 * (0 = none): both must be messages of the room; the root must not be deleted nor itself in a
 * thread. Checked before the append; the links and the root's reply_count/last_reply_seq are
 * stored in the same savepoint. */
int chat_send_linked(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                     int64_t sender, const char *body, size_t body_len, const char *cmid,
                     size_t cmid_len, int64_t reply_to, int64_t thread, int64_t now_ms,
                     struct chat_out *out, struct chat_sent *res);

/* Delivered: device `session` of user has received room's log up to seq (monotonic, clamped to
 * the room's last seq): *out gets the watermark. Members only. */
int chat_delivered(const struct store_ops *ops, struct store_conn *sc, int64_t room, int64_t user,
                   int64_t session, int64_t seq, int64_t *out);

/* After a read marker moved from `old` to `marker`: a FAN_RECEIPT event
 * {"type":"receipt","room","user","seq"} for the room's other members, unless the user turned
 * sharing off or the room has more than CHAT_RECEIPT_ROOM_MAX members. */
int chat_read_receipt(const struct store_ops *ops, struct store_conn *sc, int64_t room,
                      int64_t user, int64_t old, int64_t marker, struct chat_out *out);

#endif
