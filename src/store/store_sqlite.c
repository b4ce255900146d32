/* store_sqlite.c - the SQLite backend: WAL, numbered migrations, cached prepared statements. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_sqlite_walbuf.h"
#include "store/store_sqlite_schema.h"
#include "store/store_json.h"
#include "util/jsonw.h"
#include "util/imap.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

/* Page size of a new database. A group commit writes every page it dirtied to the WAL, and a
 * batch of messages touches one page per active room and per active sender (the idempotency
 * index): smaller pages mean less WAL per commit. 2 KiB measured best for 100-byte messages
 * (4 KiB: twice the ack p99 at 30,000 msgs/s; 512 B: rows overflow). Existing files keep theirs. */
#define STORE_PAGE_SIZE "2048"

struct store {
    char *path;
    int sync_full;
};

/* A room's last seq is its log's last entry: one index seek, never a counter to update. */
#define ROOM_LAST_SEQ_OF(room)                                                                     \
    "coalesce((SELECT e.seq FROM events e WHERE e.room_id = " room                                 \
    " ORDER BY e.seq DESC LIMIT 1), 0)"
/* Column lists shared by several statements; room_row(), member_row() and event_row() read them
 * in this order. */
#define ROOM_COLS                                                                                  \
    "r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, " ROOM_LAST_SEQ_OF(                \
        "r.id") ", r.member_count, r.is_public, r.state"
#define ROOM_NCOLS  10
#define MEMBER_COLS "m.room_id, m.user_id, m.role, m.joined_seq, m.read_seq"
#define EVENT_COLS                                                                                 \
    "room_id, seq, kind, sender, ts, client_msg_id, body, (SELECT x.extra FROM event_extras x "    \
    "WHERE x.room_id = events.room_id AND x.seq = events.seq)"
#define WEBHOOK_COLS "id, kind, url, secret, types, created_at"
#define DELIVERY_COLS                                                                              \
    "id, endpoint_id, event_id, body, state, attempts, next_at, created_at, last_error"
#define ATT_COLS "id, owner, size, content_type, name, sha256, created_at"
#define PROFILE_COLS                                                                               \
    "u.id, u.username, u.display_name, u.avatar, u.status_text, u.created_at, u.last_seen, "       \
    "u.deleted_at"
