/* people.h - the rules of people (issue 14 part 5): opaque user ids, profile fields, finding
 * users by prefix, blocks, account deletion.
 *
 * Validation and id functions are pure (any thread). The *_exec functions run on the storage
 * writer thread inside a job's savepoint, like chat/rooms.h, and append the log entries they
 * commit to `out`. The block set is a process-wide in-memory copy of the blocks table that
 * presence delivery consults on the I/O threads (hub.c); it is filled at start and kept by the
 * block/unblock jobs of this node (see people_blocks_note).
 *
 * Errors (util/status.h): CD_E_NOT_FOUND (no such user), CD_E_INVALID_FIELD, CD_E_IO. */
#ifndef CD_PEOPLE_H
#define CD_PEOPLE_H

#include <stddef.h>
#include <stdint.h>

#include "chat/rooms.h"
#include "store/store.h"

#define PEOPLE_PREFIX_MIN 2 /* bytes of a GET /v1/users?prefix= */
#define PEOPLE_ID_MIN     (INT64_C(1) << 32)
#define PEOPLE_ID_MAX     (INT64_C(1) << 53) /* exclusive; ids stay exact as JSON numbers too */

/* A new user's id: uniformly random in [PEOPLE_ID_MIN, PEOPLE_ID_MAX), so consecutive
 * registrations get unrelated ids that say nothing about how many users exist. Users created
 * before (small sequential ids) keep theirs: ids are formatted and parsed the same way. */
int64_t people_new_user_id(void);
/* Insert a user under a fresh opaque id (a drawn id that is taken is drawn again, a few times):
 * CD_OK with *id, CD_E_USERNAME_TAKEN, or another store status. Writer thread (register, the
 * admin CLI). */
int people_user_create(const struct store_ops *ops, struct store_conn *sc, const char *username,
                       const char *pwhash, int64_t now_ms, int64_t *id);

/* display_name / status_text: valid UTF-8, at most max bytes, no control characters (C0, DEL,
 * C1). 1 when valid. */
int people_text_valid(const char *s, size_t len, size_t max);
/* avatar: "" (none) or the id of an upload as clients see it, "att_" + 32 lowercase hex digits
 * (chat/attach.h). 1 when the format is valid. */
int people_avatar_valid(const char *s, size_t len);
/* Writer or reader thread: a valid non-empty avatar id names an upload of user's whose content
 * type is an image (image/...): CD_OK; CD_E_NOT_FOUND when there is no such upload or it is
 * another user's (an avatar is always the user's own upload); CD_E_INVALID_FIELD when it is
 * not an image; a store error. *why gets a static message for the error answer. Avatars are
 * readable by every user (store_ops.attachment_readable) and never expire while set. */
int people_avatar_check(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                        const char *avatar, const char **why);
/* The username range of a prefix: lo = prefix, hi = prefix with its last byte + 1 (so
 * lo <= username < hi is "starts with prefix"). 0 unless the prefix is PEOPLE_PREFIX_MIN to
 * STORE_USERNAME_MAX characters of the username alphabet. lo and hi hold
 * STORE_USERNAME_MAX + 1 bytes. */
int people_prefix_range(const char *prefix, size_t len, char *lo, char *hi);

/* The in-memory block set (thread-safe). note: on = 1 adds (user blocks other), 0 removes;
 * forget_user drops every pair with user (account deletion). people_blocks is O(1). */
void people_blocks_note(int64_t user, int64_t other, int on);
void people_blocks_forget_user(int64_t user);
int people_blocks(int64_t user, int64_t other);
/* Load every stored block (at start, before connections). */
int people_blocks_load(const struct store_ops *ops, struct store_conn *sc);

/* The users one user blocks, read once per request so that the reads returning messages to
 * that user (REST history and thread history, sync replays and gap fills, search) can mark
 * their messages "blocked":true. At most PEOPLE_BLOCKLIST_MAX blocks count (the first in
 * user id order); ids ascending. */
#define PEOPLE_BLOCKLIST_MAX 10000
struct people_blocklist {
    int64_t *ids; /* malloc'ed, ascending; NULL when n == 0 */
    size_t n;
};
/* One store read (pair_list on sc, any thread's read connection). On a store error the list
 * is left empty (nothing is marked) and the error returned. Free with people_blocklist_free. */
int people_blocklist_read(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                          struct people_blocklist *bl);
/* 1 when other is in the list: O(log n). */
int people_blocklist_has(const struct people_blocklist *bl, int64_t other);
/* 1 when the entry ev, returned to the list's owner, is a message to mark "blocked". */
int people_blocklist_marks(const struct people_blocklist *bl, const struct store_event *ev);
void people_blocklist_free(struct people_blocklist *bl);

/* Writer thread: user blocks other (idempotent): other can no longer open or write to their
 * direct room, add user to rooms, or see user's presence. CD_E_NOT_FOUND: no such live user;
 * CD_E_INVALID_FIELD: oneself. */
int people_block_exec(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                      int64_t other, int64_t now_ms);

/* A disabled account's password hash starts with this byte: no password matches it (libsodium
 * refuses the string before any hashing), and the hash after it is the one enabling restores.
 * (`chatd user disable` of older versions wrote "!disabled": disabled too.) */
#define PEOPLE_DISABLED_MARK '!'
/* 1 when u is disabled. */
int people_user_disabled(const struct store_user *u);
/* Writer thread: disable (enabled = 0) or enable (1) user's account; idempotent. Disabling
 * marks the password hash (PEOPLE_DISABLED_MARK) and revokes every live session, their ids
 * appended to *sids (malloc'ed, *nsids entries; the caller ends them after the commit, see
 * app_session_end, so open WebSockets close). Enabling removes the mark (the old password
 * works again; an account without one stays password-less). The admin CLI (`chatd user
 * disable`) and the server API (PATCH /v1/server/users/{id}) both go through here.
 * CD_E_NOT_FOUND: no such user. */
int people_user_set_enabled(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                            int enabled, int64_t now_ms, int64_t **sids, size_t *nsids);

/* Writer thread: delete user's account. Every membership is dropped with a "leave" entry (owned
 * group rooms are handed over, see chat_member_drop); every live session is revoked and its id
 * appended to *sids (malloc'ed, *nsids entries; the caller ends them after the commit); then
 * the account row is erased (store_ops.user_erase). Messages stay, their sender id now names a
 * deleted user. */
int people_account_delete(const struct store_ops *ops, struct store_conn *sc, int64_t user,
                          int64_t now_ms, struct chat_out *out, int64_t **sids, size_t *nsids);

#endif