#define PAIR_SQL(X, T)                                                                             \
    X(T##_PUT, "INSERT OR IGNORE INTO " #T "(user_id, other_id, created_at) VALUES (?1, ?2, ?3)")  \
    X(T##_DEL, "DELETE FROM " #T " WHERE user_id = ?1 AND other_id = ?2")                          \
    X(T##_LIST, "SELECT " PROFILE_COLS ", p.created_at FROM " #T " p JOIN users u "                \
                "ON u.id = p.other_id WHERE p.user_id = ?1 AND p.other_id > ?2 "                   \
                "ORDER BY p.other_id LIMIT ?3")                                                    \
    X(T##_EXISTS, "SELECT EXISTS (SELECT 1 FROM " #T " WHERE user_id = ?1 AND other_id = ?2)")

/* A page of the log with each message's derived state: one statement, the reactions of each
 * row aggregated by a correlated subquery (one seek into reactions per row). ?5 is the viewer. */
#define MSG_PAGE(where, order)                                                                     \
    "SELECT e.room_id, e.seq, e.kind, e.sender, e.ts, e.client_msg_id, e.body, (SELECT x.extra "   \
    "FROM event_extras x WHERE x.room_id = e.room_id AND x.seq = e.seq), "                         \
    "coalesce(s.reply_to, 0), coalesce(s.thread, 0), coalesce(s.edited_at, 0), "                   \
    "coalesce(s.deleted, 0), coalesce(s.reply_count, 0), coalesce(s.last_reply_seq, 0), "          \
    "coalesce(s.state_seq, 0), (SELECT group_concat(x, char(10)) FROM (SELECT r.emoji || char(9) " \
    "|| count(*) || char(9) || max(r.user_id = ?5) AS x FROM reactions r WHERE r.room_id = "       \
    "e.room_id AND r.seq = e.seq GROUP BY r.emoji ORDER BY min(r.at), r.emoji)) "                  \
    "FROM events e LEFT JOIN msg_state s ON s.room_id = e.room_id AND s.seq = e.seq WHERE " where  \
    " ORDER BY " order " LIMIT ?3"

/* Every statement the backend runs, prepared once per connection on first use. A `LIMIT ?` bound
 * to a negative number means no limit (SQLite's rule). */
#define SQL_MAP(X)                                                                                 \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                    \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(SAVEPOINT, "SAVEPOINT job")                                                                  \
    X(RELEASE, "RELEASE job")                                                                      \
    X(ROLLBACK_TO, "ROLLBACK TO job")                                                              \
    X(USER_INSERT, "INSERT INTO users(username, pwhash, created_at) VALUES (?1, ?2, ?3)")          \
    X(USER_GET, "SELECT id, username, pwhash, created_at, last_seen FROM users WHERE id = ?1")     \
    X(USER_BY_NAME,                                                                                \
      "SELECT id, username, pwhash, created_at, last_seen FROM users WHERE username = ?1")         \
    X(USER_LAST_SEEN, "UPDATE users SET last_seen = ?2 WHERE id = ?1")                             \
    X(SESSION_INSERT, "INSERT INTO sessions(user_id, created_at) VALUES (?1, ?2)")                 \
    X(SESSION_INSERT_ID, "INSERT INTO sessions(id, user_id, created_at) VALUES (?1, ?2, ?3)")      \
    X(SESSION_REVOKE, "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")  \
    X(SESSIONS_REVOKED_SINCE, "SELECT id, revoked_at FROM sessions WHERE revoked_at >= ?1")        \
    X(REFRESH_INSERT, "INSERT INTO refresh_tokens(session_id, user_id, hash, created_at, "         \
                      "expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")                                   \
    X(REFRESH_BY_HASH, "SELECT r.id, r.session_id, r.user_id, r.created_at, r.expires_at, "        \
                       "coalesce(r.used_at, 0), s.revoked_at IS NOT NULL FROM refresh_tokens r "   \
                       "JOIN sessions s ON s.id = r.session_id WHERE r.hash = ?1")                 \
    X(REFRESH_USED, "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1")                        \
    X(ROOM_INSERT, "INSERT INTO rooms(kind, name, topic, created_by, created_at, dm_key) "         \
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                                              \
    X(ROOM_GET, "SELECT " ROOM_COLS " FROM rooms r WHERE r.id = ?1")                               \
    X(ROOM_BY_DM_KEY, "SELECT id FROM rooms WHERE dm_key = ?1")                                    \
    X(ROOM_UPDATE, "UPDATE rooms SET name = coalesce(?2, name), topic = coalesce(?3, topic) "      \
                   "WHERE id = ?1")                                                                \
    X(ROOM_COUNT_ADD, "UPDATE rooms SET member_count = member_count + ?2 WHERE id = ?1")           \
    X(MEMBER_GET, "SELECT " MEMBER_COLS " FROM members m WHERE m.room_id = ?1 AND m.user_id = ?2") \
    X(MEMBER_INSERT, "INSERT INTO members(room_id, user_id, role, joined_seq, read_seq) "          \
                     "VALUES (?1, ?2, ?3, ?4, ?5)")                                                \
    X(MEMBER_SET_ROLE, "UPDATE members SET role = ?3 WHERE room_id = ?1 AND user_id = ?2")         \
    X(MEMBER_DELETE, "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2")                    \
    X(MEMBERS_LIST, "SELECT " MEMBER_COLS " FROM members m WHERE m.room_id = ?1 "                  \
                    "ORDER BY m.user_id LIMIT ?2")                                                 \
    X(ROOMS_OF_USER, "SELECT " ROOM_COLS ", " MEMBER_COLS " FROM members m "                       \
                     "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ?1 AND m.room_id > ?2 "   \
                     "ORDER BY m.room_id LIMIT ?3")                                                \
    X(USER_ROOM_COUNTS, "SELECT count(*), coalesce(sum(m.role = 2), 0) FROM members m "            \
                        "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ?1 AND r.kind = 0")    \
    X(USERS_SHARE, "SELECT EXISTS (SELECT 1 FROM members a JOIN members b "                        \
                   "ON b.room_id = a.room_id AND b.user_id = ?2 WHERE a.user_id = ?1)")            \
    X(EVENT_INSERT,                                                                                \
      "INSERT OR IGNORE INTO events(room_id, seq, kind, sender, ts, client_msg_id, body) "         \
      "VALUES (?1, ?7, ?2, ?3, ?4, ?5, ?6)")                                                       \
    X(ROOM_LAST_SEQ, "SELECT " ROOM_LAST_SEQ_OF("r.id") " FROM rooms r WHERE r.id = ?1")           \
    X(EVENT_BY_CLIENT_ID, "SELECT " EVENT_COLS " FROM events "                                     \
                          "WHERE room_id = ?3 AND sender = ?1 AND client_msg_id = ?2")             \
    X(EVENTS_ASC, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "             \
                  "ORDER BY seq LIMIT ?3")                                                         \
    X(EVENTS_DESC, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "            \
                   "ORDER BY seq DESC LIMIT ?3")                                                   \
    X(EVENTS_ASC_BEFORE, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "      \
                         "AND seq < ?4 ORDER BY seq LIMIT ?3")                                     \
    X(EVENTS_DESC_BEFORE, "SELECT " EVENT_COLS " FROM events WHERE room_id = ?1 AND seq > ?2 "     \
                          "AND seq < ?4 ORDER BY seq DESC LIMIT ?3")                               \
    X(READ_MARK, "UPDATE members SET read_seq = max(read_seq, min(?3, " ROOM_LAST_SEQ_OF(          \
                     "?1") ")) WHERE room_id = ?1 AND user_id = ?2 RETURNING read_seq")            \
    X(UNREAD_COUNT, "SELECT (SELECT count(*) FROM events WHERE room_id = ?1 AND seq > ?3 "         \
                    "AND seq <= ?3 + ?5 AND kind = ?4 AND sender != ?2), EXISTS (SELECT 1 FROM "   \
                    "events WHERE room_id = ?1 AND seq > ?3 + ?5)")                                \
    X(OUTBOX_OTHER, "INSERT INTO outbox(room_id, seq, type, eid, ts, body) "                       \
                    "VALUES (?1, 0, ?2, ?3, ?4, ?5)")                                              \
    X(OUTBOX_PAGE, "SELECT o.pos, o.room_id, o.seq, o.type, o.eid, o.ts, o.body, e.kind, "         \
                   "e.sender, e.ts, e.client_msg_id, e.body, (SELECT x.extra FROM event_extras x " \
                   "WHERE x.room_id = o.room_id AND x.seq = o.seq), coalesce(s.reply_to, 0), "     \
                   "coalesce(s.thread, 0) FROM outbox o LEFT JOIN events e ON o.seq > 0 AND "      \
                   "e.room_id = o.room_id AND e.seq = o.seq LEFT JOIN msg_state s ON o.seq > 0 "   \
                   "AND s.room_id = o.room_id AND s.seq = o.seq WHERE o.pos > ?1 "                 \
                   "ORDER BY o.pos LIMIT ?2")                                                      \
    X(CONSUMER_GET, "SELECT pos FROM outbox_consumers WHERE name = ?1")                            \
    X(CONSUMER_PUT, "INSERT INTO outbox_consumers(name, pos) VALUES (?1, ?2) ON CONFLICT(name) "   \
                    "DO UPDATE SET pos = max(pos, excluded.pos)")                                  \
    X(OUTBOX_HEAD, "SELECT coalesce(max(pos), 0) FROM outbox")                                     \
    X(APIKEY_INSERT, "INSERT INTO api_keys(name, hash, created_at) VALUES (?1, ?2, ?3)")           \
    X(APIKEY_BY_HASH, "SELECT id, name, created_at, coalesce(revoked_at, 0) FROM api_keys "        \
                      "WHERE hash = ?1")                                                           \
    X(APIKEY_LIST, "SELECT id, name, created_at, coalesce(revoked_at, 0) FROM api_keys "           \
                   "ORDER BY id")                                                                  \
    X(APIKEY_REVOKE, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")   \
    X(WEBHOOK_INSERT, "INSERT INTO webhooks(kind, url, secret, types, created_at) "                \
                      "VALUES (?1, ?2, ?3, ?4, ?5)")                                               \
    X(WEBHOOK_DELETE, "DELETE FROM webhooks WHERE id = ?1")                                        \
    X(WEBHOOK_GET, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1")                          \
    X(WEBHOOKS_LIST, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id")                          \
    X(DELIVERY_INSERT, "INSERT OR IGNORE INTO deliveries(endpoint_id, event_id, body, next_at, "   \
                       "created_at) VALUES (?1, ?2, ?3, ?4, ?5)")                                  \
    X(DELIVERIES_DUE, "SELECT " DELIVERY_COLS " FROM deliveries WHERE state = 0 AND "              \
                      "next_at <= ?1 AND id > ?2 ORDER BY next_at, id LIMIT ?3")                   \
    X(DELIVERIES_STATE, "SELECT " DELIVERY_COLS " FROM deliveries WHERE state = ?1 AND id > ?2 "   \
                        "ORDER BY id LIMIT ?3")                                                    \
    X(DELIVERY_UPDATE, "UPDATE deliveries SET state = ?2, attempts = ?3, next_at = ?4, "           \
                       "last_error = ?5 WHERE id = ?1")                                            \
    X(DELIVERY_CLAIM, "UPDATE deliveries SET next_at = ?3 WHERE id = ?1 AND state = 0 AND "        \
                      "next_at <= ?2")                                                             \
    X(DELIVERY_REPLAY, "UPDATE deliveries SET state = 0, attempts = 0, next_at = ?2 "              \
                       "WHERE id = ?1 AND state = 2")                                              \
    X(MUTE_PUT, "INSERT INTO room_settings(room_id, user_id, muted) VALUES (?1, ?2, ?3) "          \
                "ON CONFLICT (room_id, user_id) DO UPDATE SET muted = excluded.muted")             \
    X(MUTE_GET, "SELECT muted FROM room_settings WHERE room_id = ?1 AND user_id = ?2")             \
    X(ATT_INSERT, "INSERT INTO attachments(" ATT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")     \
    X(ATT_GET, "SELECT " ATT_COLS " FROM attachments WHERE id = ?1")                               \
    X(ATT_READABLE, "SELECT EXISTS (SELECT 1 FROM attachments WHERE id = ?1 AND owner = ?2) "      \
                    "OR EXISTS (SELECT 1 FROM attachment_refs r JOIN members m "                   \
                    "ON m.room_id = r.room_id AND m.user_id = ?2 "                                 \
                    "WHERE r.att_id = ?1 AND r.seq > m.joined_seq AND NOT EXISTS (SELECT 1 "       \
                    "FROM rooms d WHERE d.id = r.room_id AND d.state = 2)) "                       \
                    "OR EXISTS (SELECT 1 FROM users u WHERE u.avatar = 'att_' || ?1 "              \
                    "AND u.avatar <> '')")                                                         \
    X(ATT_REF, "INSERT OR IGNORE INTO attachment_refs(att_id, room_id, seq) VALUES (?1, ?2, ?3)")  \
    X(EXTRA_PUT, "INSERT OR REPLACE INTO event_extras(room_id, seq, extra) VALUES (?1, ?2, ?3)")   \
    X(UNREF_REFS, "DELETE FROM attachment_refs WHERE room_id = ?1 AND seq = ?2")                   \
    X(UNREF_EXTRA, "DELETE FROM event_extras WHERE room_id = ?1 AND seq = ?2")                     \
    X(ATT_EXPIRE, "DELETE FROM attachments WHERE id IN (SELECT a.id FROM attachments a "           \
                  "WHERE a.created_at < ?1 AND NOT EXISTS (SELECT 1 FROM attachment_refs r "       \
                  "WHERE r.att_id = a.id) AND NOT EXISTS (SELECT 1 FROM users u "                  \
                  "WHERE u.avatar = 'att_' || a.id AND u.avatar <> '') LIMIT ?2) RETURNING id")    \
    X(SEARCH_PUT, "INSERT OR REPLACE INTO msg_search(rowid, body, room_id, seq) "                  \
                  "SELECT id, ?3, ?1, ?2 FROM events WHERE room_id = ?1 AND seq = ?2")             \
    X(SEARCH_DEL, "INSERT OR REPLACE INTO msg_search(rowid, body, room_id, seq) "                  \
                  "SELECT id, '', room_id, seq FROM events WHERE room_id = ?1 AND seq = ?2")       \
    X(SEARCH_POS, "SELECT id FROM search_pos")                                                     \
    X(SEARCH_SCAN_END, "SELECT max(id), count(*) FROM (SELECT id FROM events WHERE id > ?1 "       \
                       "ORDER BY id LIMIT ?2)")                                                    \
    X(SEARCH_LOG, "INSERT INTO msg_search(rowid, body, room_id, seq) "                             \
                  "SELECT e.id, e.body, e.room_id, e.seq FROM events e WHERE e.id > ?1 "           \
                  "AND e.id <= ?2 AND e.kind = 0 AND NOT EXISTS "                                  \
                  "(SELECT 1 FROM msg_search s WHERE s.rowid = e.id)")                             \
    X(SEARCH_POS_SET, "UPDATE search_pos SET id = ?1")                                             \
    X(SEARCH, "SELECT s.room_id, s.seq, e.sender, e.ts, s.rowid, "                                 \
              "snippet(msg_search, 0, char(1), char(2), '...', 24) "                               \
              "FROM msg_search s JOIN members m ON m.room_id = s.room_id AND m.user_id = ?1 "      \
              "JOIN events e ON e.id = s.rowid "                                                   \
              "WHERE msg_search MATCH ?2 AND s.rowid < ?3 AND s.seq > m.joined_seq "               \
              "AND (?4 = 0 OR s.room_id = ?4) AND NOT EXISTS (SELECT 1 FROM rooms d "              \
              "WHERE d.id = s.room_id AND d.state = 2) ORDER BY s.rowid DESC LIMIT ?5")            \
    X(MSG_GET, "SELECT e.sender, e.kind, coalesce(s.deleted, 0), coalesce(s.thread, 0) "           \
               "FROM events e LEFT JOIN msg_state s ON s.room_id = e.room_id AND s.seq = e.seq "   \
               "WHERE e.room_id = ?1 AND e.seq = ?2")                                              \
    X(MSG_STATE_ENSURE, "INSERT OR IGNORE INTO msg_state(room_id, seq) VALUES (?1, ?2)")           \
    X(MSG_LINKS, "UPDATE msg_state SET reply_to = nullif(?3, 0), thread = nullif(?4, 0) "          \
                 "WHERE room_id = ?1 AND seq = ?2")                                                \
    X(MSG_ROOT_BUMP, "UPDATE msg_state SET reply_count = reply_count + 1, last_reply_seq = ?3 "    \
                     "WHERE room_id = ?1 AND seq = ?2")                                            \
    X(MSG_SET_BODY, "UPDATE events SET body = ?3 WHERE room_id = ?1 AND seq = ?2")                 \
    X(MSG_EDITED, "UPDATE msg_state SET edited_at = ?3, state_seq = ?4 "                           \
                  "WHERE room_id = ?1 AND seq = ?2")                                               \
    X(MSG_EDIT_ADD, "INSERT INTO msg_edits(room_id, target, seq) VALUES (?1, ?2, ?3)")             \
    X(MSG_ERASE_EDITS, "UPDATE events SET body = ?3 WHERE room_id = ?1 AND seq IN "                \
                       "(SELECT seq FROM msg_edits WHERE room_id = ?1 AND target = ?2)")           \
    X(MSG_DELETED, "UPDATE msg_state SET deleted = 1, state_seq = ?3 "                             \
                   "WHERE room_id = ?1 AND seq = ?2")                                              \
    X(REACTIONS_DROP, "DELETE FROM reactions WHERE room_id = ?1 AND seq = ?2")                     \
    X(REACTION_ON, "INSERT OR IGNORE INTO reactions(room_id, seq, emoji, user_id, at) "            \
                   "VALUES (?1, ?2, ?3, ?4, ?5)")                                                  \
    X(REACTION_OFF, "DELETE FROM reactions WHERE room_id = ?1 AND seq = ?2 AND emoji = ?3 "        \
                    "AND user_id = ?4")                                                            \
    X(MSG_TOUCH, "UPDATE msg_state SET state_seq = ?3 WHERE room_id = ?1 AND seq = ?2")            \
    X(MSGS_ASC, MSG_PAGE("e.room_id = ?1 AND e.seq > ?2 AND e.seq < ?4", "e.seq"))                 \
    X(MSGS_DESC, MSG_PAGE("e.room_id = ?1 AND e.seq > ?2 AND e.seq < ?4", "e.seq DESC"))           \
    X(THREAD_ASC,                                                                                  \
      MSG_PAGE("s.room_id = ?1 AND s.thread = ?6 AND s.seq > ?2 AND s.seq < ?4", "s.seq"))         \
    X(THREAD_DESC,                                                                                 \
      MSG_PAGE("s.room_id = ?1 AND s.thread = ?6 AND s.seq > ?2 AND s.seq < ?4", "s.seq DESC"))    \
    X(DELIVERED_MARK,                                                                              \
      "INSERT INTO delivered(room_id, user_id, session_id, seq) VALUES (?1, ?2, ?3, "              \
      "max(0, min(?4, " ROOM_LAST_SEQ_OF(                                                          \
          "?1") "))) ON CONFLICT (room_id, user_id, session_id) "                                  \
                "DO UPDATE SET seq = max(seq, excluded.seq) RETURNING seq")                        \
    X(RECEIPTS_LIST, "SELECT m.user_id, m.read_seq, coalesce((SELECT min(d.seq) FROM delivered d " \
                     "JOIN sessions ss ON ss.id = d.session_id AND ss.revoked_at IS NULL "         \
                     "WHERE d.room_id = m.room_id AND d.user_id = m.user_id), -1), "               \
                     "coalesce((SELECT share_read_receipts FROM user_settings u WHERE u.user_id "  \
                     "= m.user_id), 1) "                                                           \
                     "FROM members m WHERE m.room_id = ?1 ORDER BY m.user_id LIMIT ?2")            \
    X(SETTINGS_GET, "SELECT share_read_receipts FROM user_settings WHERE user_id = ?1")            \
    X(SETTINGS_PUT,                                                                                \
      "INSERT INTO user_settings(user_id, share_read_receipts) VALUES (?1, ?2) "                   \
      "ON CONFLICT (user_id) DO UPDATE SET share_read_receipts = excluded.share_read_receipts")    \
    X(USER_INSERT_ID,                                                                              \
      "INSERT INTO users(id, username, pwhash, created_at) VALUES (?1, ?2, ?3, ?4)")               \
    X(PROFILE_GET, "SELECT " PROFILE_COLS " FROM users u WHERE u.id = ?1")                         \
    X(PROFILE_SET, "UPDATE users SET display_name = coalesce(?2, display_name), "                  \
                   "avatar = coalesce(?3, avatar), status_text = coalesce(?4, status_text) "       \
                   "WHERE id = ?1 AND deleted_at = 0")                                             \
    X(USERS_BY_PREFIX, "SELECT " PROFILE_COLS " FROM users u WHERE u.username >= ?1 "              \
                       "AND u.username < ?2 AND u.username > ?3 AND u.deleted_at = 0 "             \
                       "ORDER BY u.username LIMIT ?4")                                             \
    X(USER_SET_PWHASH, "UPDATE users SET pwhash = ?2 WHERE id = ?1 AND deleted_at = 0")            \
    X(USER_ERASE, "UPDATE users SET username = '#' || id, pwhash = '', display_name = '', "        \
                  "avatar = '', status_text = '', deleted_at = ?2 WHERE id = ?1 "                  \
                  "AND deleted_at = 0")                                                            \
    X(USER_ERASE_CONTACTS, "DELETE FROM contacts WHERE user_id = ?1 OR other_id = ?1")             \
    X(USER_ERASE_BLOCKS, "DELETE FROM blocks WHERE user_id = ?1 OR other_id = ?1")                 \
    X(SESSIONS_OF_USER, "SELECT s.id, s.created_at, max(t.created_at) FROM sessions s "            \
                        "JOIN refresh_tokens t ON t.session_id = s.id WHERE s.user_id = ?1 "       \
                        "AND s.revoked_at IS NULL GROUP BY s.id HAVING max(t.expires_at) > ?2 "    \
                        "ORDER BY s.created_at, s.id")                                             \
    PAIR_SQL(X, contacts)                                                                          \
    PAIR_SQL(X, blocks)                                                                            \
    X(BLOCKS_ALL, "SELECT user_id, other_id FROM blocks")                                          \
    X(MEMBER_ACCESS, "SELECT r.state, r.kind, EXISTS (SELECT 1 FROM members m "                    \
                     "WHERE m.room_id = r.id AND m.user_id = ?2), r.kind = 1 AND EXISTS ("         \
                     "SELECT 1 FROM members p JOIN blocks b ON b.user_id = p.user_id "             \
                     "AND b.other_id = ?2 WHERE p.room_id = r.id AND p.user_id <> ?2) "            \
                     "FROM rooms r WHERE r.id = ?1")                                               \
    X(ROOM_SET_FLAGS, "UPDATE rooms SET is_public = CASE WHEN ?2 < 0 THEN is_public ELSE ?2 END, " \
                      "state = CASE WHEN ?3 < 0 THEN state ELSE ?3 END WHERE id = ?1")             \
    X(ROOMS_PUBLIC, "SELECT " ROOM_COLS " FROM rooms r WHERE r.is_public = 1 AND r.state = 0 "     \
                    "AND r.id > ?1 ORDER BY r.id LIMIT ?2")                                        \
    X(MEMBERS_PAGE, "SELECT " MEMBER_COLS ", " PROFILE_COLS " FROM members m JOIN users u "        \
                    "ON u.id = m.user_id WHERE m.room_id = ?1 AND m.user_id > ?2 "                 \
                    "ORDER BY m.user_id LIMIT ?3")                                                 \
    X(MEMBER_HIDE, "UPDATE members SET hidden_seq = ?3 WHERE room_id = ?1 AND user_id = ?2")       \
    X(ROOMS_VISIBLE, "SELECT " ROOM_COLS ", " MEMBER_COLS " FROM members m "                       \
                     "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ?1 AND m.room_id > ?2 "   \
                     "AND (m.hidden_seq = 0 OR EXISTS (SELECT 1 FROM events e "                    \
                     "WHERE e.room_id = m.room_id AND e.seq > m.hidden_seq AND e.kind = 0)) "      \
                     "ORDER BY m.room_id LIMIT ?3")                                                \
    X(INVITE_INSERT, "INSERT INTO invites(hash, room_id, created_by, created_at, expires_at, "     \
                     "max_uses) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                                  \
    X(INVITE_GET, "SELECT room_id, created_by, created_at, expires_at, max_uses, uses "            \
                  "FROM invites WHERE hash = ?1")                                                  \
    X(INVITE_USE, "UPDATE invites SET uses = uses + 1 WHERE hash = ?1")                            \
    X(USERS_LIST, "SELECT id, username, pwhash, created_at, last_seen FROM users WHERE id > ?1 "   \
                  "ORDER BY id LIMIT ?2")                                                          \
    X(SESSIONS_REVOKE_USER,                                                                        \
      "UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")             \
    X(DELIVERIES_PRUNE, "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries "           \
                        "WHERE state = 1 AND next_at < ?1 ORDER BY next_at LIMIT ?2)")             \
    X(DELIVERY_DELETE, "DELETE FROM deliveries WHERE id = ?1 AND state = 2")                       \
    X(DELIVERIES_COUNT, "SELECT count(*) FROM deliveries WHERE state = ?1")                        \
    X(NOTIFY_TAKE, "INSERT INTO notify_last(user_id, room_id, ts) VALUES (?1, ?2, ?3) "            \
                   "ON CONFLICT (user_id, room_id) DO UPDATE SET ts = excluded.ts "                \
                   "WHERE excluded.ts - notify_last.ts >= ?4")                                     \
    X(NOTIFY_PRUNE, "DELETE FROM notify_last WHERE rowid IN (SELECT rowid FROM notify_last "       \
                    "WHERE ts < ?1 LIMIT ?2)")

enum sql_id {
#define SQL_ENUM(name, sql) SQL_##name,
    SQL_MAP(SQL_ENUM)
#undef SQL_ENUM
        SQL__COUNT
};

static const char *const sql_text[] = {
#define SQL_TEXT(name, sql) sql,
    SQL_MAP(SQL_TEXT)
#undef SQL_TEXT
};

/* The writer's copy of each room's last seq (read once from the log, then moved by its own
 * appends), so an append needs no lookup. Dropped whenever SQLite rolls anything back: the log
 * itself is the truth and is read again. */
struct seq_ent {
    int64_t last_seq;
};
#define SEQ_CACHE_MAX 65536

struct store_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[SQL__COUNT];
    struct imap seqs; /* room id -> struct seq_ent (writer connection only) */
};

static int sq_err(struct store_conn *c, const char *what)
{
    log_error("sqlite error", "\"op\":\"%s\",\"error\":\"%s\"", what, sqlite3_errmsg(c->db));
    return CD_E_IO;
}

/* The cached statement, reset and unbound. NULL on prepare failure (logged). */
static sqlite3_stmt *stmt(struct store_conn *c, enum sql_id id)
{
    sqlite3_stmt *s = c->stmt[id];
    if (!s) {
        if (sqlite3_prepare_v3(c->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
                               NULL) != SQLITE_OK) {
            sq_err(c, sql_text[id]);
            return NULL;
        }
        return c->stmt[id];
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no rows. */
static int step_done(struct store_conn *c, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE) return CD_OK;
    if (rc == SQLITE_CONSTRAINT) return CD_E_CONFLICT;
    return sq_err(c, what);
}

/* A statement of two integer parameters and no rows (the many "set X of row Y" updates). */
static int exec_ii(struct store_conn *c, enum sql_id id, int64_t a, int64_t b)
{
    sqlite3_stmt *s = stmt(c, id);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    return step_done(c, s, sql_text[id]);
}

/* Run a bound INSERT; on success *id_out gets the new row's id. */
static int step_insert(struct store_conn *c, sqlite3_stmt *s, const char *what, int64_t *id_out)
{
    int rc = step_done(c, s, what);
    if (rc == CD_OK) *id_out = sqlite3_last_insert_rowid(c->db);
    return rc;
}

static int exec_id(struct store_conn *c, enum sql_id id)
{
    sqlite3_stmt *s = stmt(c, id);
    return s ? step_done(c, s, sql_text[id]) : CD_E_IO;
}

static void seq_drop(struct store_conn *c)
{
    uint32_t i;
    for (struct imap_ent *e = imap_first(&c->seqs, &i); e; e = imap_next(&c->seqs, e, &i))
        free(e->val);
    imap_free(&c->seqs);
    imap_init(&c->seqs);
}

static int sq_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        log_error("sqlite exec failed", "\"error\":\"%s\"", err ? err : "?");
        sqlite3_free(err);
        return CD_E_IO;
    }
    return CD_OK;
}

static int conn_setup(sqlite3 *db, int writer, int sync_full)
{
    char pragmas[256];
    sqlite3_busy_timeout(db, 5000);
    /* mmap_size: reads of the main file (history pages, catch-up) come straight from the OS page
     * cache, shared by every reader thread, instead of being copied into each connection's page
     * cache. 256 MiB of address space per connection; pages still in the WAL are read as usual. */
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA foreign_keys=ON; PRAGMA synchronous=%s; PRAGMA temp_store=MEMORY;"
             "PRAGMA cache_size=-16000; PRAGMA mmap_size=268435456;%s",
             sync_full ? "FULL" : "NORMAL",
             writer ? "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=104857600;" : "");
    return sq_exec(db, pragmas);
}

static int migrate(sqlite3 *db)
{
    sqlite3_stmt *s;
    int version = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK) return CD_E_IO;
    if (sqlite3_step(s) == SQLITE_ROW) version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version > store_sqlite_nmigrations) {
        log_error("database schema is newer than this chatd", "\"schema\":%d,\"known\":%d", version,
                  store_sqlite_nmigrations);
        return CD_E_IO;
    }
    for (int v = version; v < store_sqlite_nmigrations; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version=%d;", v + 1);
        if (sq_exec(db, "BEGIN IMMEDIATE") || sq_exec(db, store_sqlite_migrations[v]) ||
            sq_exec(db, bump) || sq_exec(db, "COMMIT")) {
            sq_exec(db, "ROLLBACK");
            log_error("migration failed", "\"to\":%d", v + 1);
            return CD_E_IO;
        }
        log_info("migration applied", "\"version\":%d", v + 1);
    }
    return CD_OK;
}

/* Connections use the WAL write-gathering VFS (one write per group commit instead of two per
 * dirtied page), or the default VFS if it cannot be registered. */
static const char *vfs_name(void)
{
    return store__walbuf_register() == 0 ? STORE_WALBUF_VFS : NULL;
}

static int sq_open(const struct store_config *cfg, struct store **out)
{
    struct store *st;
    sqlite3 *db = NULL;
    size_t n;
    int rc, fd;

    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create data directory", "\"dir\":\"%s\",\"error\":\"%s\"", cfg->dir,
                  strerror(errno));
        return CD_E_IO;
    }
    st = xcalloc(1, sizeof(*st));
    n = strlen(cfg->dir) + 16;
    st->path = xmalloc(n);
    snprintf(st->path, n, "%s/chatd.db", cfg->dir);
    st->sync_full = !cfg->sync_mode || strcmp(cfg->sync_mode, "normal") != 0;
    /* Created here 0600 whatever the umask (SQLite would use 0644 & ~umask); SQLite gives the
     * WAL and shared-memory files the database file's mode. */
    if ((fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        log_error("cannot create database", "\"path\":\"%s\",\"error\":\"%s\"", st->path,
                  strerror(errno));
        rc = CD_E_IO;
        goto fail;
    }
    close(fd);
    if (sqlite3_open_v2(st->path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        vfs_name()) != SQLITE_OK) {
        log_error("cannot open database", "\"path\":\"%s\"", st->path);
        rc = CD_E_IO;
        goto fail;
    }
    if ((rc = sq_exec(db, "PRAGMA page_size=" STORE_PAGE_SIZE ";PRAGMA journal_mode=WAL;")) ||
        (rc = conn_setup(db, 1, st->sync_full)) || (rc = migrate(db)))
        goto fail;
    sqlite3_close(db);
    *out = st;
    return CD_OK;
fail:
    sqlite3_close(db);
    free(st->path);
    free(st);
    return rc;
}

static void sq_close(struct store *st)
{
    free(st->path);
    free(st);
}

static int sq_conn_open(struct store *st, int writer, struct store_conn **out)
{
    struct store_conn *c = xcalloc(1, sizeof(*c));
    imap_init(&c->seqs);
    int flags = SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY);

    if (sqlite3_open_v2(st->path, &c->db, flags, vfs_name()) != SQLITE_OK ||
        conn_setup(c->db, writer, st->sync_full) != CD_OK) {
        log_error("cannot open database connection", "\"path\":\"%s\"", st->path);
        sqlite3_close(c->db);
        free(c);
        return CD_E_IO;
    }
    *out = c;
    return CD_OK;
}

static void sq_conn_close(struct store_conn *c)
{
    seq_drop(c);
    imap_free(&c->seqs);
    for (int i = 0; i < SQL__COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

static int sq_begin(struct store_conn *c)
{
    return exec_id(c, SQL_BEGIN);
}
static int sq_commit(struct store_conn *c)
{
    return exec_id(c, SQL_COMMIT);
}
static int sq_rollback(struct store_conn *c)
{
    seq_drop(c);
    return sqlite3_get_autocommit(c->db) ? CD_OK : exec_id(c, SQL_ROLLBACK);
}
static int sq_savepoint(struct store_conn *c)
{
    return exec_id(c, SQL_SAVEPOINT);
}
static int sq_savepoint_release(struct store_conn *c, int undo)
{
    if (undo) {
        seq_drop(c);
        if (exec_id(c, SQL_ROLLBACK_TO) != CD_OK) return CD_E_IO;
    }
    return exec_id(c, SQL_RELEASE);
}

static void text_col(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* An outbox row for an event that is not a log entry (its JSON stored with it). */
static int outbox_other(struct store_conn *c, int64_t room, const char *type, const char *id,
                        int64_t ts, const struct jsonw *w)
{
    sqlite3_stmt *s = stmt(c, SQL_OUTBOX_OTHER);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room);
    sqlite3_bind_text(s, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, ts);
    sqlite3_bind_text(s, 5, jsonw_text(w), (int)jsonw_text_len(w), SQLITE_STATIC);
    return step_done(c, s, "outbox_insert");
}

static int sq_user_insert(struct store_conn *c, const char *username, const char *pwhash,
                          int64_t now_ms, int64_t *id_out)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, username, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    rc = step_insert(c, s, "user_insert", id_out);
    if (rc == CD_E_CONFLICT) return CD_E_USERNAME_TAKEN;
    if (rc == CD_OK) {
        struct jsonw w;
        char id[32];
        jsonw_init(&w, 128);
        store__user_created_json(&w, id, *id_out, username, now_ms);
        rc = outbox_other(c, 0, "user.created", id, now_ms, &w);
        jsonw_free(&w);
    }
    return rc;
}

static int user_row(struct store_conn *c, sqlite3_stmt *s, struct store_user *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        text_col(s, 1, out->username, sizeof(out->username));
        text_col(s, 2, out->pwhash, sizeof(out->pwhash));
        out->created_at = sqlite3_column_int64(s, 3);
        out->last_seen = sqlite3_column_int64(s, 4);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "user_get");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_user_get(struct store_conn *c, int64_t id, struct store_user *out)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_GET);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    return user_row(c, s, out);
}

static int sq_user_by_name(struct store_conn *c, const char *username, struct store_user *out)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_BY_NAME);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, username, -1, SQLITE_STATIC);
    return user_row(c, s, out);
}

static int sq_user_set_last_seen(struct store_conn *c, int64_t id, int64_t ms)
{
    return exec_ii(c, SQL_USER_LAST_SEEN, id, ms);
}

static int sq_session_insert(struct store_conn *c, int64_t user_id, int64_t now_ms, int64_t *sid)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSION_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_insert(c, s, "session_insert", sid);
}

static int sq_session_insert_id(struct store_conn *c, int64_t id, int64_t user_id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSION_INSERT_ID);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, now_ms);
    return step_done(c, s, "session_insert_id"); /* a taken id: CD_E_CONFLICT */
}

static int sq_session_revoke(struct store_conn *c, int64_t sid, int64_t now_ms)
{
    return exec_ii(c, SQL_SESSION_REVOKE, sid, now_ms);
}

static int sq_sessions_revoked_since(struct store_conn *c, int64_t since_ms,
                                     int (*cb)(void *ud, int64_t sid, int64_t revoked_at_ms),
                                     void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSIONS_REVOKED_SINCE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, since_ms);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (cb(ud, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1))) break;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "sessions_revoked_since");
}

static int sq_refresh_insert(struct store_conn *c, struct store_refresh *r)
{
    sqlite3_stmt *s = stmt(c, SQL_REFRESH_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, r->session_id);
    sqlite3_bind_int64(s, 2, r->user_id);
    sqlite3_bind_blob(s, 3, r->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->created_at);
    sqlite3_bind_int64(s, 5, r->expires_at);
    return step_insert(c, s, "refresh_insert", &r->id);
}

static int sq_refresh_by_hash(struct store_conn *c, const uint8_t hash[32],
                              struct store_refresh *out)
{
    sqlite3_stmt *s = stmt(c, SQL_REFRESH_BY_HASH);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        out->session_id = sqlite3_column_int64(s, 1);
        out->user_id = sqlite3_column_int64(s, 2);
        out->created_at = sqlite3_column_int64(s, 3);
        out->expires_at = sqlite3_column_int64(s, 4);
        out->used_at = sqlite3_column_int64(s, 5);
        out->session_revoked = sqlite3_column_int(s, 6);
        memcpy(out->hash, hash, 32);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "refresh_by_hash");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_refresh_mark_used(struct store_conn *c, int64_t id, int64_t now_ms)
{
    return exec_ii(c, SQL_REFRESH_USED, id, now_ms);
}

/* Rows of a multi-row statement: stepped until done or until cb returns nonzero. The statement
 * stays active while cb runs, so cb may use this connection for other statements but must not
 * re-enter the op that called it (that would reset the statement under it). */

static void room_row(sqlite3_stmt *s, int col, struct store_room *out)
{
    out->id = sqlite3_column_int64(s, col);
    out->kind = sqlite3_column_int(s, col + 1);
    text_col(s, col + 2, out->name, sizeof(out->name));
    text_col(s, col + 3, out->topic, sizeof(out->topic));
    out->created_by = sqlite3_column_int64(s, col + 4);
    out->created_at = sqlite3_column_int64(s, col + 5);
    out->last_seq = sqlite3_column_int64(s, col + 6);
    out->member_count = sqlite3_column_int64(s, col + 7);
    out->is_public = sqlite3_column_int(s, col + 8);
    out->state = sqlite3_column_int(s, col + 9);
}

static void member_row(sqlite3_stmt *s, int col, struct store_member *out)
{
    out->room_id = sqlite3_column_int64(s, col);
    out->user_id = sqlite3_column_int64(s, col + 1);
    out->role = sqlite3_column_int(s, col + 2);
    out->joined_seq = sqlite3_column_int64(s, col + 3);
    out->read_seq = sqlite3_column_int64(s, col + 4);
}

/* Points ev's strings into the current row: valid until the next step or reset of s. */
static void event_row(sqlite3_stmt *s, struct store_event *ev)
{
    memset(ev, 0, sizeof(*ev)); /* derived fields: messages_page only */
    ev->room_id = sqlite3_column_int64(s, 0);
    ev->seq = sqlite3_column_int64(s, 1);
    ev->kind = sqlite3_column_int(s, 2);
    ev->sender = sqlite3_column_int64(s, 3);
    ev->ts = sqlite3_column_int64(s, 4);
    if (sqlite3_column_type(s, 5) == SQLITE_NULL) {
        ev->client_msg_id = NULL;
        ev->cmid_len = 0;
    } else {
        ev->client_msg_id = (const char *)sqlite3_column_text(s, 5);
        ev->cmid_len = (size_t)sqlite3_column_bytes(s, 5);
    }
    ev->body = (const char *)sqlite3_column_text(s, 6);
    ev->body_len = (size_t)sqlite3_column_bytes(s, 6);
    if (!ev->body) ev->body = "";
    ev->extra = (const char *)sqlite3_column_text(s, 7);
    ev->extra_len = ev->extra ? (size_t)sqlite3_column_bytes(s, 7) : 0;
}

/* Calls cb for each row of s; *n (optional) gets the number of rows seen. */
static int each_event(struct store_conn *c, sqlite3_stmt *s, const char *what, store_event_cb cb,
                      void *ud, int *n)
{
    int rc, rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_event ev;
        event_row(s, &ev);
        rows++;
        if (cb(ud, &ev)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, what);
    sqlite3_reset(s);
    if (n) *n = rows;
    return rc;
}

static int each_member(struct store_conn *c, sqlite3_stmt *s, const char *what, int with_room,
                       store_room_cb cb, void *ud)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_room room;
        struct store_member m;
        if (with_room) room_row(s, 0, &room);
        member_row(s, with_room ? ROOM_NCOLS : 0, &m);
        if (cb(ud, with_room ? &room : NULL, &m)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, what);
    sqlite3_reset(s);
    return rc;
}

/* Runs a single-row, single-integer statement (SELECT or ... RETURNING): CD_E_NOT_FOUND when it
 * yields no row. */
static int step_int64(struct store_conn *c, sqlite3_stmt *s, const char *what, int64_t *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, what);
    }
    sqlite3_reset(s);
    return rc;
}

/* A write that must touch exactly one row: CD_E_NOT_FOUND when it touched none. */
static int step_one(struct store_conn *c, sqlite3_stmt *s, const char *what)
{
    int rc = step_done(c, s, what);
    if (rc == CD_OK && sqlite3_changes(c->db) == 0) rc = CD_E_NOT_FOUND;
    return rc;
}

static int sq_room_insert(struct store_conn *c, struct store_room *r, const char *dm_key)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int(s, 1, r->kind);
    sqlite3_bind_text(s, 2, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, r->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, r->created_by);
    sqlite3_bind_int64(s, 5, r->created_at);
    if (dm_key) sqlite3_bind_text(s, 6, dm_key, -1, SQLITE_STATIC);
    rc = step_insert(c, s, "room_insert", &r->id); /* a taken dm_key is the only constraint */
    if (rc == CD_OK) {
        struct jsonw w;
        char id[32];
        r->last_seq = 0; /* *r now mirrors the new row */
        r->member_count = 0;
        jsonw_init(&w, 256);
        store__room_created_json(&w, id, r);
        rc = outbox_other(c, r->id, "room.created", id, r->created_at, &w);
        jsonw_free(&w);
    }
    return rc;
}

static int sq_room_get(struct store_conn *c, int64_t room_id, struct store_room *out)
{
    sqlite3_stmt *s;
    int rc;
    if (!(s = stmt(c, SQL_ROOM_GET))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        room_row(s, 0, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "room_get");
    }
    sqlite3_reset(s);
    return rc;
}

/* One room at a time: a single node has no cluster reconciliation to serve, this is for the
 * store tests and completeness. */
static int sq_rooms_ahead(struct store_conn *c, const int64_t *ids, const int64_t *seen, size_t n,
                          int (*cb)(void *ud, int64_t room, int64_t last_seq), void *ud)
{
    for (size_t i = 0; i < n; i++) {
        struct store_room r;
        int rc = sq_room_get(c, ids[i], &r);
        if (rc == CD_E_NOT_FOUND) continue;
        if (rc != CD_OK) return rc;
        if (r.last_seq > seen[i] && cb(ud, ids[i], r.last_seq)) break;
    }
    return CD_OK;
}

static int sq_room_by_dm_key(struct store_conn *c, const char *dm_key, int64_t *room_id)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_BY_DM_KEY);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, dm_key, -1, SQLITE_STATIC);
    return step_int64(c, s, "room_by_dm_key", room_id);
}

/* NULL name or topic binds NULL, which coalesce() turns into "keep the column". */
static int sq_room_update(struct store_conn *c, int64_t room_id, const char *name,
                          const char *topic)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_UPDATE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    if (name) sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    if (topic) sqlite3_bind_text(s, 3, topic, -1, SQLITE_STATIC);
    return step_one(c, s, "room_update");
}

static int room_count_add(struct store_conn *c, int64_t room_id, int delta)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_COUNT_ADD);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int(s, 2, delta);
    return step_one(c, s, "room_count_add");
}

static int sq_member_get(struct store_conn *c, int64_t room_id, int64_t user_id,
                         struct store_member *out)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        member_row(s, 0, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "member_get");
    }
    sqlite3_reset(s);
    return rc;
}

/* An existing membership only gets its role updated (joined_seq and read_seq stay). A new one
 * bumps rooms.member_count first, so an unknown room is CD_E_NOT_FOUND before anything is
 * written. The two writes of an insert rely on the single writer: nothing can add the same
 * membership between them. */
static int sq_member_put(struct store_conn *c, const struct store_member *m)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_SET_ROLE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, m->room_id);
    sqlite3_bind_int64(s, 2, m->user_id);
    sqlite3_bind_int(s, 3, m->role);
    if ((rc = step_one(c, s, "member_set_role")) != CD_E_NOT_FOUND) return rc;

    if ((rc = room_count_add(c, m->room_id, 1)) != CD_OK) return rc;
    if (!(s = stmt(c, SQL_MEMBER_INSERT))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, m->room_id);
    sqlite3_bind_int64(s, 2, m->user_id);
    sqlite3_bind_int(s, 3, m->role);
    sqlite3_bind_int64(s, 4, m->joined_seq);
    sqlite3_bind_int64(s, 5, m->read_seq);
    return step_done(c, s, "member_insert");
}

static int sq_member_delete(struct store_conn *c, int64_t room_id, int64_t user_id)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_DELETE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    if ((rc = step_one(c, s, "member_delete")) != CD_OK) return rc;
    return room_count_add(c, room_id, -1);
}

static int sq_members_list(struct store_conn *c, int64_t room_id, int limit, store_room_cb cb,
                           void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBERS_LIST);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int(s, 2, limit);
    return each_member(c, s, "members_list", 0, cb, ud);
}

/* Walks members_user in (user_id, room_id) order from `after`: no sort, one rooms lookup per
 * room, O(limit). */
static int sq_rooms_of_user(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                            store_room_cb cb, void *ud)
{
    sqlite3_stmt *s;
    if (!(s = stmt(c, SQL_ROOMS_OF_USER))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    return each_member(c, s, "rooms_of_user", 1, cb, ud);
}

/* O(rooms of the user, direct ones included): members_user plus a rooms lookup each. */
static int sq_user_room_counts(struct store_conn *c, int64_t user_id, int64_t *group_rooms,
                               int64_t *owned)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_ROOM_COUNTS);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *group_rooms = sqlite3_column_int64(s, 0);
        *owned = sqlite3_column_int64(s, 1);
        rc = CD_OK;
    } else {
        rc = sq_err(c, "user_room_counts");
    }
    sqlite3_reset(s);
    return rc;
}

/* O(rooms of a): each room of a (members_user) is probed for b (primary key). */
static int sq_users_share_room(struct store_conn *c, int64_t a, int64_t b, int *out)
{
    sqlite3_stmt *s = stmt(c, SQL_USERS_SHARE);
    int64_t v = 0;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    rc = step_int64(c, s, "users_share_room", &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

/* The event is inserted with seq = the room's last seq + 1, and only then is the writer's copy
 * of it moved. A refused insert (duplicate client_msg_id) therefore changes nothing,
 * even if the caller keeps its savepoint (an idempotent resend that answers with the original
 * is a successful job); an unknown room inserts no row and is CD_E_NOT_FOUND. */
static int sq_event_append(struct store_conn *c, struct store_event *ev)
{
    struct seq_ent *se = imap_get(&c->seqs, ev->room_id);
    sqlite3_stmt *s;
    int rc;

    if (ev->body_len > INT32_MAX || ev->cmid_len > INT32_MAX) return CD_E_TOO_LARGE;
    if (!se) {
        if (c->seqs.n >= SEQ_CACHE_MAX) seq_drop(c);
        if (!(s = stmt(c, SQL_ROOM_LAST_SEQ))) return CD_E_IO;
        sqlite3_bind_int64(s, 1, ev->room_id);
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(s);
            return rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "room_last_seq");
        }
        se = xcalloc(1, sizeof(*se));
        se->last_seq = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        imap_put(&c->seqs, ev->room_id, se);
    }
    if (!(s = stmt(c, SQL_EVENT_INSERT))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, ev->room_id);
    sqlite3_bind_int(s, 2, ev->kind);
    sqlite3_bind_int64(s, 3, ev->sender);
    sqlite3_bind_int64(s, 4, ev->ts);
    if (ev->client_msg_id)
        sqlite3_bind_text(s, 5, ev->client_msg_id, (int)ev->cmid_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, ev->body ? ev->body : "", (int)ev->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, se->last_seq + 1);
    /* OR IGNORE: no statement journal per insert. Nothing inserted means the (sender,
     * client_msg_id) pair exists (the seq is ours alone: single writer). */
    if ((rc = step_done(c, s, "event_insert")) != CD_OK) return rc;
    if (sqlite3_changes(c->db) == 0) return CD_E_CONFLICT;
    /* Its outbox row was added by the insert itself (trigger events_outbox, migration 9). */
    ev->seq = ++se->last_seq;
    return CD_OK;
}

static int sq_event_by_client_id(struct store_conn *c, int64_t room_id, int64_t sender,
                                 const char *cmid, size_t cmid_len, store_event_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int n = 0, rc;
    if (cmid_len > INT32_MAX) return CD_E_NOT_FOUND;
    if (!(s = stmt(c, SQL_EVENT_BY_CLIENT_ID))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, sender);
    sqlite3_bind_int64(s, 3, room_id);
    sqlite3_bind_text(s, 2, cmid, (int)cmid_len, SQLITE_STATIC);
    rc = each_event(c, s, "event_by_client_id", cb, ud, &n);
    return rc == CD_OK && n == 0 ? CD_E_NOT_FOUND : rc;
}

/* One statement per (bounded, direction) pair, so each is a plain range scan of the
 * (room_id, seq) index. */
static int sq_events_page(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                          int limit, int desc, store_event_cb cb, void *ud)
{
    static const enum sql_id ids[2][2] = {{SQL_EVENTS_ASC, SQL_EVENTS_DESC},
                                          {SQL_EVENTS_ASC_BEFORE, SQL_EVENTS_DESC_BEFORE}};
    sqlite3_stmt *s = stmt(c, ids[before > 0][desc != 0]);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    if (before > 0) sqlite3_bind_int64(s, 4, before);
    return each_event(c, s, "events_page", cb, ud, NULL);
}

/* Clamped to the room's last_seq: a client cannot mark entries that do not exist yet. */
static int sq_read_mark(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq,
                        int64_t *out_seq)
{
    sqlite3_stmt *s;
    if (!(s = stmt(c, SQL_READ_MARK))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, seq);
    return step_int64(c, s, "read_mark", out_seq);
}

/* O(max): a range scan of at most `max` entries of the (room_id, seq) index with a rowid lookup
 * each for kind and sender, plus one index seek for whether anything lies beyond. */
static int sq_unread_count(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t after,
                           int64_t max, int64_t *out, int *capped)
{
    sqlite3_stmt *s = stmt(c, SQL_UNREAD_COUNT);
    int rc;
    if (!s) return CD_E_IO;
    if (max < 0) max = 0;
    if (after > INT64_MAX - max) after = INT64_MAX - max;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, after);
    sqlite3_bind_int(s, 4, EV_MESSAGE);
    sqlite3_bind_int64(s, 5, max);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        *capped = sqlite3_column_int(s, 1) != 0;
        rc = CD_OK;
    } else {
        rc = sq_err(c, "unread_count");
    }
    sqlite3_reset(s);
    return rc;
}

static const char *col_text_len(sqlite3_stmt *s, int col, size_t *len)
{
    const char *t = (const char *)sqlite3_column_text(s, col);
    *len = t ? (size_t)sqlite3_column_bytes(s, col) : 0;
    return t;
}

/* One range scan of the outbox's rowids, plus one (room_id, seq) index lookup and one events
 * row per log entry. The JSON is built per row into one reused buffer. */
static int sq_outbox_page(struct store_conn *c, int64_t after, int limit, store_outbox_cb cb,
                          void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_OUTBOX_PAGE);
    struct jsonw w;
    int rc;

    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    jsonw_init(&w, 512);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_outbox_event ob = {.pos = sqlite3_column_int64(s, 0),
                                        .room_id = sqlite3_column_int64(s, 1)};
        char id[48];
        if (sqlite3_column_int64(s, 2) > 0) {
            struct store_event ev = {.room_id = ob.room_id, .seq = sqlite3_column_int64(s, 2)};
            if (sqlite3_column_type(s, 7) == SQLITE_NULL) continue; /* no such entry */
            ev.kind = sqlite3_column_int(s, 7);
            ev.sender = sqlite3_column_int64(s, 8);
            ev.ts = sqlite3_column_int64(s, 9);
            ev.client_msg_id = col_text_len(s, 10, &ev.cmid_len);
            ev.body = col_text_len(s, 11, &ev.body_len);
            if (!ev.body) ev.body = "";
            ev.extra = col_text_len(s, 12, &ev.extra_len);
            ev.reply_to = sqlite3_column_int64(s, 13);
            ev.thread = sqlite3_column_int64(s, 14);
            w.len = JSONW_HEADROOM;
            store_event_json(&w, &ev);
            ob.id = id;
            ob.id_len = store__log_event_id(id, ev.kind, ev.room_id, ev.seq);
            ob.type = store__log_event_type(ev.kind);
            ob.type_len = strlen(ob.type);
            ob.ts = ev.ts;
            ob.json = jsonw_text(&w);
            ob.json_len = jsonw_text_len(&w);
        } else {
            ob.type = col_text_len(s, 3, &ob.type_len);
            ob.id = col_text_len(s, 4, &ob.id_len);
            ob.ts = sqlite3_column_int64(s, 5);
            ob.json = col_text_len(s, 6, &ob.json_len);
            if (!ob.type || !ob.id || !ob.json) continue;
        }
        if (cb(ud, &ob)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "outbox_page");
    sqlite3_reset(s);
    jsonw_free(&w);
    return rc;
}

static int sq_consumer_get(struct store_conn *c, const char *name, int64_t *pos)
{
    sqlite3_stmt *s = stmt(c, SQL_CONSUMER_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    rc = step_int64(c, s, "consumer_get", pos);
    if (rc == CD_E_NOT_FOUND) {
        *pos = 0;
        rc = CD_OK;
    }
    return rc;
}

static int sq_outbox_head(struct store_conn *c, int64_t *pos)
{
    sqlite3_stmt *s = stmt(c, SQL_OUTBOX_HEAD);
    if (!s) return CD_E_IO;
    return step_int64(c, s, "outbox_head", pos);
}

static int sq_consumer_put(struct store_conn *c, const char *name, int64_t pos)
{
    sqlite3_stmt *s = stmt(c, SQL_CONSUMER_PUT);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, pos);
    return step_done(c, s, "consumer_put");
}

static int sq_apikey_insert(struct store_conn *c, const char *name, const uint8_t hash[32],
                            int64_t now_ms, int64_t *id_out)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_ms);
    return step_insert(c, s, "apikey_insert", id_out);
}

static void apikey_row(sqlite3_stmt *s, struct store_apikey *k)
{
    k->id = sqlite3_column_int64(s, 0);
    text_col(s, 1, k->name, sizeof(k->name));
    k->created_at = sqlite3_column_int64(s, 2);
    k->revoked_at = sqlite3_column_int64(s, 3);
}

static int sq_apikey_by_hash(struct store_conn *c, const uint8_t hash[32], struct store_apikey *out)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_BY_HASH);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        apikey_row(s, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "apikey_by_hash");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_apikey_list(struct store_conn *c, store_apikey_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_LIST);
    int rc;
    if (!s) return CD_E_IO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_apikey k;
        apikey_row(s, &k);
        if (cb(ud, &k)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "apikey_list");
    sqlite3_reset(s);
    return rc;
}

static int sq_apikey_revoke(struct store_conn *c, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_APIKEY_REVOKE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_one(c, s, "apikey_revoke");
}

static int sq_webhook_insert(struct store_conn *c, struct store_webhook *w)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOK_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int(s, 1, w->kind);
    sqlite3_bind_text(s, 2, w->url, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, w->secret, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, w->types, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, w->created_at);
    return step_insert(c, s, "webhook_insert", &w->id);
}

static int sq_webhook_delete(struct store_conn *c, int64_t id)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOK_DELETE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    return step_one(c, s, "webhook_delete");
}

static void webhook_row(sqlite3_stmt *s, struct store_webhook *w)
{
    w->id = sqlite3_column_int64(s, 0);
    w->kind = sqlite3_column_int(s, 1);
    text_col(s, 2, w->url, sizeof(w->url));
    text_col(s, 3, w->secret, sizeof(w->secret));
    text_col(s, 4, w->types, sizeof(w->types));
    w->created_at = sqlite3_column_int64(s, 5);
}

/* Every row of a bound webhook statement to cb; *n (unless NULL) gets the rows seen. */
static int each_webhook(struct store_conn *c, sqlite3_stmt *s, store_webhook_cb cb, void *ud,
                        int *n)
{
    int rc, rows = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_webhook w;
        webhook_row(s, &w);
        rows++;
        if (cb(ud, &w)) break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "webhooks");
    sqlite3_reset(s);
    if (n) *n = rows;
    return rc;
}

static int copy_webhook(void *ud, const struct store_webhook *w)
{
    *(struct store_webhook *)ud = *w;
    return 1;
}

static int sq_webhook_get(struct store_conn *c, int64_t id, struct store_webhook *out)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOK_GET);
    int n = 0, rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    rc = each_webhook(c, s, copy_webhook, out, &n);
    return rc == CD_OK && n == 0 ? CD_E_NOT_FOUND : rc;
}

static int sq_webhooks_list(struct store_conn *c, store_webhook_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_WEBHOOKS_LIST);
    return s ? each_webhook(c, s, cb, ud, NULL) : CD_E_IO;
}

static int sq_delivery_insert(struct store_conn *c, const struct store_delivery *d, int *inserted)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_INSERT);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, d->endpoint_id);
    sqlite3_bind_text(s, 2, d->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, d->body, (int)d->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, d->next_at);
    sqlite3_bind_int64(s, 5, d->created_at);
    rc = step_done(c, s, "delivery_insert");
    if (rc == CD_OK) *inserted = sqlite3_changes(c->db) > 0;
    return rc;
}

static int sq_deliveries_list(struct store_conn *c, int state, int64_t due_before, int64_t after,
                              int limit, store_delivery_cb cb, void *ud)
{
    sqlite3_stmt *s;
    int rc;
    if (state == DELIVERY_PENDING) {
        if (!(s = stmt(c, SQL_DELIVERIES_DUE))) return CD_E_IO;
        sqlite3_bind_int64(s, 1, due_before);
    } else {
        if (!(s = stmt(c, SQL_DELIVERIES_STATE))) return CD_E_IO;
        sqlite3_bind_int(s, 1, state);
    }
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_delivery d;
        d.id = sqlite3_column_int64(s, 0);
        d.endpoint_id = sqlite3_column_int64(s, 1);
        text_col(s, 2, d.event_id, sizeof(d.event_id));
        d.body = (const char *)sqlite3_column_text(s, 3);
        d.body_len = (size_t)sqlite3_column_bytes(s, 3);
        d.state = sqlite3_column_int(s, 4);
        d.attempts = sqlite3_column_int(s, 5);
        d.next_at = sqlite3_column_int64(s, 6);
        d.created_at = sqlite3_column_int64(s, 7);
        text_col(s, 8, d.last_error, sizeof(d.last_error));
        if (!d.body) d.body = "";
        if (cb(ud, &d)) break;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "deliveries_list");
    sqlite3_reset(s);
    return rc;
}

static int sq_delivery_update(struct store_conn *c, int64_t id, int state, int attempts,
                              int64_t next_at, const char *last_error)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_UPDATE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int(s, 2, state);
    sqlite3_bind_int(s, 3, attempts);
    sqlite3_bind_int64(s, 4, next_at);
    if (last_error) sqlite3_bind_text(s, 5, last_error, -1, SQLITE_STATIC);
    return step_one(c, s, "delivery_update");
}

static int sq_delivery_claim(struct store_conn *c, int64_t id, int64_t due_before, int64_t until)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_CLAIM);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, due_before);
    sqlite3_bind_int64(s, 3, until);
    return step_one(c, s, "delivery_claim");
}

static int sq_delivery_replay(struct store_conn *c, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_REPLAY);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_one(c, s, "delivery_replay");
}

static int sq_room_mute_put(struct store_conn *c, int64_t room_id, int64_t user_id, int muted)
{
    sqlite3_stmt *s = stmt(c, SQL_MUTE_PUT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int(s, 3, muted ? 1 : 0);
    return step_done(c, s, "room_mute_put");
}

static int sq_room_mute_get(struct store_conn *c, int64_t room_id, int64_t user_id, int *muted)
{
    sqlite3_stmt *s = stmt(c, SQL_MUTE_GET);
    int64_t v = 0;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    rc = step_int64(c, s, "room_mute_get", &v);
    if (rc == CD_E_NOT_FOUND) rc = CD_OK;
    *muted = v != 0;
    return rc;
}

/* Copy the WAL back into the database without blocking the writer or readers (PASSIVE). Once
 * every frame is copied, the writer's next transaction restarts the WAL from its beginning (the
 * file's pages are reused, not regrown); journal_size_limit trims it after a burst. */

/* ---- message operations and receipts ---- */

static int sq_msg_get(struct store_conn *c, int64_t room_id, int64_t seq, struct store_msg *out)
{
    sqlite3_stmt *s = stmt(c, SQL_MSG_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, seq);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->room_id = room_id;
        out->seq = seq;
        out->sender = sqlite3_column_int64(s, 0);
        out->kind = sqlite3_column_int(s, 1);
        out->deleted = sqlite3_column_int(s, 2);
        out->thread = sqlite3_column_int64(s, 3);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "msg_get");
    }
    sqlite3_reset(s);
    return rc;
}

/* Runs statement id with integer parameters a..d (as many as it takes). */
static int exec_i4(struct store_conn *c, enum sql_id id, int64_t a, int64_t b, int64_t x, int64_t y,
                   int n)
{
    sqlite3_stmt *s = stmt(c, id);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, a);
    sqlite3_bind_int64(s, 2, b);
    if (n > 2) sqlite3_bind_int64(s, 3, x);
    if (n > 3) sqlite3_bind_int64(s, 4, y);
    return step_done(c, s, sql_text[id]);
}

/* The message's msg_state row, created on its first operation. */
static int state_ensure(struct store_conn *c, int64_t room_id, int64_t seq)
{
    return exec_i4(c, SQL_MSG_STATE_ENSURE, room_id, seq, 0, 0, 2);
}

static int sq_msg_thread_put(struct store_conn *c, int64_t room_id, int64_t seq, int64_t reply_to,
                             int64_t thread)
{
    int rc = state_ensure(c, room_id, seq);
    if (rc == CD_OK) rc = exec_i4(c, SQL_MSG_LINKS, room_id, seq, reply_to, thread, 4);
    if (rc == CD_OK && thread) rc = state_ensure(c, room_id, thread);
    if (rc == CD_OK && thread) rc = exec_i4(c, SQL_MSG_ROOT_BUMP, room_id, thread, seq, 0, 3);
    return rc;
}

static int set_body(struct store_conn *c, enum sql_id id, int64_t room_id, int64_t seq,
                    const char *body, size_t len)
{
    sqlite3_stmt *s = stmt(c, id);
    if (!s) return CD_E_IO;
    if (len > INT32_MAX) return CD_E_TOO_LARGE;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_text(s, 3, body, (int)len, SQLITE_STATIC);
    return step_done(c, s, sql_text[id]);
}

static int sq_msg_edit(struct store_conn *c, int64_t room_id, int64_t target, const char *body,
                       size_t body_len, int64_t edited_at, int64_t edit_seq)
{
    int rc = set_body(c, SQL_MSG_SET_BODY, room_id, target, body, body_len);
    if (rc == CD_OK) rc = state_ensure(c, room_id, target);
    if (rc == CD_OK) rc = exec_i4(c, SQL_MSG_EDITED, room_id, target, edited_at, edit_seq, 4);
    if (rc == CD_OK) rc = exec_i4(c, SQL_MSG_EDIT_ADD, room_id, target, edit_seq, 0, 3);
    return rc;
}

static int sq_msg_delete(struct store_conn *c, int64_t room_id, int64_t target, int64_t op_seq,
                         const char *erased_edit_body, size_t erased_len)
{
    int rc = set_body(c, SQL_MSG_SET_BODY, room_id, target, "", 0);
    if (rc == CD_OK)
        rc = set_body(c, SQL_MSG_ERASE_EDITS, room_id, target, erased_edit_body, erased_len);
    if (rc == CD_OK) rc = exec_i4(c, SQL_REACTIONS_DROP, room_id, target, 0, 0, 2);
    if (rc == CD_OK) rc = state_ensure(c, room_id, target);
    if (rc == CD_OK) rc = exec_i4(c, SQL_MSG_DELETED, room_id, target, op_seq, 0, 3);
    return rc;
}

static int sq_reaction_set(struct store_conn *c, int64_t room_id, int64_t target, int64_t user_id,
                           const char *emoji, size_t emoji_len, int on, int64_t now_ms,
                           int *changed)
{
    sqlite3_stmt *s = stmt(c, on ? SQL_REACTION_ON : SQL_REACTION_OFF);
    int rc;
    if (!s) return CD_E_IO;
    if (emoji_len > INT32_MAX) return CD_E_TOO_LARGE;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, target);
    sqlite3_bind_text(s, 3, emoji, (int)emoji_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, user_id);
    if (on) sqlite3_bind_int64(s, 5, now_ms);
    if ((rc = step_done(c, s, "reaction_set")) != CD_OK) return rc;
    *changed = sqlite3_changes(c->db) != 0;
    return CD_OK;
}

static int sq_msg_touch(struct store_conn *c, int64_t room_id, int64_t target, int64_t op_seq)
{
    int rc = state_ensure(c, room_id, target);
    return rc == CD_OK ? exec_i4(c, SQL_MSG_TOUCH, room_id, target, op_seq, 0, 3) : rc;
}

static int sq_messages_page(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                            int limit, int desc, int64_t viewer, int64_t thread, store_event_cb cb,
                            void *ud)
{
    static const enum sql_id ids[2][2] = {{SQL_MSGS_ASC, SQL_MSGS_DESC},
                                          {SQL_THREAD_ASC, SQL_THREAD_DESC}};
    sqlite3_stmt *s = stmt(c, ids[thread > 0][desc != 0]);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    sqlite3_bind_int64(s, 4, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int64(s, 5, viewer);
    if (thread > 0) sqlite3_bind_int64(s, 6, thread);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_event ev;
        event_row(s, &ev);
        ev.reply_to = sqlite3_column_int64(s, 8);
        ev.thread = sqlite3_column_int64(s, 9);
        ev.edited_at = sqlite3_column_int64(s, 10);
        ev.deleted = sqlite3_column_int(s, 11);
        ev.reply_count = sqlite3_column_int64(s, 12);
        ev.last_reply_seq = sqlite3_column_int64(s, 13);
        ev.state_seq = sqlite3_column_int64(s, 14);
        ev.reactions = (const char *)sqlite3_column_text(s, 15);
        ev.reactions_len = ev.reactions ? (size_t)sqlite3_column_bytes(s, 15) : 0;
        if (cb(ud, &ev)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "messages_page");
    sqlite3_reset(s);
    return rc;
}

static int sq_delivered_mark(struct store_conn *c, int64_t room_id, int64_t user_id,
                             int64_t session_id, int64_t seq, int64_t *out_seq)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERED_MARK);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, session_id);
    sqlite3_bind_int64(s, 4, seq);
    return step_int64(c, s, "delivered_mark", out_seq);
}

static int sq_receipts_list(struct store_conn *c, int64_t room_id, int limit, store_receipt_cb cb,
                            void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_RECEIPTS_LIST);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int(s, 2, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_receipt r = {.user_id = sqlite3_column_int64(s, 0),
                                  .read_seq = sqlite3_column_int64(s, 1),
                                  .delivered_seq = sqlite3_column_int64(s, 2),
                                  .share_read = sqlite3_column_int(s, 3)};
        if (cb(ud, &r)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "receipts_list");
    sqlite3_reset(s);
    return rc;
}

static int sq_settings_get(struct store_conn *c, int64_t user_id, int *share_read_receipts)
{
    sqlite3_stmt *s = stmt(c, SQL_SETTINGS_GET);
    int64_t v = 1;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    rc = step_int64(c, s, "settings_get", &v);
    if (rc == CD_E_NOT_FOUND) rc = CD_OK;
    *share_read_receipts = v != 0;
    return rc;
}

static int sq_settings_put(struct store_conn *c, int64_t user_id, int share_read_receipts)
{
    return exec_i4(c, SQL_SETTINGS_PUT, user_id, share_read_receipts != 0, 0, 0, 2);
}

/* ---- attachments ---- */

static void att_row(sqlite3_stmt *s, struct store_attachment *a)
{
    const char *t;
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", (t = (const char *)sqlite3_column_text(s, 0)) ? t : "");
    a->owner = sqlite3_column_int64(s, 1);
    a->size = sqlite3_column_int64(s, 2);
    snprintf(a->content_type, sizeof(a->content_type), "%s",
             (t = (const char *)sqlite3_column_text(s, 3)) ? t : "");
    snprintf(a->name, sizeof(a->name), "%s",
             (t = (const char *)sqlite3_column_text(s, 4)) ? t : "");
    snprintf(a->sha256, sizeof(a->sha256), "%s",
             (t = (const char *)sqlite3_column_text(s, 5)) ? t : "");
    a->created_at = sqlite3_column_int64(s, 6);
}

static int sq_attachment_insert(struct store_conn *c, const struct store_attachment *a)
{
    sqlite3_stmt *s = stmt(c, SQL_ATT_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->owner);
    sqlite3_bind_int64(s, 3, a->size);
    sqlite3_bind_text(s, 4, a->content_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, a->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, a->created_at);
    return step_done(c, s, "attachment_insert");
}

static int sq_attachment_get(struct store_conn *c, const char *id, struct store_attachment *out)
{
    sqlite3_stmt *s = stmt(c, SQL_ATT_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        att_row(s, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "attachment_get");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_attachment_readable(struct store_conn *c, const char *id, int64_t user, int *out)
{
    sqlite3_stmt *s = stmt(c, SQL_ATT_READABLE);
    int64_t v = 0;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, user);
    rc = step_int64(c, s, "attachment_readable", &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

static int sq_attachment_ref(struct store_conn *c, const char *id, int64_t room, int64_t seq)
{
    sqlite3_stmt *s = stmt(c, SQL_ATT_REF);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, room);
    sqlite3_bind_int64(s, 3, seq);
    return step_done(c, s, "attachment_ref");
}

static int sq_event_extra_put(struct store_conn *c, int64_t room, int64_t seq, const char *extra,
                              size_t len)
{
    return set_body(c, SQL_EXTRA_PUT, room, seq, extra, len);
}

static int sq_attachments_unref_message(struct store_conn *c, int64_t room, int64_t seq)
{
    int rc = exec_ii(c, SQL_UNREF_REFS, room, seq);
    return rc == CD_OK ? exec_ii(c, SQL_UNREF_EXTRA, room, seq) : rc;
}

static int sq_attachments_expire(struct store_conn *c, int64_t before_ms, int limit,
                                 int (*cb)(void *ud, const char *id), void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_ATT_EXPIRE);
    int rc, stop = 0;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, before_ms);
    sqlite3_bind_int(s, 2, limit);
    /* Every row is stepped (a RETURNING statement finishes its changes first). */
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (!stop) stop = cb(ud, (const char *)sqlite3_column_text(s, 0));
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "attachments_expire");
    sqlite3_reset(s);
    return rc;
}

/* ---- search ---- */

static int sq_search_index_put(struct store_conn *c, int64_t room, int64_t seq, const char *text,
                               size_t len)
{
    return set_body(c, SQL_SEARCH_PUT, room, seq, text, len);
}

/* An empty entry rather than none: it matches nothing, and the indexer, which skips messages
 * already in the index, never indexes the deleted text (a delete before the indexer got to it). */
static int sq_search_index_delete(struct store_conn *c, int64_t room, int64_t seq)
{
    return exec_ii(c, SQL_SEARCH_DEL, room, seq);
}

static int sq_search_index_log(struct store_conn *c, int limit, int *n)
{
    sqlite3_stmt *s;
    int64_t pos = 0, end = 0;
    int rc;

    *n = 0;
    if (!(s = stmt(c, SQL_SEARCH_POS))) return CD_E_IO;
    if ((rc = step_int64(c, s, "search_pos", &pos)) != CD_OK) return rc;
    if (!(s = stmt(c, SQL_SEARCH_SCAN_END))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, pos);
    sqlite3_bind_int(s, 2, limit);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_reset(s);
        return sq_err(c, "search_scan_end");
    }
    end = sqlite3_column_int64(s, 0);
    *n = sqlite3_column_int(s, 1);
    sqlite3_reset(s);
    if (*n == 0) return CD_OK;
    if ((rc = exec_ii(c, SQL_SEARCH_LOG, pos, end)) != CD_OK) return rc;
    if (!(s = stmt(c, SQL_SEARCH_POS_SET))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, end);
    return step_done(c, s, "search_pos_set");
}

static int sq_search(struct store_conn *c, const struct store_search_q *q, store_search_cb cb,
                     void *ud)
{
    sqlite3_stmt *s;
    size_t n = strlen(q->match), o = 0;
    char *fts = xmalloc(n * 3 + 3); /* every term quoted: "a" "b" */
    int rc;
    for (size_t i = 0; i <= n; i++) {
        int sep = i == n || q->match[i] == ' ';
        if (i == 0 || (q->match[i - 1] == ' ' && !sep)) fts[o++] = '"';
        if (sep) {
            if (i > 0 && q->match[i - 1] != ' ') fts[o++] = '"';
            if (i < n) fts[o++] = ' ';
        } else {
            fts[o++] = q->match[i];
        }
    }
    fts[o] = '\0';
    if (!(s = stmt(c, SQL_SEARCH))) {
        free(fts);
        return CD_E_IO;
    }
    sqlite3_bind_int64(s, 1, q->user);
    sqlite3_bind_text(s, 2, fts, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, q->before > 0 ? q->before : INT64_MAX);
    sqlite3_bind_int64(s, 4, q->room);
    sqlite3_bind_int(s, 5, q->limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_search_hit h = {
            .room_id = sqlite3_column_int64(s, 0),
            .seq = sqlite3_column_int64(s, 1),
            .sender = sqlite3_column_int64(s, 2),
            .ts = sqlite3_column_int64(s, 3),
            .pos = sqlite3_column_int64(s, 4),
            .snippet = (const char *)sqlite3_column_text(s, 5),
            .snippet_len = (size_t)sqlite3_column_bytes(s, 5),
        };
        if (!h.snippet) h.snippet = "";
        if (cb(ud, &h)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    /* A query FTS5 cannot parse is the caller's (chat/search.c quotes every term, so this is
     * not expected). */
    if (rc == SQLITE_ERROR && strstr(sqlite3_errmsg(c->db), "fts5"))
        rc = CD_E_INVALID_FIELD;
    else
        rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "search");
    sqlite3_reset(s);
    free(fts);
    return rc;
}

/* Copy the WAL back into the database without blocking the writer or readers (PASSIVE). Once
 * every frame is copied, the writer's next transaction restarts the WAL from its beginning (the
 * file's pages are reused, not regrown); journal_size_limit trims it after a burst. */
static int sq_checkpoint(struct store_conn *c, int *wal_frames)
{
    int done = 0;
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, wal_frames, &done);
    if (rc == SQLITE_BUSY) return CD_OK; /* another checkpoint is running: retried later */
    if (rc != SQLITE_OK) return sq_err(c, "checkpoint");
    return CD_OK;
}

/* Rewrite the schema's user_version with its own value: page 1 is dirtied, so the commit must
 * write a WAL frame (and fails when the disk is full), while nothing changes. */
static int sq_probe(struct store_conn *c)
{
    sqlite3_stmt *s;
    char sql[64];
    int v;

    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return sq_err(c, "probe");
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return sq_err(c, "probe");
    }
    v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v);
    return sq_exec(c->db, sql);
}

/* ---- people and room features ---- */

#define PROFILE_NCOLS 8

static void profile_row(sqlite3_stmt *s, int col, struct store_profile *out)
{
    out->id = sqlite3_column_int64(s, col);
    text_col(s, col + 1, out->username, sizeof(out->username));
    text_col(s, col + 2, out->display_name, sizeof(out->display_name));
    text_col(s, col + 3, out->avatar, sizeof(out->avatar));
    text_col(s, col + 4, out->status_text, sizeof(out->status_text));
    out->created_at = sqlite3_column_int64(s, col + 5);
    out->last_seen = sqlite3_column_int64(s, col + 6);
    out->deleted_at = sqlite3_column_int64(s, col + 7);
}

/* Rows of (profile[, pair created_at]) or (member, profile). */
static int each_profile(struct store_conn *c, sqlite3_stmt *s, const char *what, int with_member,
                        int with_at, store_profile_cb cb, void *ud)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_profile p;
        struct store_member m;
        int64_t at = 0;
        if (with_member) member_row(s, 0, &m);
        profile_row(s, with_member ? 5 : 0, &p);
        if (with_at) at = sqlite3_column_int64(s, PROFILE_NCOLS);
        if (cb(ud, &p, with_member ? &m : NULL, at)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, what);
    sqlite3_reset(s);
    return rc;
}

static int sq_user_insert_id(struct store_conn *c, int64_t id, const char *username,
                             const char *pwhash, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_INSERT_ID);
    struct store_user u;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, username, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, now_ms);
    rc = step_done(c, s, "user_insert_id");
    if (rc == CD_OK) { /* the outbox's user.created, as user_insert writes it */
        struct jsonw w;
        char eid[32];
        jsonw_init(&w, 128);
        store__user_created_json(&w, eid, id, username, now_ms);
        rc = outbox_other(c, 0, "user.created", eid, now_ms, &w);
        jsonw_free(&w);
    }
    if (rc != CD_E_CONFLICT) return rc;
    rc = sq_user_by_name(c, username, &u);
    return rc == CD_OK ? CD_E_USERNAME_TAKEN : rc == CD_E_NOT_FOUND ? CD_E_CONFLICT : rc;
}

static int sq_profile_get(struct store_conn *c, int64_t id, struct store_profile *out)
{
    sqlite3_stmt *s = stmt(c, SQL_PROFILE_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        profile_row(s, 0, out);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "profile_get");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_profile_set(struct store_conn *c, int64_t id, const char *display_name,
                          const char *avatar, const char *status_text)
{
    sqlite3_stmt *s = stmt(c, SQL_PROFILE_SET);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    if (display_name) sqlite3_bind_text(s, 2, display_name, -1, SQLITE_STATIC);
    if (avatar) sqlite3_bind_text(s, 3, avatar, -1, SQLITE_STATIC);
    if (status_text) sqlite3_bind_text(s, 4, status_text, -1, SQLITE_STATIC);
    return step_one(c, s, "profile_set");
}

/* A range scan of the username index (byte order: SQLite's BINARY collation). */
static int sq_users_by_prefix(struct store_conn *c, const char *lo, const char *hi,
                              const char *after, int limit, store_profile_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_USERS_BY_PREFIX);
    if (!s) return CD_E_IO;
    sqlite3_bind_text(s, 1, lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, hi, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, after, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 4, limit);
    return each_profile(c, s, "users_by_prefix", 0, 0, cb, ud);
}

static int sq_user_set_pwhash(struct store_conn *c, int64_t id, const char *pwhash)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_SET_PWHASH);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, pwhash, -1, SQLITE_STATIC);
    return step_one(c, s, "user_set_pwhash");
}

static int sq_user_erase(struct store_conn *c, int64_t id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, SQL_USER_ERASE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, now_ms);
    if ((rc = step_one(c, s, "user_erase")) != CD_OK) return rc;
    if ((rc = exec_ii(c, SQL_USER_ERASE_CONTACTS, id, 0)) != CD_OK) return rc;
    return exec_ii(c, SQL_USER_ERASE_BLOCKS, id, 0);
}

static int sq_sessions_of_user(struct store_conn *c, int64_t user_id, int64_t now_ms,
                               int (*cb)(void *ud, const struct store_session *s), void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_SESSIONS_OF_USER);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, now_ms);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_session ss = {sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                                   sqlite3_column_int64(s, 2)};
        if (cb(ud, &ss)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "sessions_of_user");
    sqlite3_reset(s);
    return rc;
}

/* The statements of table (enum store_pair): put, del, list, exists in that order. */
static enum sql_id pair_stmt(int table, int op)
{
    return (enum sql_id)((table == STORE_BLOCKS ? SQL_blocks_PUT : SQL_contacts_PUT) + op);
}

static int sq_pair_put(struct store_conn *c, int table, int64_t user, int64_t other, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(c, pair_stmt(table, 0));
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user);
    sqlite3_bind_int64(s, 2, other);
    sqlite3_bind_int64(s, 3, now_ms);
    return step_done(c, s, "pair_put");
}

static int sq_pair_delete(struct store_conn *c, int table, int64_t user, int64_t other)
{
    sqlite3_stmt *s = stmt(c, pair_stmt(table, 1));
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user);
    sqlite3_bind_int64(s, 2, other);
    return step_one(c, s, "pair_delete");
}

static int sq_pair_list(struct store_conn *c, int table, int64_t user, int64_t after, int limit,
                        store_profile_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, pair_stmt(table, 2));
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    return each_profile(c, s, "pair_list", 0, 1, cb, ud);
}

static int sq_pair_exists(struct store_conn *c, int table, int64_t user, int64_t other, int *out)
{
    sqlite3_stmt *s = stmt(c, pair_stmt(table, 3));
    int64_t v = 0;
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user);
    sqlite3_bind_int64(s, 2, other);
    rc = step_int64(c, s, "pair_exists", &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

static int sq_blocks_all(struct store_conn *c, int (*cb)(void *ud, int64_t user, int64_t other),
                         void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_BLOCKS_ALL);
    int rc;
    if (!s) return CD_E_IO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (cb(ud, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1))) {
            rc = SQLITE_DONE;
            break;
        }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "blocks_all");
    sqlite3_reset(s);
    return rc;
}

/* One rooms lookup and one or two primary-key probes (a direct room's two members). */
static int sq_member_access(struct store_conn *c, int64_t room_id, int64_t user_id,
                            struct store_access *out)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_ACCESS);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->state = sqlite3_column_int(s, 0);
        out->kind = sqlite3_column_int(s, 1);
        out->member = sqlite3_column_int(s, 2) != 0;
        out->dm_blocked = sqlite3_column_int(s, 3) != 0;
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "member_access");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_room_set_flags(struct store_conn *c, int64_t room_id, int is_public, int state)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOM_SET_FLAGS);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int(s, 2, is_public);
    sqlite3_bind_int(s, 3, state);
    return step_one(c, s, "room_set_flags");
}

static int sq_rooms_public(struct store_conn *c, int64_t after, int limit, store_room_cb cb,
                           void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_ROOMS_PUBLIC);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_room r;
        room_row(s, 0, &r);
        if (cb(ud, &r, NULL)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? CD_OK : sq_err(c, "rooms_public");
    sqlite3_reset(s);
    return rc;
}

static int sq_members_page(struct store_conn *c, int64_t room_id, int64_t after, int limit,
                           store_profile_cb cb, void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBERS_PAGE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    return each_profile(c, s, "members_page", 1, 0, cb, ud);
}

static int sq_member_hide(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq)
{
    sqlite3_stmt *s = stmt(c, SQL_MEMBER_HIDE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, room_id);
    sqlite3_bind_int64(s, 2, user_id);
    sqlite3_bind_int64(s, 3, seq);
    return step_one(c, s, "member_hide");
}

static int sq_rooms_visible(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                            store_room_cb cb, void *ud)
{
    sqlite3_stmt *s;
    if (!(s = stmt(c, SQL_ROOMS_VISIBLE))) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, after);
    sqlite3_bind_int(s, 3, limit);
    return each_member(c, s, "rooms_visible", 1, cb, ud);
}

static int sq_invite_insert(struct store_conn *c, const struct store_invite *inv)
{
    sqlite3_stmt *s = stmt(c, SQL_INVITE_INSERT);
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, inv->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, inv->room_id);
    sqlite3_bind_int64(s, 3, inv->created_by);
    sqlite3_bind_int64(s, 4, inv->created_at);
    sqlite3_bind_int64(s, 5, inv->expires_at);
    sqlite3_bind_int64(s, 6, inv->max_uses);
    return step_done(c, s, "invite_insert");
}

static int sq_invite_get(struct store_conn *c, const uint8_t hash[32], struct store_invite *out)
{
    sqlite3_stmt *s = stmt(c, SQL_INVITE_GET);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memcpy(out->hash, hash, 32);
        out->room_id = sqlite3_column_int64(s, 0);
        out->created_by = sqlite3_column_int64(s, 1);
        out->created_at = sqlite3_column_int64(s, 2);
        out->expires_at = sqlite3_column_int64(s, 3);
        out->max_uses = sqlite3_column_int64(s, 4);
        out->uses = sqlite3_column_int64(s, 5);
        rc = CD_OK;
    } else {
        rc = rc == SQLITE_DONE ? CD_E_NOT_FOUND : sq_err(c, "invite_get");
    }
    sqlite3_reset(s);
    return rc;
}

static int sq_invite_use(struct store_conn *c, const uint8_t hash[32])
{
    sqlite3_stmt *s = stmt(c, SQL_INVITE_USE);
    if (!s) return CD_E_IO;
    sqlite3_bind_blob(s, 1, hash, 32, SQLITE_STATIC);
    return step_one(c, s, "invite_use");
}

/* ---- administration (admin/admin.c) ---- */

static int sq_users_list(struct store_conn *c, int64_t after, int limit,
                         int (*cb)(void *ud, const struct store_user *u), void *ud)
{
    sqlite3_stmt *s = stmt(c, SQL_USERS_LIST);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_user u;
        u.id = sqlite3_column_int64(s, 0);
        text_col(s, 1, u.username, sizeof(u.username));
        text_col(s, 2, u.pwhash, sizeof(u.pwhash));
        u.created_at = sqlite3_column_int64(s, 3);
        u.last_seen = sqlite3_column_int64(s, 4);
        if (cb(ud, &u)) break;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CD_OK : sq_err(c, "users_list");
}

static int sq_sessions_revoke_user(struct store_conn *c, int64_t user_id, int64_t now_ms,
                                   int64_t *n)
{
    int rc = exec_ii(c, SQL_SESSIONS_REVOKE_USER, user_id, now_ms);
    if (n) *n = rc == CD_OK ? sqlite3_changes(c->db) : 0;
    return rc;
}

/* ---- delivery retention, dead-letter deletion, gauges, the notifier's windows ---- */

static int sq_deliveries_prune(struct store_conn *c, int64_t before_ms, int limit, int64_t *n)
{
    int rc = exec_ii(c, SQL_DELIVERIES_PRUNE, before_ms, limit);
    *n = rc == CD_OK ? sqlite3_changes(c->db) : 0;
    return rc;
}

static int sq_delivery_delete(struct store_conn *c, int64_t id)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERY_DELETE);
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, id);
    return step_one(c, s, "delivery_delete");
}

static int sq_deliveries_count(struct store_conn *c, int state, int64_t *n)
{
    sqlite3_stmt *s = stmt(c, SQL_DELIVERIES_COUNT);
    if (!s) return CD_E_IO;
    sqlite3_bind_int(s, 1, state);
    return step_int64(c, s, "deliveries_count", n);
}

static int sq_notify_take(struct store_conn *c, int64_t user_id, int64_t room_id, int64_t ts,
                          int64_t window_ms, int *taken)
{
    sqlite3_stmt *s = stmt(c, SQL_NOTIFY_TAKE);
    int rc;
    if (!s) return CD_E_IO;
    sqlite3_bind_int64(s, 1, user_id);
    sqlite3_bind_int64(s, 2, room_id);
    sqlite3_bind_int64(s, 3, ts);
    sqlite3_bind_int64(s, 4, window_ms);
    rc = step_done(c, s, "notify_take");
    *taken = rc == CD_OK && sqlite3_changes(c->db) > 0;
    return rc;
}

static int sq_notify_prune(struct store_conn *c, int64_t before_ms, int limit, int64_t *n)
{
    int rc = exec_ii(c, SQL_NOTIFY_PRUNE, before_ms, limit);
    *n = rc == CD_OK ? sqlite3_changes(c->db) : 0;
    return rc;
}

const struct store_ops store_sqlite_ops = {
    .checkpoint = sq_checkpoint,
    .probe = sq_probe,
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .conn_open = sq_conn_open,
    .conn_close = sq_conn_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .savepoint_release = sq_savepoint_release,
    .user_insert = sq_user_insert,
    .user_get = sq_user_get,
    .user_by_name = sq_user_by_name,
    .user_set_last_seen = sq_user_set_last_seen,
    .session_insert = sq_session_insert,
    .session_revoke = sq_session_revoke,
    .sessions_revoked_since = sq_sessions_revoked_since,
    .refresh_insert = sq_refresh_insert,
    .refresh_by_hash = sq_refresh_by_hash,
    .refresh_mark_used = sq_refresh_mark_used,
    .room_insert = sq_room_insert,
    .room_get = sq_room_get,
    .rooms_ahead = sq_rooms_ahead,
    .room_by_dm_key = sq_room_by_dm_key,
    .room_update = sq_room_update,
    .member_get = sq_member_get,
    .member_put = sq_member_put,
    .member_delete = sq_member_delete,
    .members_list = sq_members_list,
    .rooms_of_user = sq_rooms_of_user,
    .user_room_counts = sq_user_room_counts,
    .users_share_room = sq_users_share_room,
    .event_append = sq_event_append,
    .event_by_client_id = sq_event_by_client_id,
    .events_page = sq_events_page,
    .read_mark = sq_read_mark,
    .unread_count = sq_unread_count,
    .outbox_page = sq_outbox_page,
    .consumer_get = sq_consumer_get,
    .consumer_put = sq_consumer_put,
    .apikey_insert = sq_apikey_insert,
    .apikey_by_hash = sq_apikey_by_hash,
    .apikey_list = sq_apikey_list,
    .apikey_revoke = sq_apikey_revoke,
    .webhook_insert = sq_webhook_insert,
    .webhook_delete = sq_webhook_delete,
    .webhook_get = sq_webhook_get,
    .webhooks_list = sq_webhooks_list,
    .delivery_insert = sq_delivery_insert,
    .deliveries_list = sq_deliveries_list,
    .delivery_claim = sq_delivery_claim,
    .delivery_update = sq_delivery_update,
    .delivery_replay = sq_delivery_replay,
    .room_mute_put = sq_room_mute_put,
    .room_mute_get = sq_room_mute_get,
    .session_insert_id = sq_session_insert_id,
    .msg_get = sq_msg_get,
    .msg_thread_put = sq_msg_thread_put,
    .msg_edit = sq_msg_edit,
    .msg_delete = sq_msg_delete,
    .reaction_set = sq_reaction_set,
    .msg_touch = sq_msg_touch,
    .messages_page = sq_messages_page,
    .delivered_mark = sq_delivered_mark,
    .receipts_list = sq_receipts_list,
    .settings_get = sq_settings_get,
    .settings_put = sq_settings_put,
    .user_insert_id = sq_user_insert_id,
    .profile_get = sq_profile_get,
    .profile_set = sq_profile_set,
    .users_by_prefix = sq_users_by_prefix,
    .user_set_pwhash = sq_user_set_pwhash,
    .user_erase = sq_user_erase,
    .sessions_of_user = sq_sessions_of_user,
    .pair_put = sq_pair_put,
    .pair_delete = sq_pair_delete,
    .pair_list = sq_pair_list,
    .pair_exists = sq_pair_exists,
    .blocks_all = sq_blocks_all,
    .member_access = sq_member_access,
    .room_set_flags = sq_room_set_flags,
    .rooms_public = sq_rooms_public,
    .members_page = sq_members_page,
    .member_hide = sq_member_hide,
    .rooms_visible = sq_rooms_visible,
    .invite_insert = sq_invite_insert,
    .invite_get = sq_invite_get,
    .invite_use = sq_invite_use,
    .users_list = sq_users_list,
    .sessions_revoke_user = sq_sessions_revoke_user,
    .attachment_insert = sq_attachment_insert,
    .attachment_get = sq_attachment_get,
    .attachment_readable = sq_attachment_readable,
    .attachment_ref = sq_attachment_ref,
    .event_extra_put = sq_event_extra_put,
    .attachments_unref_message = sq_attachments_unref_message,
    .attachments_expire = sq_attachments_expire,
    .search_index_put = sq_search_index_put,
    .search_index_delete = sq_search_index_delete,
    .search_index_log = sq_search_index_log,
    .search = sq_search,
    .deliveries_prune = sq_deliveries_prune,
    .delivery_delete = sq_delivery_delete,
    .deliveries_count = sq_deliveries_count,
    .notify_take = sq_notify_take,
    .notify_prune = sq_notify_prune,
    .outbox_head = sq_outbox_head,
};
