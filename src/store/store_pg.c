/* store_pg.c - the PostgreSQL backend (libpq): numbered migrations under an advisory lock,
 * statements prepared once per connection, a per-room seq counter row, and the writer's
 * statements pipelined so a group commit waits only for the answers its callers need.
 *
 * Seq: rooms.last_seq, moved only by a transaction holding the row's lock until commit, so
 * concurrent writers (other nodes) on the same room queue behind it and an aborted transaction
 * gives its numbers back: gap-free with any number of writers; no seq outlives a transaction.
 * Plain appends run `UPDATE rooms SET last_seq = last_seq + 1 ... RETURNING` with their INSERT
 * (one round trip each). Optimistic batches (every job can run again) read the counters of the
 * rooms they lock, number appends to them locally under those locks, send their rows as one
 * INSERT of arrays and write the counters back (checked) before COMMIT; a duplicate
 * client_msg_id then raises a unique violation, nothing commits, and the batch runs again. When
 * the writer already knows every counter (struct ctr), it numbers from them without waiting for
 * the locks: the batch is one round trip, and a stale guess aborts it the same way.
 *
 * Deadlocks: a batch locks the rows of every room it writes, in ascending id order, right after
 * BEGIN (lock_rooms), before any other lock; two batches therefore never wait on each other's
 * rooms in opposite orders. A deadlock or serialization failure that still happens (other rows)
 * aborts the transaction and commit/rollback return CD_AGAIN: the writer runs the batch again.
 *
 * Pipeline (writer connection only): statements whose result nobody needs (BEGIN, SAVEPOINT,
 * RELEASE, ROLLBACK TO, lock_rooms when not optimistic, the optimistic INSERTs) are sent and not
 * waited for; their results are read with the next statement that needs one, which is one round
 * trip for all of them. COMMIT is sent with a Sync and waited for. An error makes the server skip
 * everything up to the next Sync, so after one the connection sends a Sync at once; a
 * transaction with an unrecovered error is never committed (COMMIT of an aborted transaction
 * would answer ROLLBACK, which is checked too).
 *
 * Connection loss: the op fails with CD_E_UNAVAILABLE, the connection is marked down and is
 * reopened on its next use (the writer's next batch, a reader's next read). Nothing is reported
 * committed unless COMMIT answered COMMIT. */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_pg_schema.h"
#include "store/store_json.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/rbuf.h"
#include "util/status.h"

struct store {
    char *url;
};

#define ROOM_COLS                                                                                  \
    "r.id, r.kind, r.name, r.topic, r.created_by, r.created_at, r.last_seq, r.member_count, "      \
    "r.is_public, r.state"
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
    X(T##_PUT, "INSERT INTO " #T "(user_id, other_id, created_at) VALUES ($1::bigint, "            \
               "$2::bigint, $3::bigint) ON CONFLICT DO NOTHING")                                   \
    X(T##_DEL, "DELETE FROM " #T " WHERE user_id = $1::bigint AND other_id = $2::bigint")          \
    X(T##_LIST, "SELECT " PROFILE_COLS ", p.created_at FROM " #T " p JOIN users u "                \
                "ON u.id = p.other_id WHERE p.user_id = $1::bigint AND p.other_id > $2::bigint "   \
                "ORDER BY p.other_id LIMIT $3::bigint")                                            \
    X(T##_EXISTS, "SELECT EXISTS (SELECT 1 FROM " #T " WHERE user_id = $1::bigint "                \
                  "AND other_id = $2::bigint)::int")

/* A page of the log with each message's derived state in one statement (see store_sqlite.c);
 * $5 is the viewer. */
#define MSG_PAGE(where, order)                                                                     \
    "SELECT e.room_id, e.seq, e.kind, e.sender, e.ts, e.client_msg_id, e.body, (SELECT x.extra "   \
    "FROM event_extras x WHERE x.room_id = e.room_id AND x.seq = e.seq), "                         \
    "coalesce(s.reply_to, 0), coalesce(s.thread, 0), coalesce(s.edited_at, 0), "                   \
    "coalesce(s.deleted, 0), coalesce(s.reply_count, 0), coalesce(s.last_reply_seq, 0), "          \
    "coalesce(s.state_seq, 0), (SELECT string_agg(x, E'\\n' ORDER BY f, em) FROM (SELECT "         \
    "r.emoji || E'\\t' || count(*) || E'\\t' || bool_or(r.user_id = $5::bigint)::int AS x, "       \
    "min(r.at) AS f, r.emoji AS em FROM reactions r WHERE r.room_id = e.room_id AND r.seq = "      \
    "e.seq GROUP BY r.emoji) agg) FROM events e LEFT JOIN msg_state s ON s.room_id = e.room_id "   \
    "AND s.seq = e.seq WHERE " where " ORDER BY " order " LIMIT $3::bigint"

/* Every statement, prepared once per connection on first use (named "s<index>"). A NULL
 * `LIMIT $n` means no limit. Strings are bound in binary format (raw bytes, no terminator). */
#define Q_PREPARE_BASE 16 /* = Q_PREPARE below */
#define SQL_MAP(X)                                                                                 \
    X(BEGIN, "BEGIN")                                                                              \
    X(COMMIT, "COMMIT")                                                                            \
    X(ROLLBACK, "ROLLBACK")                                                                        \
    X(SAVEPOINT, "SAVEPOINT job")                                                                  \
    X(RELEASE, "RELEASE job")                                                                      \
    X(ROLLBACK_TO, "ROLLBACK TO job")                                                              \
    X(LOCK_ROOMS, "SELECT id, last_seq FROM rooms WHERE id = ANY($1::bigint[]) ORDER BY id "       \
                  "FOR NO KEY UPDATE")                                                             \
    X(ROOMS_SET_SEQ, "UPDATE rooms r SET last_seq = CASE WHEN r.last_seq = v.base THEN v.seq END " \
                     "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, seq, base) "  \
                     "WHERE r.id = v.id")                                                          \
    X(ROOMS_AHEAD, "SELECT r.id, r.last_seq FROM rooms r JOIN unnest($1::bigint[], $2::bigint[]) " \
                   "AS f(id, seen) ON r.id = f.id WHERE r.last_seq > f.seen")                      \
    X(USER_INSERT, "INSERT INTO users(username, pwhash, created_at) "                              \
                   "VALUES ($1::text, $2::text, $3::bigint) "                                      \
                   "ON CONFLICT (username) DO NOTHING RETURNING id")                               \
    X(USER_GET, "SELECT id, username, pwhash, created_at, last_seen FROM users "                   \
                "WHERE id = $1::bigint")                                                           \
    X(USER_BY_NAME, "SELECT id, username, pwhash, created_at, last_seen FROM users "               \
                    "WHERE username = $1::text")                                                   \
    X(USER_LAST_SEEN, "UPDATE users SET last_seen = $2::bigint WHERE id = $1::bigint")             \
    X(SESSION_INSERT, "INSERT INTO sessions(user_id, created_at) VALUES ($1::bigint, $2::bigint) " \
                      "RETURNING id")                                                              \
    X(SESSION_INSERT_ID, "INSERT INTO sessions(id, user_id, created_at) VALUES ($1::bigint, "      \
                         "$2::bigint, $3::bigint) ON CONFLICT DO NOTHING RETURNING id")            \
    X(SESSION_REVOKE, "UPDATE sessions SET revoked_at = $2::bigint "                               \
                      "WHERE id = $1::bigint AND revoked_at IS NULL")                              \
    X(SESSIONS_REVOKED_SINCE, "SELECT id, revoked_at FROM sessions "                               \
                              "WHERE revoked_at >= $1::bigint")                                    \
    X(REFRESH_INSERT, "INSERT INTO refresh_tokens(session_id, user_id, hash, created_at, "         \
                      "expires_at) VALUES ($1::bigint, $2::bigint, $3::bytea, $4::bigint, "        \
                      "$5::bigint) RETURNING id")                                                  \
    X(REFRESH_BY_HASH, "SELECT r.id, r.session_id, r.user_id, r.created_at, r.expires_at, "        \
                       "coalesce(r.used_at, 0), (s.revoked_at IS NOT NULL)::int "                  \
                       "FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id "             \
                       "WHERE r.hash = $1::bytea")                                                 \
    X(REFRESH_USED, "UPDATE refresh_tokens SET used_at = $2::bigint WHERE id = $1::bigint")        \
    X(ROOM_INSERT, "INSERT INTO rooms(kind, name, topic, created_by, created_at, dm_key) "         \
                   "VALUES ($1::int, $2::text, $3::text, $4::bigint, $5::bigint, $6::text) "       \
                   "ON CONFLICT (dm_key) DO NOTHING RETURNING id")                                 \
    X(ROOM_GET, "SELECT " ROOM_COLS " FROM rooms r WHERE r.id = $1::bigint")                       \
    X(ROOM_BY_DM_KEY, "SELECT id FROM rooms WHERE dm_key = $1::text")                              \
    X(ROOM_UPDATE, "UPDATE rooms SET name = coalesce($2::text, name), "                            \
                   "topic = coalesce($3::text, topic) WHERE id = $1::bigint")                      \
    X(ROOM_COUNT_ADD, "UPDATE rooms SET member_count = member_count + $2::bigint "                 \
                      "WHERE id = $1::bigint")                                                     \
    X(MEMBER_GET, "SELECT " MEMBER_COLS " FROM members m "                                         \
                  "WHERE m.room_id = $1::bigint AND m.user_id = $2::bigint")                       \
    X(MEMBER_INSERT, "INSERT INTO members(room_id, user_id, role, joined_seq, read_seq) "          \
                     "VALUES ($1::bigint, $2::bigint, $3::int, $4::bigint, $5::bigint)")           \
    X(MEMBER_SET_ROLE, "UPDATE members SET role = $3::int "                                        \
                       "WHERE room_id = $1::bigint AND user_id = $2::bigint")                      \
    X(MEMBER_DELETE, "DELETE FROM members WHERE room_id = $1::bigint AND user_id = $2::bigint")    \
    X(MEMBERS_LIST, "SELECT " MEMBER_COLS " FROM members m WHERE m.room_id = $1::bigint "          \
                    "ORDER BY m.user_id LIMIT $2::bigint")                                         \
    X(ROOMS_OF_USER, "SELECT " ROOM_COLS ", " MEMBER_COLS " FROM members m "                       \
                     "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1::bigint "              \
                     "AND m.room_id > $2::bigint ORDER BY m.room_id LIMIT $3::bigint")             \
    X(PROBE, "SELECT 1")                                                                           \
    X(USER_ROOM_COUNTS, "SELECT count(*), coalesce(sum((m.role = 2)::int), 0) FROM members m "     \
                        "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1::bigint "           \
                        "AND r.kind = 0")                                                          \
    X(USERS_SHARE, "SELECT EXISTS (SELECT 1 FROM members a JOIN members b "                        \
                   "ON b.room_id = a.room_id AND b.user_id = $2::bigint "                          \
                   "WHERE a.user_id = $1::bigint)::int")                                           \
    X(EVENT_APPEND,                                                                                \
      "WITH s AS (UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1::bigint "                 \
      "RETURNING last_seq), "                                                                      \
      "i AS (INSERT INTO events(room_id, seq, kind, sender, ts, client_msg_id, body) "             \
      "SELECT $1::bigint, s.last_seq, $2::int, $3::bigint, $4::bigint, $5::text, $6::text FROM s " \
      "ON CONFLICT (room_id, sender, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING "   \
      "RETURNING seq) "                                                                            \
      "SELECT s.last_seq, (SELECT i.seq FROM i) FROM s")                                           \
    X(EVENT_UNBUMP, "UPDATE rooms SET last_seq = last_seq - 1 WHERE id = $1::bigint")              \
    X(EVENT_INSERT_MANY,                                                                           \
      "INSERT INTO events(room_id, seq, kind, sender, ts, client_msg_id, body) "                   \
      "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], "                               \
      "$4::bigint[], $5::bigint[], $6::text[], $7::text[])")                                       \
    X(EVENT_BY_CLIENT_ID, "SELECT " EVENT_COLS " FROM events WHERE room_id = $3::bigint "          \
                          "AND sender = $1::bigint AND client_msg_id = $2::text")                  \
    X(EVENTS_ASC, "SELECT " EVENT_COLS " FROM events WHERE room_id = $1::bigint "                  \
                  "AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint")                            \
    X(EVENTS_DESC, "SELECT " EVENT_COLS " FROM events WHERE room_id = $1::bigint "                 \
                   "AND seq > $2::bigint ORDER BY seq DESC LIMIT $3::bigint")                      \
    X(EVENTS_ASC_BEFORE, "SELECT " EVENT_COLS " FROM events WHERE room_id = $1::bigint "           \
                         "AND seq > $2::bigint AND seq < $4::bigint ORDER BY seq "                 \
                         "LIMIT $3::bigint")                                                       \
    X(EVENTS_DESC_BEFORE, "SELECT " EVENT_COLS " FROM events WHERE room_id = $1::bigint "          \
                          "AND seq > $2::bigint AND seq < $4::bigint ORDER BY seq DESC "           \
                          "LIMIT $3::bigint")                                                      \
    X(READ_MARK,                                                                                   \
      "UPDATE members m SET read_seq = greatest(m.read_seq, least($3::bigint, "                    \
      "coalesce($4::bigint, (SELECT r.last_seq FROM rooms r WHERE r.id = $1::bigint)))) "          \
      "WHERE m.room_id = $1::bigint AND m.user_id = $2::bigint RETURNING m.read_seq")              \
    X(UNREAD_COUNT, "SELECT (SELECT count(*) FROM events WHERE room_id = $1::bigint "              \
                    "AND seq > $3::bigint AND seq <= $3::bigint + $5::bigint AND kind = $4::int "  \
                    "AND sender <> $2::bigint), EXISTS (SELECT 1 FROM events WHERE "               \
                    "room_id = $1::bigint AND seq > $3::bigint + $5::bigint)::int")                \
    X(OUTBOX_INSERT,                                                                               \
      "WITH h AS (UPDATE outbox_head SET pos = pos + $1::bigint RETURNING pos) "                   \
      "INSERT INTO outbox(pos, room_id, seq, type, eid, ts, body) "                                \
      "SELECT h.pos - $1::bigint + v.n, v.room, v.seq, v.type, v.eid, v.ts, v.body FROM h, "       \
      "unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[]) "      \
      "WITH ORDINALITY AS v(room, seq, type, eid, ts, body, n)")                                   \
    X(OUTBOX_PAGE, "SELECT o.pos, o.room_id, o.seq, o.type, o.eid, o.ts, o.body, e.kind, "         \
                   "e.sender, e.ts, e.client_msg_id, e.body, (SELECT x.extra FROM event_extras x " \
                   "WHERE x.room_id = o.room_id AND x.seq = o.seq), coalesce(s.reply_to, 0), "     \
                   "coalesce(s.thread, 0) FROM outbox o LEFT JOIN events e ON o.seq > 0 AND "      \
                   "e.room_id = o.room_id AND e.seq = o.seq LEFT JOIN msg_state s ON o.seq > 0 "   \
                   "AND s.room_id = o.room_id AND s.seq = o.seq "                                  \
                   "WHERE o.pos > $1::bigint ORDER BY o.pos LIMIT $2::bigint")                     \
    X(CONSUMER_GET, "SELECT pos FROM outbox_consumers WHERE name = $1::text")                      \
    X(CONSUMER_PUT, "INSERT INTO outbox_consumers(name, pos) VALUES ($1::text, $2::bigint) "       \
                    "ON CONFLICT (name) DO UPDATE SET "                                            \
                    "pos = greatest(outbox_consumers.pos, excluded.pos)")                          \
    X(OUTBOX_HEAD, "SELECT coalesce(max(pos), 0) FROM outbox")                                     \
    X(APIKEY_INSERT, "INSERT INTO api_keys(name, hash, created_at) "                               \
                     "VALUES ($1::text, $2::bytea, $3::bigint) RETURNING id")                      \
    X(APIKEY_BY_HASH, "SELECT id, name, created_at, coalesce(revoked_at, 0) FROM api_keys "        \
                      "WHERE hash = $1::bytea")                                                    \
    X(APIKEY_LIST, "SELECT id, name, created_at, coalesce(revoked_at, 0) FROM api_keys "           \
                   "ORDER BY id")                                                                  \
    X(APIKEY_REVOKE, "UPDATE api_keys SET revoked_at = $2::bigint "                                \
                     "WHERE id = $1::bigint AND revoked_at IS NULL")                               \
    X(WEBHOOK_INSERT, "INSERT INTO webhooks(kind, url, secret, types, created_at) "                \
                      "VALUES ($1::int, $2, $3, $4, $5::bigint) RETURNING id")                     \
    X(WEBHOOK_DELETE, "DELETE FROM webhooks WHERE id = $1::bigint")                                \
    X(WEBHOOK_GET, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = $1::bigint")                  \
    X(WEBHOOKS_LIST, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY id")                          \
    X(DELIVERY_INSERT, "INSERT INTO deliveries(endpoint_id, event_id, body, next_at, created_at) " \
                       "VALUES ($1::bigint, $2, $3, $4::bigint, $5::bigint) "                      \
                       "ON CONFLICT (endpoint_id, event_id) DO NOTHING")                           \
    X(DELIVERIES_DUE, "SELECT " DELIVERY_COLS " FROM deliveries WHERE state = 0 AND "              \
                      "next_at <= $1::bigint AND id > $2::bigint ORDER BY next_at, id "            \
                      "LIMIT $3::bigint")                                                          \
    X(DELIVERIES_STATE, "SELECT " DELIVERY_COLS " FROM deliveries WHERE state = $1::int AND "      \
                        "id > $2::bigint ORDER BY id LIMIT $3::bigint")                            \
    X(DELIVERY_UPDATE, "UPDATE deliveries SET state = $2::int, attempts = $3::int, "               \
                       "next_at = $4::bigint, last_error = $5 WHERE id = $1::bigint")              \
    X(DELIVERY_CLAIM, "UPDATE deliveries SET next_at = $3::bigint WHERE id = $1::bigint AND "      \
                      "state = 0 AND next_at <= $2::bigint")                                       \
    X(DELIVERY_REPLAY, "UPDATE deliveries SET state = 0, attempts = 0, next_at = $2::bigint "      \
                       "WHERE id = $1::bigint AND state = 2")                                      \
    X(MUTE_PUT, "INSERT INTO room_settings(room_id, user_id, muted) "                              \
                "VALUES ($1::bigint, $2::bigint, $3::int) ON CONFLICT (room_id, user_id) "         \
                "DO UPDATE SET muted = excluded.muted")                                            \
    X(MUTE_GET, "SELECT muted FROM room_settings WHERE room_id = $1::bigint AND "                  \
                "user_id = $2::bigint")                                                            \
    X(ATT_INSERT, "INSERT INTO attachments(" ATT_COLS ") VALUES ($1::text, $2::bigint, "           \
                  "$3::bigint, $4::text, $5::text, $6::text, $7::bigint)")                         \
    X(ATT_GET, "SELECT " ATT_COLS " FROM attachments WHERE id = $1::text")                         \
    X(ATT_READABLE, "SELECT (EXISTS (SELECT 1 FROM attachments WHERE id = $1::text "               \
                    "AND owner = $2::bigint) OR EXISTS (SELECT 1 FROM attachment_refs r "          \
                    "JOIN members m ON m.room_id = r.room_id AND m.user_id = $2::bigint "          \
                    "WHERE r.att_id = $1::text AND r.seq > m.joined_seq AND NOT EXISTS "           \
                    "(SELECT 1 FROM rooms d WHERE d.id = r.room_id AND d.state = 2)) OR EXISTS "   \
                    "(SELECT 1 FROM users u WHERE u.avatar = 'att_' || $1::text "                  \
                    "AND u.avatar <> ''))::int")                                                   \
    X(ATT_REF, "INSERT INTO attachment_refs(att_id, room_id, seq) "                                \
               "VALUES ($1::text, $2::bigint, $3::bigint) ON CONFLICT DO NOTHING")                 \
    X(EXTRA_PUT, "INSERT INTO event_extras(room_id, seq, extra) "                                  \
                 "VALUES ($1::bigint, $2::bigint, $3::text) "                                      \
                 "ON CONFLICT (room_id, seq) DO UPDATE SET extra = excluded.extra")                \
    X(UNREF_REFS, "DELETE FROM attachment_refs WHERE room_id = $1::bigint AND seq = $2::bigint")   \
    X(UNREF_EXTRA, "DELETE FROM event_extras WHERE room_id = $1::bigint AND seq = $2::bigint")     \
    X(ATT_EXPIRE, "DELETE FROM attachments WHERE id IN (SELECT a.id FROM attachments a "           \
                  "WHERE a.created_at < $1::bigint AND NOT EXISTS (SELECT 1 FROM "                 \
                  "attachment_refs r WHERE r.att_id = a.id) AND NOT EXISTS (SELECT 1 FROM users "  \
                  "u WHERE u.avatar = 'att_' || a.id AND u.avatar <> '') LIMIT $2::bigint) "       \
                  "RETURNING id")                                                                  \
    X(SEARCH_PUT, "INSERT INTO msg_search(room_id, seq, body) "                                    \
                  "VALUES ($1::bigint, $2::bigint, $3::text) "                                     \
                  "ON CONFLICT (room_id, seq) DO UPDATE SET body = excluded.body")                 \
    X(SEARCH_DEL,                                                                                  \
      "INSERT INTO msg_search(room_id, seq, body) VALUES ($1::bigint, $2::bigint, '') "            \
      "ON CONFLICT (room_id, seq) DO UPDATE SET body = ''")                                        \
    X(SEARCH_LOG, "WITH p AS (SELECT pos FROM search_pos FOR UPDATE SKIP LOCKED), "                \
                  "r AS (SELECT o.pos, o.room_id, o.seq FROM outbox o "                            \
                  "WHERE o.pos > (SELECT pos FROM p) ORDER BY o.pos LIMIT $1::bigint), "           \
                  "i AS (INSERT INTO msg_search(room_id, seq, body) SELECT e.room_id, e.seq, "     \
                  "e.body FROM r JOIN events e ON e.room_id = r.room_id AND e.seq = r.seq "        \
                  "WHERE e.kind = 0 ORDER BY r.pos ON CONFLICT (room_id, seq) DO NOTHING), "       \
                  "u AS (UPDATE search_pos SET pos = (SELECT max(pos) FROM r) "                    \
                  "WHERE EXISTS (SELECT 1 FROM r)) SELECT count(*) FROM r")                        \
    X(SEARCH, "SELECT h.room_id, h.seq, e.sender, e.ts, h.pos, ts_headline('simple', h.body, "     \
              "plainto_tsquery('simple', $2::text), 'StartSel=' || chr(1) || ', StopSel=' || "     \
              "chr(2) || ', MaxWords=32, MinWords=16') "                                           \
              "FROM (SELECT s.room_id, s.seq, s.pos, s.body FROM msg_search s "                    \
              "JOIN members m ON m.room_id = s.room_id AND m.user_id = $1::bigint "                \
              "WHERE s.tsv @@ plainto_tsquery('simple', $2::text) AND s.pos < $3::bigint "         \
              "AND s.seq > m.joined_seq AND ($4::bigint = 0 OR s.room_id = $4::bigint) "           \
              "AND NOT EXISTS (SELECT 1 FROM rooms d WHERE d.id = s.room_id AND d.state = 2) "     \
              "ORDER BY s.pos DESC LIMIT $5::bigint) h "                                           \
              "JOIN events e ON e.room_id = h.room_id AND e.seq = h.seq ORDER BY h.pos DESC")      \
    X(MSG_GET, "SELECT e.sender, e.kind, coalesce(s.deleted, 0), coalesce(s.thread, 0) "           \
               "FROM events e LEFT JOIN msg_state s ON s.room_id = e.room_id AND s.seq = e.seq "   \
               "WHERE e.room_id = $1::bigint AND e.seq = $2::bigint")                              \
    X(MSG_STATE_ENSURE, "INSERT INTO msg_state(room_id, seq) VALUES ($1::bigint, $2::bigint) "     \
                        "ON CONFLICT DO NOTHING")                                                  \
    X(MSG_LINKS, "UPDATE msg_state SET reply_to = nullif($3::bigint, 0), "                         \
                 "thread = nullif($4::bigint, 0) WHERE room_id = $1::bigint AND seq = $2::bigint") \
    X(MSG_ROOT_BUMP,                                                                               \
      "UPDATE msg_state SET reply_count = reply_count + 1, "                                       \
      "last_reply_seq = $3::bigint WHERE room_id = $1::bigint AND seq = $2::bigint")               \
    X(MSG_SET_BODY, "UPDATE events SET body = $3::text "                                           \
                    "WHERE room_id = $1::bigint AND seq = $2::bigint")                             \
    X(MSG_EDITED, "UPDATE msg_state SET edited_at = $3::bigint, state_seq = $4::bigint "           \
                  "WHERE room_id = $1::bigint AND seq = $2::bigint")                               \
    X(MSG_EDIT_ADD, "INSERT INTO msg_edits(room_id, target, seq) "                                 \
                    "VALUES ($1::bigint, $2::bigint, $3::bigint)")                                 \
    X(MSG_ERASE_EDITS, "UPDATE events SET body = $3::text WHERE room_id = $1::bigint AND seq IN "  \
                       "(SELECT seq FROM msg_edits WHERE room_id = $1::bigint "                    \
                       "AND target = $2::bigint)")                                                 \
    X(MSG_DELETED, "UPDATE msg_state SET deleted = 1, state_seq = $3::bigint "                     \
                   "WHERE room_id = $1::bigint AND seq = $2::bigint")                              \
    X(REACTIONS_DROP, "DELETE FROM reactions WHERE room_id = $1::bigint AND seq = $2::bigint")     \
    X(REACTION_ON, "INSERT INTO reactions(room_id, seq, emoji, user_id, at) VALUES ($1::bigint, "  \
                   "$2::bigint, $3::text, $4::bigint, $5::bigint) ON CONFLICT DO NOTHING")         \
    X(REACTION_OFF, "DELETE FROM reactions WHERE room_id = $1::bigint AND seq = $2::bigint "       \
                    "AND emoji = $3::text AND user_id = $4::bigint")                               \
    X(MSG_TOUCH, "UPDATE msg_state SET state_seq = $3::bigint "                                    \
                 "WHERE room_id = $1::bigint AND seq = $2::bigint")                                \
    X(MSGS_ASC,                                                                                    \
      MSG_PAGE("e.room_id = $1::bigint AND e.seq > $2::bigint AND e.seq < $4::bigint", "e.seq"))   \
    X(MSGS_DESC, MSG_PAGE("e.room_id = $1::bigint AND e.seq > $2::bigint AND e.seq < $4::bigint",  \
                          "e.seq DESC"))                                                           \
    X(THREAD_ASC, MSG_PAGE("s.room_id = $1::bigint AND s.thread = $6::bigint AND s.seq > "         \
                           "$2::bigint AND s.seq < $4::bigint",                                    \
                           "s.seq"))                                                               \
    X(THREAD_DESC, MSG_PAGE("s.room_id = $1::bigint AND s.thread = $6::bigint AND s.seq > "        \
                            "$2::bigint AND s.seq < $4::bigint",                                   \
                            "s.seq DESC"))                                                         \
    X(DELIVERED_MARK,                                                                              \
      "INSERT INTO delivered(room_id, user_id, session_id, seq) VALUES ($1::bigint, $2::bigint, "  \
      "$3::bigint, greatest(0, least($4::bigint, coalesce($5::bigint, (SELECT r.last_seq FROM "    \
      "rooms r WHERE r.id = $1::bigint))))) ON CONFLICT (room_id, user_id, session_id) "           \
      "DO UPDATE SET seq = greatest(delivered.seq, excluded.seq) RETURNING seq")                   \
    X(RECEIPTS_LIST,                                                                               \
      "SELECT m.user_id, m.read_seq, coalesce((SELECT min(d.seq) FROM delivered d "                \
      "JOIN sessions ss ON ss.id = d.session_id AND ss.revoked_at IS NULL "                        \
      "WHERE d.room_id = m.room_id AND d.user_id = m.user_id), -1), "                              \
      "coalesce((SELECT share_read_receipts FROM user_settings u WHERE u.user_id = m.user_id), "   \
      "1) "                                                                                        \
      "FROM members m WHERE m.room_id = $1::bigint ORDER BY m.user_id LIMIT $2::bigint")           \
    X(SETTINGS_GET, "SELECT share_read_receipts FROM user_settings WHERE user_id = $1::bigint")    \
    X(SETTINGS_PUT, "INSERT INTO user_settings(user_id, share_read_receipts) "                     \
                    "VALUES ($1::bigint, $2::int) ON CONFLICT (user_id) "                          \
                    "DO UPDATE SET share_read_receipts = excluded.share_read_receipts")            \
    X(USER_INSERT_ID, "INSERT INTO users(id, username, pwhash, created_at) VALUES ($1::bigint, "   \
                      "$2::text, $3::text, $4::bigint) ON CONFLICT DO NOTHING RETURNING id")       \
    X(PROFILE_GET, "SELECT " PROFILE_COLS " FROM users u WHERE u.id = $1::bigint")                 \
    X(PROFILE_SET, "UPDATE users SET display_name = coalesce($2::text, display_name), "            \
                   "avatar = coalesce($3::text, avatar), "                                         \
                   "status_text = coalesce($4::text, status_text) "                                \
                   "WHERE id = $1::bigint AND deleted_at = 0")                                     \
    X(USERS_BY_PREFIX, "SELECT " PROFILE_COLS " FROM users u "                                     \
                       "WHERE u.username COLLATE \"C\" >= $1::text "                               \
                       "AND u.username COLLATE \"C\" < $2::text "                                  \
                       "AND u.username COLLATE \"C\" > $3::text AND u.deleted_at = 0 "             \
                       "ORDER BY u.username COLLATE \"C\" LIMIT $4::bigint")                       \
    X(USER_SET_PWHASH, "UPDATE users SET pwhash = $2::text WHERE id = $1::bigint "                 \
                       "AND deleted_at = 0")                                                       \
    X(USER_ERASE, "UPDATE users SET username = '#' || id, pwhash = '', display_name = '', "        \
                  "avatar = '', status_text = '', deleted_at = $2::bigint WHERE id = $1::bigint "  \
                  "AND deleted_at = 0")                                                            \
    X(USER_ERASE_CONTACTS, "DELETE FROM contacts WHERE user_id = $1::bigint "                      \
                           "OR other_id = $1::bigint")                                             \
    X(USER_ERASE_BLOCKS, "DELETE FROM blocks WHERE user_id = $1::bigint OR other_id = $1::bigint") \
    X(SESSIONS_OF_USER, "SELECT s.id, s.created_at, max(t.created_at) FROM sessions s "            \
                        "JOIN refresh_tokens t ON t.session_id = s.id "                            \
                        "WHERE s.user_id = $1::bigint AND s.revoked_at IS NULL GROUP BY s.id "     \
                        "HAVING max(t.expires_at) > $2::bigint ORDER BY s.created_at, s.id")       \
    PAIR_SQL(X, contacts)                                                                          \
    PAIR_SQL(X, blocks)                                                                            \
    X(BLOCKS_ALL, "SELECT user_id, other_id FROM blocks")                                          \
    X(MEMBER_ACCESS, "SELECT r.state, r.kind, EXISTS (SELECT 1 FROM members m "                    \
                     "WHERE m.room_id = r.id AND m.user_id = $2::bigint)::int, "                   \
                     "(r.kind = 1 AND EXISTS (SELECT 1 FROM members p JOIN blocks b "              \
                     "ON b.user_id = p.user_id AND b.other_id = $2::bigint "                       \
                     "WHERE p.room_id = r.id AND p.user_id <> $2::bigint))::int "                  \
                     "FROM rooms r WHERE r.id = $1::bigint")                                       \
    X(ROOM_SET_FLAGS, "UPDATE rooms SET is_public = CASE WHEN $2::int < 0 THEN is_public "         \
                      "ELSE $2::int END, state = CASE WHEN $3::int < 0 THEN state "                \
                      "ELSE $3::int END WHERE id = $1::bigint")                                    \
    X(ROOMS_PUBLIC, "SELECT " ROOM_COLS " FROM rooms r WHERE r.is_public = 1 AND r.state = 0 "     \
                    "AND r.id > $1::bigint ORDER BY r.id LIMIT $2::bigint")                        \
    X(MEMBERS_PAGE, "SELECT " MEMBER_COLS ", " PROFILE_COLS " FROM members m JOIN users u "        \
                    "ON u.id = m.user_id WHERE m.room_id = $1::bigint AND m.user_id > $2::bigint " \
                    "ORDER BY m.user_id LIMIT $3::bigint")                                         \
    X(MEMBER_HIDE, "UPDATE members SET hidden_seq = $3::bigint WHERE room_id = $1::bigint "        \
                   "AND user_id = $2::bigint")                                                     \
    X(ROOMS_VISIBLE, "SELECT " ROOM_COLS ", " MEMBER_COLS " FROM members m "                       \
                     "JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1::bigint "              \
                     "AND m.room_id > $2::bigint AND (m.hidden_seq = 0 OR EXISTS (SELECT 1 "       \
                     "FROM events e WHERE e.room_id = m.room_id AND e.seq > m.hidden_seq "         \
                     "AND e.kind = 0)) ORDER BY m.room_id LIMIT $3::bigint")                       \
    X(INVITE_INSERT, "INSERT INTO invites(hash, room_id, created_by, created_at, expires_at, "     \
                     "max_uses) VALUES ($1::bytea, $2::bigint, $3::bigint, $4::bigint, "           \
                     "$5::bigint, $6::bigint)")                                                    \
    X(INVITE_GET, "SELECT room_id, created_by, created_at, expires_at, max_uses, uses "            \
                  "FROM invites WHERE hash = $1::bytea")                                           \
    X(INVITE_USE, "UPDATE invites SET uses = uses + 1 WHERE hash = $1::bytea")                     \
    X(USERS_LIST, "SELECT id, username, pwhash, created_at, last_seen FROM users "                 \
                  "WHERE id > $1::bigint ORDER BY id LIMIT $2::bigint")                            \
    X(SESSIONS_REVOKE_USER, "UPDATE sessions SET revoked_at = $2::bigint "                         \
                            "WHERE user_id = $1::bigint AND revoked_at IS NULL")                   \
    X(DELIVERIES_PRUNE, "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries "           \
                        "WHERE state = 1 AND next_at < $1::bigint ORDER BY next_at "               \
                        "LIMIT $2::bigint)")                                                       \
    X(DELIVERY_DELETE, "DELETE FROM deliveries WHERE id = $1::bigint AND state = 2")               \
    X(DELIVERIES_COUNT, "SELECT count(*) FROM deliveries WHERE state = $1::int")                   \
    X(NOTIFY_TAKE,                                                                                 \
      "INSERT INTO notify_last(user_id, room_id, ts) "                                             \
      "VALUES ($1::bigint, $2::bigint, $3::bigint) ON CONFLICT (user_id, room_id) "                \
      "DO UPDATE SET ts = excluded.ts WHERE excluded.ts - notify_last.ts >= $4::bigint")           \
    X(NOTIFY_PRUNE,                                                                                \
      "DELETE FROM notify_last WHERE (user_id, room_id) IN (SELECT user_id, room_id "              \
      "FROM notify_last WHERE ts < $1::bigint LIMIT $2::bigint)")

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

_Static_assert(SQL__COUNT <= 4 * 64, "prepared-statement bitmap is 256 bits");
_Static_assert(Q_PREPARE_BASE + SQL__COUNT <= 256, "pipeline kinds are bytes");

/* Kinds of commands whose results are read later (the pipeline's queue). */
enum {
    Q_PLAIN = 0,
    Q_APPEND = 1, /* an optimistic append: a unique violation means "run the batch again" */
    Q_PREPARE =
        Q_PREPARE_BASE, /* + enum sql_id: a Parse; if the server skipped it, it is not prepared */
};

/* A room locked by lock_rooms in an optimistic batch: its counter as read under the lock
 * (base) and as advanced by this transaction's appends (seq). */
struct seq_room {
    int64_t id, seq, base;
};
struct seq_undo {
    size_t idx;
    int64_t old;
};

/* An optimistic append waiting to go out with the others of its batch in one INSERT. */
struct arow {
    int64_t room, seq, sender, ts;
    int kind;
    char *cmid; /* NULL: none */
    char *body;
    size_t cmid_len, body_len;
};
/* An outbox row of this transaction, inserted with the others by its last statement before
 * COMMIT (positions in commit order). Log entries: type, eid and body NULL. */
struct obrow {
    int64_t room, seq, ts;
    char *type, *eid, *body;
    size_t body_len;
};

/* Rows per INSERT of optimistic appends. */
#define APPEND_ROWS_MAX 1024

struct store_conn {
    struct store *st;
    PGconn *pg;
    int writer;           /* pipeline mode, transactions */
    uint64_t prepared[4]; /* bit per enum sql_id: prepared on this session */
    uint8_t *q;           /* writer: kinds of the commands sent whose results are unread (FIFO) */
    size_t qh, qn, qcap;
    int in_tx;  /* writer: between begin and commit/rollback */
    int failed; /* the open transaction hit an error no savepoint rolled back */
    int retry;  /* ... a deadlock, a serialization failure or a late duplicate: run again */
    int down;   /* connection lost: reopen before the next use */
    /* optimistic batch (lock_rooms with optimistic set): rooms sorted by id, undo log since the
     * job's savepoint */
    int optimistic;
    struct seq_room *rooms;
    size_t nrooms, rooms_cap;
    struct seq_undo *undo;
    size_t nundo, undo_cap;
    struct arow *rows; /* optimistic appends not sent yet (copies) */
    size_t nrows, rows_cap;
    struct obrow *ob;            /* this transaction's outbox rows, sent before COMMIT */
    size_t nob, ob_cap, ob_mark; /* ob_mark: nob at the job's savepoint */
    /* Writer: rooms' counters as this connection last committed them (or heard of them: note_head),
     * direct-mapped. An optimistic batch whose rooms are all here numbers its appends from these
     * without waiting for lock_rooms' answer: the whole commit is one round trip. A guess that
     * another node made stale fails the transaction (the rows collide with the log's primary key,
     * the checked counter update finds another base) and the batch runs again, waiting. */
    struct ctr {
        int64_t room, seq;
    } * ctr;
    int guessed; /* this transaction numbered from guesses */
};

#define CTR_SLOTS 8192

static struct ctr *ctr_slot(struct store_conn *c, int64_t room)
{
    uint64_t x = (uint64_t)room * 0x9e3779b97f4a7c15ULL;
    if (!c->ctr) c->ctr = xcalloc(CTR_SLOTS, sizeof(*c->ctr));
    return &c->ctr[(x >> 40) & (CTR_SLOTS - 1)];
}

static void ctr_forget(struct store_conn *c, int64_t room)
{
    struct ctr *e = ctr_slot(c, room);
    if (e->room == room) e->room = 0;
}

/* The end of an optimistic transaction: committed, its rooms' counters are what it numbered up
 * to; rolled back (maybe a stale guess), they are unknown. */
static void ctr_learn(struct store_conn *c, int committed)
{
    for (size_t i = 0; c->optimistic && i < c->nrooms; i++) {
        struct ctr *e = ctr_slot(c, c->rooms[i].id);
        if (committed) {
            e->room = c->rooms[i].id;
            e->seq = c->rooms[i].seq;
        } else if (e->room == c->rooms[i].id) {
            e->room = 0;
        }
    }
}

static void ob_drop(struct store_conn *c, size_t keep)
{
    while (c->nob > keep) {
        struct obrow *o = &c->ob[--c->nob];
        free(o->type);
        free(o->eid);
        free(o->body);
    }
}

static void arows_free(struct arow *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].cmid);
        free(rows[i].body);
    }
}

/* Drop every buffered append not sent yet. */
static void rows_drop(struct store_conn *c)
{
    arows_free(c->rows, c->nrows);
    c->nrows = 0;
}

static void q_push(struct store_conn *c, uint8_t kind)
{
    if (c->qh + c->qn == c->qcap) {
        if (c->qh > 0) {
            memmove(c->q, c->q + c->qh, c->qn);
            c->qh = 0;
        } else {
            c->qcap = c->qcap ? c->qcap * 2 : 64;
            c->q = xrealloc(c->q, c->qcap);
        }
    }
    c->q[c->qh + c->qn++] = kind;
}

static uint8_t q_pop(struct store_conn *c)
{
    uint8_t k = c->q[c->qh++];
    if (--c->qn == 0) c->qh = 0;
    return k;
}

/* The index of a locked room in the optimistic table, or -1. O(log n). */
static long room_find(const struct store_conn *c, int64_t id)
{
    size_t lo = 0, hi = c->nrooms;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->rooms[mid].id == id) return (long)mid;
        if (c->rooms[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void rows_drop(struct store_conn *c);

static void tx_reset(struct store_conn *c)
{
    rows_drop(c);
    ob_drop(c, 0);
    c->ob_mark = 0;
    c->in_tx = c->failed = c->retry = 0;
    c->optimistic = c->guessed = 0;
    c->nrooms = c->nundo = 0;
}

/* Parameters of one statement: integers as text, strings and bytes in binary format. */
#define PARAMS_MAX 8
struct params {
    int n;
    const char *v[PARAMS_MAX];
    int len[PARAMS_MAX];
    int fmt[PARAMS_MAX];
    char num[PARAMS_MAX][24];
};

/* A growable byte buffer. */
struct sbuf {
    char *data;
    size_t len, cap;
};

static void sbuf_init(struct sbuf *b)
{
    b->cap = 256;
    b->len = 0;
    b->data = xmalloc(b->cap);
}

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        while (b->len + n > b->cap)
            b->cap *= 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void sbuf_free(struct sbuf *b)
{
    free(b->data);
}

static void p_int(struct params *p, int64_t x)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)x);
    p->v[p->n] = p->num[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

/* s NULL binds SQL NULL. */
static void p_bytes(struct params *p, const void *s, size_t len)
{
    p->v[p->n] = s ? (len ? (const char *)s : "") : NULL;
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

static void p_str(struct params *p, const char *s)
{
    p_bytes(p, s, s ? strlen(s) : 0);
}

static void p_null(struct params *p)
{
    p->v[p->n] = NULL;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

/* LIMIT: a negative limit means none (SQLite's rule), which is NULL here. */
static void p_limit(struct params *p, int limit)
{
    if (limit < 0)
        p_null(p);
    else
        p_int(p, limit);
}

static PGconn *connect_url(const char *url)
{
    /* The URL's own settings win: these are fallbacks. */
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *vals[] = {url, "5", "chatd", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(pg);
        log_error("cannot connect to PostgreSQL", "\"error\":\"%.*s\"", (int)strcspn(msg, "\n"),
                  msg);
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Classifies a failed result (or a lost connection when res is NULL) and records it on the
 * connection: CD_E_UNAVAILABLE when the server is gone, CD_E_CONFLICT for a unique violation,
 * CD_E_IO otherwise (logged). */
static int note_error(struct store_conn *c, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : "";

    if (c->in_tx) c->failed = 1;
    if (res && PQresultStatus(res) == PGRES_PIPELINE_ABORTED) return CD_E_IO; /* noted before */
    if (!msg || !*msg) msg = PQerrorMessage(c->pg);
    if (!res || PQstatus(c->pg) != CONNECTION_OK ||
        (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3)))) {
        if (!c->down)
            log_error("PostgreSQL connection lost", "\"op\":\"%s\",\"error\":\"%.*s\"", what,
                      (int)strcspn(msg, "\n"), msg);
        c->down = 1;
        return CD_E_UNAVAILABLE;
    }
    if (!state) state = "";
    if (!strcmp(state, "40001") || !strcmp(state, "40P01")) {
        c->retry = 1;
        log_warn("PostgreSQL transaction aborted, batch will be retried",
                 "\"op\":\"%s\",\"sqlstate\":\"%s\"", what, state);
        return CD_E_IO;
    }
    if (!strcmp(state, "23505")) return CD_E_CONFLICT;
    log_error("PostgreSQL error", "\"op\":\"%s\",\"sqlstate\":\"%s\",\"error\":\"%.*s\"", what,
              state, (int)strcspn(msg, "\n"), msg);
    return CD_E_IO;
}

static void mark_down(struct store_conn *c, const char *what)
{
    note_error(c, NULL, what);
    c->down = 1;
}

/* Reads one command's results (a result, then NULL) in pipeline mode. Returns the result (the
 * caller clears it) or NULL when the connection failed. */
static PGresult *pipe_result(struct store_conn *c)
{
    PGresult *r = PQgetResult(c->pg), *extra;
    if (!r) return NULL;
    while ((extra = PQgetResult(c->pg)) != NULL)
        PQclear(extra); /* one result per command: anything more is dropped */
    return r;
}

static int result_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* Reads the results of every deferred command; the first error among them is recorded. A
 * deferred (optimistic) append that met a duplicate client_msg_id after its job was told
 * otherwise raised a unique violation, so the server aborted the transaction and skips
 * everything up to the next Sync, COMMIT included: the batch runs again without optimism. */
static int drain_pending(struct store_conn *c)
{
    int rc = CD_OK;
    while (c->qn > 0) {
        uint8_t kind = q_pop(c);
        PGresult *r = pipe_result(c);
        if (!r) {
            mark_down(c, "pipeline");
            c->qn = c->qh = 0;
            return CD_E_UNAVAILABLE;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (kind >= Q_PREPARE && !result_ok(r))
            c->prepared[(kind - Q_PREPARE) / 64] &= ~(1ull << ((kind - Q_PREPARE) % 64));
        if (kind == Q_APPEND && state && (!strcmp(state, "23505") || !strcmp(state, "23502"))) {
            /* A duplicate, or a counter guessed stale (a seq taken, a counter moved): the
             * server aborted the transaction. */
            c->retry = 1;
            if (c->in_tx) c->failed = 1;
            if (rc == CD_OK) rc = CD_E_IO;
        } else if (!result_ok(r) && PQresultStatus(r) != PGRES_PIPELINE_ABORTED && rc == CD_OK) {
            rc = note_error(c, r, "deferred statement");
        } else if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED && rc == CD_OK) {
            rc = CD_E_IO;
        }
        PQclear(r);
    }
    return rc;
}

/* Reads the answer to a Sync already sent (every command before it must have been read). */
static int read_sync(struct store_conn *c)
{
    for (int guard = 0; guard < 1000; guard++) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (PQstatus(c->pg) != CONNECTION_OK) break;
            continue; /* the NULL that ends a command's results */
        }
        ExecStatusType s = PQresultStatus(r);
        PQclear(r);
        if (s == PGRES_PIPELINE_SYNC) return CD_OK;
    }
    mark_down(c, "sync");
    return CD_E_UNAVAILABLE;
}

/* Sends a Sync and reads everything up to its answer: the server resumes after an error, and
 * outside a transaction block the statements before the Sync are committed. */
static int pipe_sync(struct store_conn *c)
{
    int rc, s;
    if (!PQpipelineSync(c->pg)) {
        mark_down(c, "sync");
        return CD_E_UNAVAILABLE;
    }
    rc = drain_pending(c);
    s = read_sync(c);
    return rc != CD_OK ? rc : s;
}

/* Reopens a lost connection (prepared statements are gone with it). */
static int conn_ready(struct store_conn *c)
{
    /* Outside a transaction, with nothing in flight, the server has nothing to say: input now
     * means it ended the session (restart, termination: an error, then end of file), found
     * here before a batch is spent on it. A rare notice costs a reconnection, nothing more. */
    if (!c->down && !c->in_tx && !c->qn) {
        struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
        if (pfd.fd < 0 || poll(&pfd, 1, 0) != 0) c->down = 1;
    }
    if (!c->down && PQstatus(c->pg) == CONNECTION_OK) return CD_OK;
    if (c->in_tx) return CD_E_UNAVAILABLE; /* the transaction died with the connection */
    PGconn *pg = connect_url(c->st->url);
    if (!pg) return CD_E_UNAVAILABLE;
    if (c->writer && !PQenterPipelineMode(pg)) {
        PQfinish(pg);
        return CD_E_UNAVAILABLE;
    }
    PQfinish(c->pg);
    c->pg = pg;
    memset(c->prepared, 0, sizeof(c->prepared));
    c->qn = c->qh = 0;
    c->down = 0;
    log_info("PostgreSQL connection reopened", "\"writer\":%d", c->writer);
    return CD_OK;
}

static int prepare(struct store_conn *c, enum sql_id id, const char *name)
{
    if (c->prepared[id / 64] & (1ull << (id % 64))) return CD_OK;
    if (c->writer) {
        if (!PQsendPrepare(c->pg, name, sql_text[id], 0, NULL)) {
            mark_down(c, "prepare");
            return CD_E_UNAVAILABLE;
        }
        q_push(c, (uint8_t)(Q_PREPARE + id));
    } else {
        PGresult *r = PQprepare(c->pg, name, sql_text[id], 0, NULL);
        int rc = result_ok(r) ? CD_OK : note_error(c, r, sql_text[id]);
        PQclear(r);
        if (rc != CD_OK) return rc;
    }
    c->prepared[id / 64] |= 1ull << (id % 64);
    return CD_OK;
}

/* Sends a statement (writer). kind >= 0: queued, its result read later; -1: the caller reads it
 * next, after the queued ones. */
static int flush_rows(struct store_conn *c);

static int send_stmt(struct store_conn *c, enum sql_id id, const struct params *p, int kind)
{
    char name[8];
    int rc;
    /* Buffered appends go first: every statement sees the writes queued before it. */
    if (c->nrows && id != SQL_EVENT_INSERT_MANY && (rc = flush_rows(c)) != CD_OK) return rc;
    snprintf(name, sizeof(name), "s%d", (int)id);
    if ((rc = conn_ready(c)) != CD_OK || (rc = prepare(c, id, name)) != CD_OK) return rc;
    if (!PQsendQueryPrepared(c->pg, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                             p ? p->fmt : NULL, 0)) {
        mark_down(c, sql_text[id]);
        return CD_E_UNAVAILABLE;
    }
    if (kind >= 0) q_push(c, (uint8_t)kind);
    return CD_OK;
}

/* Runs a statement and returns its result in *out (CD_OK; the caller clears it), or a status.
 * Writer: the deferred commands go out with it and their results are read first; outside a
 * transaction a Sync follows it (autocommit). Readers: one PQexecPrepared. */
static int run(struct store_conn *c, enum sql_id id, const struct params *p, PGresult **out)
{
    PGresult *r;
    int rc;

    *out = NULL;
    if (!c->writer) {
        char name[8];
        snprintf(name, sizeof(name), "s%d", (int)id);
        /* A read is idempotent: one found the connection dead is tried once more on a new one. */
        for (int attempt = 0;; attempt++) {
            if ((rc = conn_ready(c)) != CD_OK || (rc = prepare(c, id, name)) != CD_OK) {
                if (rc == CD_E_UNAVAILABLE && attempt == 0) continue;
                return rc;
            }
            r = PQexecPrepared(c->pg, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                               p ? p->fmt : NULL, 0);
            if (r && result_ok(r)) break;
            rc = note_error(c, r, sql_text[id]);
            PQclear(r);
            if (rc != CD_E_UNAVAILABLE || attempt > 0) return rc;
        }
        *out = r;
        return CD_OK;
    }
    if (c->in_tx && c->failed) return CD_E_IO;              /* the server would refuse it anyway */
    if ((rc = send_stmt(c, id, p, -1)) != CD_OK) return rc; /* read below, after the queue */
    if (!c->in_tx) {
        if (!PQpipelineSync(c->pg)) {
            mark_down(c, sql_text[id]);
            return CD_E_UNAVAILABLE;
        }
    } else if (!PQsendFlushRequest(c->pg) || PQflush(c->pg) != 0) {
        mark_down(c, sql_text[id]);
        return CD_E_UNAVAILABLE;
    }
    rc = drain_pending(c);
    r = pipe_result(c);
    if (!r) {
        mark_down(c, sql_text[id]);
        return CD_E_UNAVAILABLE;
    }
    if (rc == CD_OK && !result_ok(r)) rc = note_error(c, r, sql_text[id]);
    if (!c->in_tx) {
        int s = read_sync(c); /* the Sync sent above */
        if (rc == CD_OK) rc = s;
    } else if (rc != CD_OK && !c->down) {
        pipe_sync(c); /* the server skips everything until a Sync */
    }
    if (rc != CD_OK) {
        PQclear(r);
        return rc;
    }
    *out = r;
    return CD_OK;
}

/* Sends a statement whose result nobody waits for (writer in a transaction); its error, if any,
 * surfaces with the next statement that is waited for. Elsewhere it simply runs. */
static int defer(struct store_conn *c, enum sql_id id, const struct params *p)
{
    PGresult *r;
    int rc;
    if (!c->writer || !c->in_tx) {
        rc = run(c, id, p, &r);
        PQclear(r);
        return rc;
    }
    if (c->failed) return CD_E_IO;
    return send_stmt(c, id, p, Q_PLAIN);
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void col_text(const PGresult *r, int row, int col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* A statement that must touch exactly one row: CD_E_NOT_FOUND when it touched none. */
static int exec_one(struct store_conn *c, enum sql_id id, const struct params *p)
{
    PGresult *r;
    int rc = run(c, id, p, &r);
    if (rc != CD_OK) return rc;
    rc = strcmp(PQcmdTuples(r), "0") == 0 ? CD_E_NOT_FOUND : CD_OK;
    PQclear(r);
    return rc;
}

static int exec_ii(struct store_conn *c, enum sql_id id, int64_t a, int64_t b)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, a);
    p_int(&p, b);
    rc = run(c, id, &p, &r);
    PQclear(r);
    return rc;
}

/* A single-row, single-integer statement: CD_E_NOT_FOUND when it yields no row. */
static int query_i64(struct store_conn *c, enum sql_id id, const struct params *p, int64_t *out)
{
    PGresult *r;
    int rc = run(c, id, p, &r);
    if (rc != CD_OK) return rc;
    if (PQntuples(r) == 0)
        rc = CD_E_NOT_FOUND;
    else
        *out = col_i64(r, 0, 0);
    PQclear(r);
    return rc;
}

static int simple_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int ok = r && result_ok(r);
    if (!ok) {
        const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(pg);
        log_error("PostgreSQL statement failed", "\"error\":\"%.*s\"", (int)strcspn(m, "\n"), m);
    }
    PQclear(r);
    return ok ? CD_OK : CD_E_IO;
}

/* Applies the missing migrations. The advisory lock makes nodes that start together take turns:
 * the first applies, the others then find the schema current. */
static int migrate(PGconn *pg)
{
    PGresult *r;
    int version = 0, rc = CD_OK;

    if (simple_exec(pg, "SELECT pg_advisory_lock(" STORE_PG_MIGRATE_LOCK ")") != CD_OK)
        return CD_E_IO;
    if ((rc = simple_exec(pg, "SET client_min_messages = warning;"
                              "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT "
                              "NULL)")) != CD_OK)
        goto done;
    r = PQexec(pg, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        rc = CD_E_IO;
        goto done;
    }
    version = (int)col_i64(r, 0, 0);
    PQclear(r);
    if (version > store_pg_nmigrations) {
        log_error("database schema is newer than this chatd", "\"schema\":%d,\"known\":%d", version,
                  store_pg_nmigrations);
        rc = CD_E_IO;
        goto done;
    }
    for (int v = version; v < store_pg_nmigrations; v++) {
        char bump[80];
        snprintf(bump, sizeof(bump), "INSERT INTO schema_version VALUES (%d)", v + 1);
        if (simple_exec(pg, "BEGIN") || simple_exec(pg, store_pg_migrations[v]) ||
            simple_exec(pg, bump) || simple_exec(pg, "COMMIT")) {
            simple_exec(pg, "ROLLBACK");
            log_error("migration failed", "\"to\":%d", v + 1);
            rc = CD_E_IO;
            goto done;
        }
        log_info("migration applied", "\"version\":%d,\"store\":\"postgres\"", v + 1);
    }
done:
    simple_exec(pg, "SELECT pg_advisory_unlock(" STORE_PG_MIGRATE_LOCK ")");
    return rc;
}

static int pg_open(const struct store_config *cfg, struct store **out)
{
    struct store *st;
    PGconn *pg;
    int rc;

    if (!cfg->url || !*cfg->url) {
        log_error("PostgreSQL store needs a URL", "%s", "\"flag\":\"--store-url\"");
        return CD_E_IO;
    }
    if (!(pg = connect_url(cfg->url))) return CD_E_IO;
    rc = migrate(pg);
    PQfinish(pg);
    if (rc != CD_OK) return rc;
    st = xcalloc(1, sizeof(*st));
    st->url = xstrndup(cfg->url, strlen(cfg->url));
    *out = st;
    return CD_OK;
}

static void pg_close(struct store *st)
{
    free(st->url);
    free(st);
}

static int pg_conn_open(struct store *st, int writer, struct store_conn **out)
{
    struct store_conn *c;
    PGconn *pg = connect_url(st->url);
    if (!pg) return CD_E_IO;
    if (writer && !PQenterPipelineMode(pg)) {
        log_error("cannot enter pipeline mode", "%s", "\"store\":\"postgres\"");
        PQfinish(pg);
        return CD_E_IO;
    }
    c = xcalloc(1, sizeof(*c));
    c->st = st;
    c->pg = pg;
    c->writer = writer;
    *out = c;
    return CD_OK;
}

static void pg_conn_close(struct store_conn *c)
{
    if (c->writer && c->in_tx && !c->down) {
        defer(c, SQL_ROLLBACK, NULL);
        pipe_sync(c);
    }
    PQfinish(c->pg);
    free(c->q);
    rows_drop(c);
    free(c->rows);
    ob_drop(c, 0);
    free(c->ob);
    free(c->rooms);
    free(c->undo);
    free(c->ctr);
    free(c);
}

/* Appends an array literal element: "..." with '"' and '\\' escaped, or NULL. */
static void arr_text(struct sbuf *b, const char *s, size_t len)
{
    if (!s) {
        sbuf_add(b, "NULL", 4);
        return;
    }
    sbuf_add(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') sbuf_add(b, "\\", 1);
        sbuf_add(b, s + i, 1);
    }
    sbuf_add(b, "\"", 1);
}

/* Sends the buffered optimistic appends as one INSERT of arrays (queued, not waited for). One
 * statement for up to APPEND_ROWS_MAX rows: the server parses, plans and executes once, instead
 * of once per message. A duplicate among them aborts the transaction (see drain_pending). */
static int flush_rows(struct store_conn *c)
{
    struct params p = {0};
    struct sbuf a[7];
    char num[24];
    int rc;

    for (int i = 0; i < 7; i++) {
        sbuf_init(&a[i]);
        sbuf_add(&a[i], "{", 1);
    }
    for (size_t i = 0; i < c->nrows; i++) {
        const struct arow *w = &c->rows[i];
        const int64_t ints[5] = {w->room, w->seq, w->kind, w->sender, w->ts};
        for (int f = 0; f < 5; f++) {
            int n = snprintf(num, sizeof(num), "%s%lld", i ? "," : "", (long long)ints[f]);
            sbuf_add(&a[f], num, (size_t)n);
        }
        if (i) {
            sbuf_add(&a[5], ",", 1);
            sbuf_add(&a[6], ",", 1);
        }
        arr_text(&a[5], w->cmid, w->cmid_len);
        arr_text(&a[6], w->body, w->body_len);
    }
    for (int i = 0; i < 7; i++) {
        sbuf_add(&a[i], "}", 2); /* with the terminator: text-format parameters are C strings */
        p_bytes(&p, a[i].data, a[i].len - 1);
        p.fmt[i] = 0;
    }
    arows_free(c->rows, c->nrows);
    c->nrows = 0;
    rc = send_stmt(c, SQL_EVENT_INSERT_MANY, &p, Q_APPEND);
    for (int i = 0; i < 7; i++)
        sbuf_free(&a[i]);
    return rc;
}

static int pg_begin(struct store_conn *c)
{
    int rc;
    if (c->in_tx) return CD_E_IO;
    if ((rc = conn_ready(c)) != CD_OK) return rc;
    tx_reset(c);
    c->in_tx = 1;
    if ((rc = defer(c, SQL_BEGIN, NULL)) != CD_OK) c->in_tx = 0;
    return rc;
}

/* Ends the transaction with ROLLBACK; CD_AGAIN when it had been aborted by a deadlock or
 * serialization failure, or an optimistic append met a duplicate (the writer then runs the
 * batch again). */
static int pg_rollback(struct store_conn *c)
{
    int again;
    if (!c->writer || !c->in_tx) return CD_OK;
    if (!c->down && send_stmt(c, SQL_ROLLBACK, NULL, Q_PLAIN) == CD_OK && pipe_sync(c) != CD_OK &&
        !c->down) {
        /* An unseen error before it made the server skip the ROLLBACK: once more, alone. */
        PGresult *r;
        c->in_tx = 0;
        if (run(c, SQL_ROLLBACK, NULL, &r) == CD_OK) PQclear(r);
    }
    again = c->retry;
    ctr_learn(c, 0);
    tx_reset(c);
    return again ? CD_AGAIN : CD_OK;
}

/* "{1,2,3}": an array literal of n integers (text format). The caller frees it. */
static char *int_array(const int64_t *v, size_t stride, size_t n, size_t *len_out)
{
    size_t cap = n * 21 + 3, len = 0;
    char *arr = xmalloc(cap);
    arr[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(arr + len, cap - len, "%s%lld", i ? "," : "",
                                (long long)*(const int64_t *)((const char *)v + i * stride));
    arr[len++] = '}';
    arr[len] = '\0';
    *len_out = len;
    return arr;
}

/* Optimistic batch: the counters its appends advanced go back to their rows (still locked by
 * this transaction) in one statement, queued before COMMIT. */
static int write_counters(struct store_conn *c)
{
    struct params p = {0};
    size_t n = 0, len[3];
    int64_t *v[3];
    char *a[3];
    int rc;

    for (size_t i = 0; i < c->nrooms; i++)
        n += c->rooms[i].seq != c->rooms[i].base;
    if (n == 0) return CD_OK;
    for (int k = 0; k < 3; k++)
        v[k] = xmalloc(n * sizeof(int64_t));
    n = 0;
    for (size_t i = 0; i < c->nrooms; i++)
        if (c->rooms[i].seq != c->rooms[i].base) {
            v[0][n] = c->rooms[i].id;
            v[1][n] = c->rooms[i].seq;
            v[2][n++] = c->rooms[i].base;
        }
    for (int k = 0; k < 3; k++) {
        a[k] = int_array(v[k], sizeof(int64_t), n, &len[k]);
        p_bytes(&p, a[k], len[k]);
        p.fmt[k] = 0;
    }
    /* Checked: a counter no longer at the base this batch numbered from becomes NULL, which the
     * column refuses (23502): the transaction aborts and the batch runs again (drain_pending). */
    rc = c->failed ? CD_E_IO : send_stmt(c, SQL_ROOMS_SET_SEQ, &p, Q_APPEND);
    for (int k = 0; k < 3; k++) {
        free(a[k]);
        free(v[k]);
    }
    return rc;
}

/* Queues (in a transaction) or runs (outside one: each write is its own commit) the INSERT of
 * the pending outbox rows, numbered from outbox_head. One statement per batch, whatever its
 * size. */
static int ob_flush(struct store_conn *c)
{
    struct params p = {0};
    struct sbuf a[6];
    char num[24];
    int rc;

    for (int i = 0; i < 6; i++) {
        sbuf_init(&a[i]);
        sbuf_add(&a[i], "{", 1);
    }
    for (size_t i = 0; i < c->nob; i++) {
        const struct obrow *o = &c->ob[i];
        const int64_t ints[3] = {o->room, o->seq, o->ts};
        const int col[3] = {0, 1, 4};
        for (int f = 0; f < 3; f++) {
            int n = snprintf(num, sizeof(num), "%s%lld", i ? "," : "", (long long)ints[f]);
            sbuf_add(&a[col[f]], num, (size_t)n);
        }
        if (i) {
            sbuf_add(&a[2], ",", 1);
            sbuf_add(&a[3], ",", 1);
            sbuf_add(&a[5], ",", 1);
        }
        arr_text(&a[2], o->type, o->type ? strlen(o->type) : 0);
        arr_text(&a[3], o->eid, o->eid ? strlen(o->eid) : 0);
        arr_text(&a[5], o->body, o->body_len);
    }
    p_int(&p, (int64_t)c->nob);
    for (int i = 0; i < 6; i++) {
        sbuf_add(&a[i], "}", 2); /* with the terminator: text-format parameters are C strings */
        p_bytes(&p, a[i].data, a[i].len - 1);
        p.fmt[i + 1] = 0;
    }
    rc = defer(c, SQL_OUTBOX_INSERT, &p);
    for (int i = 0; i < 6; i++)
        sbuf_free(&a[i]);
    ob_drop(c, 0);
    return rc;
}

/* Records an outbox row of the open transaction (log entry: type NULL). Outside a transaction
 * it is written at once. */
static int ob_add(struct store_conn *c, int64_t room, int64_t seq, const char *type,
                  const char *eid, int64_t ts, const struct jsonw *body)
{
    struct obrow *o;
    if (c->nob == c->ob_cap) {
        c->ob_cap = c->ob_cap ? c->ob_cap * 2 : 64;
        c->ob = xrealloc(c->ob, c->ob_cap * sizeof(*c->ob));
    }
    o = &c->ob[c->nob++];
    memset(o, 0, sizeof(*o));
    o->room = room;
    o->seq = seq;
    o->ts = ts;
    if (type) {
        o->type = xstrndup(type, strlen(type));
        o->eid = xstrndup(eid, strlen(eid));
        o->body = xstrndup(jsonw_text(body), jsonw_text_len(body));
        o->body_len = jsonw_text_len(body);
    }
    if (!c->writer || !c->in_tx) return ob_flush(c);
    return CD_OK;
}

static int pg_commit(struct store_conn *c)
{
    PGresult *r;
    int rc;

    if (!c->writer || !c->in_tx) return CD_OK;
    if (!c->failed && !c->retry && !c->down && c->optimistic && write_counters(c) != CD_OK)
        c->failed = 1;
    /* Last: the outbox rows take their positions here, and outbox_head stays locked only
     * from now until COMMIT answers. */
    if (!c->failed && !c->retry && !c->down && c->nob && ob_flush(c) != CD_OK) c->failed = 1;
    if (c->failed || c->retry || c->down) {
        rc = c->down ? CD_E_UNAVAILABLE : CD_E_IO;
        return pg_rollback(c) == CD_AGAIN ? CD_AGAIN : rc;
    }
    c->in_tx = 0; /* run() ends the COMMIT with a Sync and reads it */
    rc = run(c, SQL_COMMIT, NULL, &r);
    if (rc == CD_OK) {
        /* COMMIT of a transaction the server had aborted answers ROLLBACK. */
        if (strcmp(PQcmdStatus(r), "COMMIT") != 0) rc = CD_E_IO;
        PQclear(r);
    }
    if (rc != CD_OK && !c->down) {
        /* A deferred statement failed, so the server skipped COMMIT and the transaction is
         * still open (aborted): end it. Outside a transaction this is only a warning. */
        if (run(c, SQL_ROLLBACK, NULL, &r) == CD_OK) PQclear(r);
    }
    if (rc != CD_OK && c->retry) rc = CD_AGAIN;
    ctr_learn(c, rc == CD_OK);
    tx_reset(c);
    return rc;
}

static int pg_savepoint(struct store_conn *c)
{
    c->nundo = 0;
    c->ob_mark = c->nob;
    return defer(c, SQL_SAVEPOINT, NULL);
}

static int pg_savepoint_release(struct store_conn *c, int undo)
{
    int rc;
    if (c->down) return CD_E_UNAVAILABLE;
    if (undo) {
        /* The job's appends are rolled back: so are the counters they advanced, and the ones
         * not sent yet are dropped (SAVEPOINT sent the earlier ones). */
        rows_drop(c);
        ob_drop(c, c->ob_mark);
        while (c->nundo > 0) {
            struct seq_undo *u = &c->undo[--c->nundo];
            c->rooms[u->idx].seq = u->old;
        }
        /* Recovers a transaction an error of the job aborted (the error was followed by a Sync,
         * so the server reads this). The retry flag stays: the batch is still run again. */
        c->failed = 0;
        if ((rc = defer(c, SQL_ROLLBACK_TO, NULL)) != CD_OK) return rc;
    }
    c->nundo = 0;
    return defer(c, SQL_RELEASE, NULL);
}

static void pg_note_head(struct store_conn *c, int64_t room, int64_t seq)
{
    struct ctr *e = ctr_slot(c, room);
    if (e->room == room && e->seq < seq) e->seq = seq;
}

static int ctr_all_known(struct store_conn *c, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ctr_slot(c, ids[i])->room != ids[i]) return 0;
    return 1;
}

/* Locks the rooms' counter rows in ascending id order, before the batch takes any other lock.
 * Not optimistic: queued, not waited for. Optimistic: waited for (one round trip, with BEGIN),
 * and the rows' counters are kept for this transaction: its appends to these rooms number
 * their entries from them and are queued without waiting (the rows stay locked until commit,
 * so no other writer can move a counter meanwhile). */
static int pg_lock_rooms(struct store_conn *c, const int64_t *ids, size_t n, int optimistic)
{
    struct params p = {0};
    PGresult *r;
    size_t len;
    char *arr;
    int rc;

    if (n == 0) return CD_OK;
    arr = int_array(ids, sizeof(*ids), n, &len);
    p_bytes(&p, arr, len);
    p.fmt[0] = 0; /* an array literal in text format */
    if (optimistic && c->writer && c->in_tx && ctr_all_known(c, ids, n)) {
        /* Every counter is known: take the locks without waiting for their answer and number
         * from the known counters (the commit is then this batch's only round trip). */
        rc = defer(c, SQL_LOCK_ROOMS, &p);
        free(arr);
        if (rc != CD_OK) return rc;
        c->nrooms = 0;
        if (n > c->rooms_cap) {
            c->rooms_cap = n;
            c->rooms = xrealloc(c->rooms, c->rooms_cap * sizeof(*c->rooms));
        }
        for (size_t i = 0; i < n; i++) {
            struct seq_room *sr = &c->rooms[c->nrooms++];
            sr->id = ids[i];
            sr->seq = sr->base = ctr_slot(c, ids[i])->seq;
        }
        c->optimistic = c->guessed = 1;
        return CD_OK;
    }
    if (!optimistic || !c->writer || !c->in_tx) {
        /* libpq copies the parameters into its output buffer when the command is sent */
        rc = defer(c, SQL_LOCK_ROOMS, &p);
        free(arr);
        return rc;
    }
    rc = run(c, SQL_LOCK_ROOMS, &p, &r);
    free(arr);
    if (rc != CD_OK) return rc;
    c->nrooms = 0;
    if ((size_t)PQntuples(r) > c->rooms_cap) {
        c->rooms_cap = (size_t)PQntuples(r);
        c->rooms = xrealloc(c->rooms, c->rooms_cap * sizeof(*c->rooms));
    }
    for (int i = 0, rows = PQntuples(r); i < rows; i++) {
        struct seq_room *sr = &c->rooms[c->nrooms++];
        sr->id = col_i64(r, i, 0);
        sr->seq = sr->base = col_i64(r, i, 1);
    }
    PQclear(r);
    c->optimistic = 1;
    return CD_OK;
}

/* Reads of the writer see this transaction's counters, not the rows' (written at commit). */
static void overlay_last_seq(const struct store_conn *c, struct store_room *room)
{
    long k;
    if (c->optimistic && (k = room_find(c, room->id)) >= 0) room->last_seq = c->rooms[k].seq;
}

static int pg_user_insert(struct store_conn *c, const char *username, const char *pwhash,
                          int64_t now_ms, int64_t *id_out)
{
    struct params p = {0};
    int rc;
    p_str(&p, username);
    p_str(&p, pwhash);
    p_int(&p, now_ms);
    rc = query_i64(c, SQL_USER_INSERT, &p, id_out);
    if (rc == CD_E_NOT_FOUND || rc == CD_E_CONFLICT) return CD_E_USERNAME_TAKEN;
    if (rc == CD_OK) {
        struct jsonw w;
        char id[32];
        jsonw_init(&w, 128);
        store__user_created_json(&w, id, *id_out, username, now_ms);
        rc = ob_add(c, 0, 0, "user.created", id, now_ms, &w);
        jsonw_free(&w);
    }
    return rc;
}

static int user_row(struct store_conn *c, enum sql_id id, const struct params *p,
                    struct store_user *out)
{
    PGresult *r;
    int rc = run(c, id, p, &r);
    if (rc != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        out->id = col_i64(r, 0, 0);
        col_text(r, 0, 1, out->username, sizeof(out->username));
        col_text(r, 0, 2, out->pwhash, sizeof(out->pwhash));
        out->created_at = col_i64(r, 0, 3);
        out->last_seen = col_i64(r, 0, 4);
    }
    PQclear(r);
    return rc;
}

static int pg_user_get(struct store_conn *c, int64_t id, struct store_user *out)
{
    struct params p = {0};
    p_int(&p, id);
    return user_row(c, SQL_USER_GET, &p, out);
}

static int pg_user_by_name(struct store_conn *c, const char *username, struct store_user *out)
{
    struct params p = {0};
    p_str(&p, username);
    return user_row(c, SQL_USER_BY_NAME, &p, out);
}

static int pg_user_set_last_seen(struct store_conn *c, int64_t id, int64_t ms)
{
    return exec_ii(c, SQL_USER_LAST_SEEN, id, ms);
}

static int pg_session_insert(struct store_conn *c, int64_t user_id, int64_t now_ms, int64_t *sid)
{
    struct params p = {0};
    p_int(&p, user_id);
    p_int(&p, now_ms);
    return query_i64(c, SQL_SESSION_INSERT, &p, sid);
}

static int pg_session_insert_id(struct store_conn *c, int64_t id, int64_t user_id, int64_t now_ms)
{
    struct params p = {0};
    int64_t got;
    int rc;
    p_int(&p, id);
    p_int(&p, user_id);
    p_int(&p, now_ms);
    rc = query_i64(c, SQL_SESSION_INSERT_ID, &p, &got);
    return rc == CD_E_NOT_FOUND ? CD_E_CONFLICT : rc; /* nothing inserted: the id is taken */
}

static int pg_session_revoke(struct store_conn *c, int64_t sid, int64_t now_ms)
{
    return exec_ii(c, SQL_SESSION_REVOKE, sid, now_ms);
}

static int pg_sessions_revoked_since(struct store_conn *c, int64_t since_ms,
                                     int (*cb)(void *ud, int64_t sid, int64_t revoked_at_ms),
                                     void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, since_ms);
    if ((rc = run(c, SQL_SESSIONS_REVOKED_SINCE, &p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        if (cb(ud, col_i64(r, i, 0), col_i64(r, i, 1))) break;
    PQclear(r);
    return CD_OK;
}

static int pg_refresh_insert(struct store_conn *c, struct store_refresh *rt)
{
    struct params p = {0};
    p_int(&p, rt->session_id);
    p_int(&p, rt->user_id);
    p_bytes(&p, rt->hash, 32);
    p_int(&p, rt->created_at);
    p_int(&p, rt->expires_at);
    return query_i64(c, SQL_REFRESH_INSERT, &p, &rt->id);
}

static int pg_refresh_by_hash(struct store_conn *c, const uint8_t hash[32],
                              struct store_refresh *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_bytes(&p, hash, 32);
    if ((rc = run(c, SQL_REFRESH_BY_HASH, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        out->id = col_i64(r, 0, 0);
        out->session_id = col_i64(r, 0, 1);
        out->user_id = col_i64(r, 0, 2);
        out->created_at = col_i64(r, 0, 3);
        out->expires_at = col_i64(r, 0, 4);
        out->used_at = col_i64(r, 0, 5);
        out->session_revoked = (int)col_i64(r, 0, 6);
        memcpy(out->hash, hash, 32);
    }
    PQclear(r);
    return rc;
}

static int pg_refresh_mark_used(struct store_conn *c, int64_t id, int64_t now_ms)
{
    return exec_ii(c, SQL_REFRESH_USED, id, now_ms);
}

static void room_row(const PGresult *r, int row, int col, struct store_room *out)
{
    out->id = col_i64(r, row, col);
    out->kind = (int)col_i64(r, row, col + 1);
    col_text(r, row, col + 2, out->name, sizeof(out->name));
    col_text(r, row, col + 3, out->topic, sizeof(out->topic));
    out->created_by = col_i64(r, row, col + 4);
    out->created_at = col_i64(r, row, col + 5);
    out->last_seq = col_i64(r, row, col + 6);
    out->member_count = col_i64(r, row, col + 7);
    out->is_public = (int)col_i64(r, row, col + 8);
    out->state = (int)col_i64(r, row, col + 9);
}

static void member_row(const PGresult *r, int row, int col, struct store_member *out)
{
    out->room_id = col_i64(r, row, col);
    out->user_id = col_i64(r, row, col + 1);
    out->role = (int)col_i64(r, row, col + 2);
    out->joined_seq = col_i64(r, row, col + 3);
    out->read_seq = col_i64(r, row, col + 4);
}

/* Points ev's strings into the result: valid until it is cleared. */
static void event_row(const PGresult *r, int row, struct store_event *ev)
{
    memset(ev, 0, sizeof(*ev)); /* derived fields: messages_page only */
    ev->room_id = col_i64(r, row, 0);
    ev->seq = col_i64(r, row, 1);
    ev->kind = (int)col_i64(r, row, 2);
    ev->sender = col_i64(r, row, 3);
    ev->ts = col_i64(r, row, 4);
    if (PQgetisnull(r, row, 5)) {
        ev->client_msg_id = NULL;
        ev->cmid_len = 0;
    } else {
        ev->client_msg_id = PQgetvalue(r, row, 5);
        ev->cmid_len = (size_t)PQgetlength(r, row, 5);
    }
    ev->body = PQgetvalue(r, row, 6);
    ev->body_len = (size_t)PQgetlength(r, row, 6);
    ev->extra = PQgetisnull(r, row, 7) ? NULL : PQgetvalue(r, row, 7);
    ev->extra_len = ev->extra ? (size_t)PQgetlength(r, row, 7) : 0;
}

/* The rows are fetched whole before the first callback, so a callback may use this connection
 * (for other statements) freely. */
static int each_event(struct store_conn *c, enum sql_id id, const struct params *p,
                      store_event_cb cb, void *ud, int *n)
{
    PGresult *r;
    int rc, rows;
    if ((rc = run(c, id, p, &r)) != CD_OK) return rc;
    rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        struct store_event ev;
        event_row(r, i, &ev);
        if (cb(ud, &ev)) break;
    }
    PQclear(r);
    if (n) *n = rows;
    return CD_OK;
}

static int each_member(struct store_conn *c, enum sql_id id, const struct params *p, int with_room,
                       store_room_cb cb, void *ud)
{
    PGresult *r;
    int rc;
    if ((rc = run(c, id, p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_room room;
        struct store_member m;
        if (with_room) {
            room_row(r, i, 0, &room);
            overlay_last_seq(c, &room);
        }
        member_row(r, i, with_room ? ROOM_NCOLS : 0, &m);
        if (cb(ud, with_room ? &room : NULL, &m)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_room_insert(struct store_conn *c, struct store_room *rm, const char *dm_key)
{
    struct params p = {0};
    int rc;
    p_int(&p, rm->kind);
    p_str(&p, rm->name);
    p_str(&p, rm->topic);
    p_int(&p, rm->created_by);
    p_int(&p, rm->created_at);
    p_str(&p, dm_key);
    rc = query_i64(c, SQL_ROOM_INSERT, &p, &rm->id);
    if (rc == CD_E_NOT_FOUND) return CD_E_CONFLICT; /* the dm_key is taken */
    if (rc == CD_OK) {
        struct jsonw w;
        char id[32];
        rm->last_seq = 0;
        rm->member_count = 0;
        jsonw_init(&w, 256);
        store__room_created_json(&w, id, rm);
        rc = ob_add(c, rm->id, 0, "room.created", id, rm->created_at, &w);
        jsonw_free(&w);
    }
    return rc;
}

static int pg_room_get(struct store_conn *c, int64_t room_id, struct store_room *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, room_id);
    if ((rc = run(c, SQL_ROOM_GET, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        room_row(r, 0, 0, out);
        overlay_last_seq(c, out);
    }
    PQclear(r);
    return rc;
}

static int pg_rooms_ahead(struct store_conn *c, const int64_t *ids, const int64_t *seen, size_t n,
                          int (*cb)(void *ud, int64_t room, int64_t last_seq), void *ud)
{
    struct params p = {0};
    PGresult *r;
    size_t l1, l2;
    char *a1, *a2;
    int rc;

    if (n == 0) return CD_OK;
    a1 = int_array(ids, sizeof(*ids), n, &l1);
    a2 = int_array(seen, sizeof(*seen), n, &l2);
    p_bytes(&p, a1, l1);
    p_bytes(&p, a2, l2);
    p.fmt[0] = p.fmt[1] = 0; /* array literals in text format */
    rc = run(c, SQL_ROOMS_AHEAD, &p, &r);
    free(a1);
    free(a2);
    if (rc != CD_OK) return rc;
    for (int i = 0, rows = PQntuples(r); i < rows; i++)
        if (cb(ud, col_i64(r, i, 0), col_i64(r, i, 1))) break;
    PQclear(r);
    return CD_OK;
}

static int pg_room_by_dm_key(struct store_conn *c, const char *dm_key, int64_t *room_id)
{
    struct params p = {0};
    p_str(&p, dm_key);
    return query_i64(c, SQL_ROOM_BY_DM_KEY, &p, room_id);
}

static int pg_room_update(struct store_conn *c, int64_t room_id, const char *name,
                          const char *topic)
{
    struct params p = {0};
    p_int(&p, room_id);
    p_str(&p, name);
    p_str(&p, topic);
    return exec_one(c, SQL_ROOM_UPDATE, &p);
}

static int pg_member_get(struct store_conn *c, int64_t room_id, int64_t user_id,
                         struct store_member *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, room_id);
    p_int(&p, user_id);
    if ((rc = run(c, SQL_MEMBER_GET, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0)
        rc = CD_E_NOT_FOUND;
    else
        member_row(r, 0, 0, out);
    PQclear(r);
    return rc;
}

/* As SQLite: an existing membership gets its role updated; a new one bumps member_count first
 * (CD_E_NOT_FOUND for an unknown room, before anything is written), then is inserted. The
 * writer holds the room's row lock (lock_rooms, or the count update), so no other node adds the
 * same membership in between. */
static int pg_member_put(struct store_conn *c, const struct store_member *m)
{
    struct params p = {0};
    int rc;
    p_int(&p, m->room_id);
    p_int(&p, m->user_id);
    p_int(&p, m->role);
    if ((rc = exec_one(c, SQL_MEMBER_SET_ROLE, &p)) != CD_E_NOT_FOUND) return rc;
    p.n = 0;
    p_int(&p, m->room_id);
    p_int(&p, 1);
    if ((rc = exec_one(c, SQL_ROOM_COUNT_ADD, &p)) != CD_OK) return rc;
    p.n = 0;
    p_int(&p, m->room_id);
    p_int(&p, m->user_id);
    p_int(&p, m->role);
    p_int(&p, m->joined_seq);
    p_int(&p, m->read_seq);
    return exec_one(c, SQL_MEMBER_INSERT, &p);
}

static int pg_member_delete(struct store_conn *c, int64_t room_id, int64_t user_id)
{
    struct params p = {0};
    int rc;
    p_int(&p, room_id);
    p_int(&p, user_id);
    if ((rc = exec_one(c, SQL_MEMBER_DELETE, &p)) != CD_OK) return rc;
    p.n = 0;
    p_int(&p, room_id);
    p_int(&p, -1);
    return exec_one(c, SQL_ROOM_COUNT_ADD, &p);
}

static int pg_members_list(struct store_conn *c, int64_t room_id, int limit, store_room_cb cb,
                           void *ud)
{
    struct params p = {0};
    p_int(&p, room_id);
    p_limit(&p, limit);
    return each_member(c, SQL_MEMBERS_LIST, &p, 0, cb, ud);
}

static int pg_rooms_of_user(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                            store_room_cb cb, void *ud)
{
    struct params p = {0};
    p_int(&p, user_id);
    p_int(&p, after);
    p_limit(&p, limit);
    return each_member(c, SQL_ROOMS_OF_USER, &p, 1, cb, ud);
}

static int pg_user_room_counts(struct store_conn *c, int64_t user_id, int64_t *group_rooms,
                               int64_t *owned)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, user_id);
    if ((rc = run(c, SQL_USER_ROOM_COUNTS, &p, &r)) != CD_OK) return rc;
    *group_rooms = PQntuples(r) ? col_i64(r, 0, 0) : 0;
    *owned = PQntuples(r) ? col_i64(r, 0, 1) : 0;
    PQclear(r);
    return CD_OK;
}

static int pg_users_share_room(struct store_conn *c, int64_t a, int64_t b, int *out)
{
    struct params p = {0};
    int64_t v = 0;
    int rc;
    p_int(&p, a);
    p_int(&p, b);
    rc = query_i64(c, SQL_USERS_SHARE, &p, &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

/* One statement: bump the room's counter (row-locked until commit) and insert the entry under
 * it, unless (sender, client_msg_id) exists. A refused insert takes the bump back (the row is
 * still ours), so a conflict changes nothing even when the caller keeps its savepoint. Nothing
 * here raises an error for an expected outcome: a job without a savepoint (clean_fail) never
 * aborts the batch's transaction. */
static int pg_event_append(struct store_conn *c, struct store_event *ev)
{
    struct params p = {0};
    PGresult *r;
    long k;
    int rc;

    if (ev->body_len > INT32_MAX || ev->cmid_len > INT32_MAX) return CD_E_TOO_LARGE;
    /* PostgreSQL text cannot hold NUL: refused here, never as a server error. */
    if ((ev->body && memchr(ev->body, 0, ev->body_len)) ||
        (ev->client_msg_id && memchr(ev->client_msg_id, 0, ev->cmid_len)))
        return CD_E_INVALID_UTF8;
    p_int(&p, ev->room_id);
    p_int(&p, ev->kind);
    p_int(&p, ev->sender);
    p_int(&p, ev->ts);
    p_bytes(&p, ev->client_msg_id, ev->cmid_len);
    p_bytes(&p, ev->body ? ev->body : "", ev->body_len);
    if (c->optimistic && !c->failed && (k = room_find(c, ev->room_id)) >= 0) {
        /* A room this transaction locked: numbered from its counter, queued, not waited for. A
         * duplicate raises a unique violation when the server gets to it (at the latest before
         * COMMIT, which it then skips): nothing commits and the batch runs again without
         * optimism, where the duplicate is CD_E_CONFLICT. */
        int64_t seq = c->rooms[k].seq + 1;
        struct arow *row;
        if (c->nrows == c->rows_cap) {
            c->rows_cap = c->rows_cap ? c->rows_cap * 2 : 64;
            c->rows = xrealloc(c->rows, c->rows_cap * sizeof(*c->rows));
        }
        row = &c->rows[c->nrows++];
        row->room = ev->room_id;
        row->seq = seq;
        row->sender = ev->sender;
        row->ts = ev->ts;
        row->kind = ev->kind;
        row->cmid = ev->client_msg_id ? xstrndup(ev->client_msg_id, ev->cmid_len) : NULL;
        row->cmid_len = ev->cmid_len;
        row->body = xstrndup(ev->body ? ev->body : "", ev->body_len);
        row->body_len = ev->body_len;
        if (c->nundo == c->undo_cap) {
            c->undo_cap = c->undo_cap ? c->undo_cap * 2 : 64;
            c->undo = xrealloc(c->undo, c->undo_cap * sizeof(*c->undo));
        }
        c->undo[c->nundo++] = (struct seq_undo){(size_t)k, c->rooms[k].seq};
        c->rooms[k].seq = seq;
        ev->seq = seq;
        if ((rc = ob_add(c, ev->room_id, seq, NULL, NULL, 0, NULL)) != CD_OK) return rc;
        if (c->nrows >= APPEND_ROWS_MAX) return flush_rows(c);
        return CD_OK;
    }
    if (c->writer) ctr_forget(c, ev->room_id); /* moved by a plain append */
    if ((rc = run(c, SQL_EVENT_APPEND, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND; /* no such room: nothing updated */
    } else if (PQgetisnull(r, 0, 1)) {
        struct params u = {0};
        PGresult *ur;
        p_int(&u, ev->room_id);
        rc = run(c, SQL_EVENT_UNBUMP, &u, &ur);
        PQclear(ur);
        if (rc == CD_OK) rc = CD_E_CONFLICT;
    } else {
        ev->seq = col_i64(r, 0, 1);
        rc = ob_add(c, ev->room_id, ev->seq, NULL, NULL, 0, NULL);
    }
    PQclear(r);
    return rc;
}

static int pg_event_by_client_id(struct store_conn *c, int64_t room_id, int64_t sender,
                                 const char *cmid, size_t cmid_len, store_event_cb cb, void *ud)
{
    struct params p = {0};
    int n = 0, rc;
    if (cmid_len > INT32_MAX || memchr(cmid, 0, cmid_len)) return CD_E_NOT_FOUND;
    p_int(&p, sender);
    p_bytes(&p, cmid, cmid_len);
    p_int(&p, room_id);
    rc = each_event(c, SQL_EVENT_BY_CLIENT_ID, &p, cb, ud, &n);
    return rc == CD_OK && n == 0 ? CD_E_NOT_FOUND : rc;
}

static int pg_events_page(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                          int limit, int desc, store_event_cb cb, void *ud)
{
    static const enum sql_id ids[2][2] = {{SQL_EVENTS_ASC, SQL_EVENTS_DESC},
                                          {SQL_EVENTS_ASC_BEFORE, SQL_EVENTS_DESC_BEFORE}};
    struct params p = {0};
    p_int(&p, room_id);
    p_int(&p, after);
    p_limit(&p, limit);
    if (before > 0) p_int(&p, before);
    return each_event(c, ids[before > 0][desc != 0], &p, cb, ud, NULL);
}

static int pg_read_mark(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq,
                        int64_t *out_seq)
{
    struct params p = {0};
    long k;
    p_int(&p, room_id);
    p_int(&p, user_id);
    p_int(&p, seq);
    if (c->optimistic && (k = room_find(c, room_id)) >= 0)
        p_int(&p, c->rooms[k].seq);
    else
        p_null(&p);
    return query_i64(c, SQL_READ_MARK, &p, out_seq);
}

static int pg_unread_count(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t after,
                           int64_t max, int64_t *out, int *capped)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, room_id);
    p_int(&p, user_id);
    p_int(&p, after);
    p_int(&p, EV_MESSAGE);
    p_int(&p, max < 0 ? 0 : max);
    if ((rc = run(c, SQL_UNREAD_COUNT, &p, &r)) != CD_OK) return rc;
    *out = PQntuples(r) ? col_i64(r, 0, 0) : 0;
    *capped = PQntuples(r) ? col_i64(r, 0, 1) != 0 : 0;
    PQclear(r);
    return CD_OK;
}

static int pg_webhook_insert(struct store_conn *c, struct store_webhook *w)
{
    struct params p = {0};
    p_int(&p, w->kind);
    p_str(&p, w->url);
    p_str(&p, w->secret);
    p_str(&p, w->types);
    p_int(&p, w->created_at);
    return query_i64(c, SQL_WEBHOOK_INSERT, &p, &w->id);
}

static int pg_webhook_delete(struct store_conn *c, int64_t id)
{
    struct params p = {0};
    p_int(&p, id);
    return exec_one(c, SQL_WEBHOOK_DELETE, &p);
}

static int each_webhook(struct store_conn *c, enum sql_id id, const struct params *p,
                        store_webhook_cb cb, void *ud, int *n)
{
    PGresult *r;
    int rc, rows;
    if ((rc = run(c, id, p, &r)) != CD_OK) return rc;
    rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        struct store_webhook w;
        w.id = col_i64(r, i, 0);
        w.kind = (int)col_i64(r, i, 1);
        col_text(r, i, 2, w.url, sizeof(w.url));
        col_text(r, i, 3, w.secret, sizeof(w.secret));
        col_text(r, i, 4, w.types, sizeof(w.types));
        w.created_at = col_i64(r, i, 5);
        if (cb(ud, &w)) break;
    }
    PQclear(r);
    if (n) *n = rows;
    return CD_OK;
}

static int copy_webhook(void *ud, const struct store_webhook *w)
{
    *(struct store_webhook *)ud = *w;
    return 1;
}

static int pg_webhook_get(struct store_conn *c, int64_t id, struct store_webhook *out)
{
    struct params p = {0};
    int n = 0, rc;
    p_int(&p, id);
    rc = each_webhook(c, SQL_WEBHOOK_GET, &p, copy_webhook, out, &n);
    return rc == CD_OK && n == 0 ? CD_E_NOT_FOUND : rc;
}

static int pg_webhooks_list(struct store_conn *c, store_webhook_cb cb, void *ud)
{
    return each_webhook(c, SQL_WEBHOOKS_LIST, NULL, cb, ud, NULL);
}

static int pg_delivery_insert(struct store_conn *c, const struct store_delivery *d, int *inserted)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, d->endpoint_id);
    p_str(&p, d->event_id);
    p_bytes(&p, d->body, d->body_len);
    p_int(&p, d->next_at);
    p_int(&p, d->created_at);
    if ((rc = run(c, SQL_DELIVERY_INSERT, &p, &r)) != CD_OK) return rc;
    *inserted = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return CD_OK;
}

static int pg_deliveries_list(struct store_conn *c, int state, int64_t due_before, int64_t after,
                              int limit, store_delivery_cb cb, void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    if (state == DELIVERY_PENDING)
        p_int(&p, due_before);
    else
        p_int(&p, state);
    p_int(&p, after);
    p_limit(&p, limit);
    rc = run(c, state == DELIVERY_PENDING ? SQL_DELIVERIES_DUE : SQL_DELIVERIES_STATE, &p, &r);
    if (rc != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_delivery d;
        d.id = col_i64(r, i, 0);
        d.endpoint_id = col_i64(r, i, 1);
        col_text(r, i, 2, d.event_id, sizeof(d.event_id));
        d.body = PQgetvalue(r, i, 3);
        d.body_len = (size_t)PQgetlength(r, i, 3);
        d.state = (int)col_i64(r, i, 4);
        d.attempts = (int)col_i64(r, i, 5);
        d.next_at = col_i64(r, i, 6);
        d.created_at = col_i64(r, i, 7);
        col_text(r, i, 8, d.last_error, sizeof(d.last_error));
        if (cb(ud, &d)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_delivery_update(struct store_conn *c, int64_t id, int state, int attempts,
                              int64_t next_at, const char *last_error)
{
    struct params p = {0};
    p_int(&p, id);
    p_int(&p, state);
    p_int(&p, attempts);
    p_int(&p, next_at);
    p_str(&p, last_error);
    return exec_one(c, SQL_DELIVERY_UPDATE, &p);
}

static int pg_delivery_claim(struct store_conn *c, int64_t id, int64_t due_before, int64_t until)
{
    struct params p = {0};
    p_int(&p, id);
    p_int(&p, due_before);
    p_int(&p, until);
    return exec_one(c, SQL_DELIVERY_CLAIM, &p);
}

static int pg_delivery_replay(struct store_conn *c, int64_t id, int64_t now_ms)
{
    struct params p = {0};
    p_int(&p, id);
    p_int(&p, now_ms);
    return exec_one(c, SQL_DELIVERY_REPLAY, &p);
}

static int pg_room_mute_put(struct store_conn *c, int64_t room_id, int64_t user_id, int muted)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, room_id);
    p_int(&p, user_id);
    p_int(&p, muted ? 1 : 0);
    rc = run(c, SQL_MUTE_PUT, &p, &r);
    PQclear(r);
    return rc;
}

static int pg_room_mute_get(struct store_conn *c, int64_t room_id, int64_t user_id, int *muted)
{
    struct params p = {0};
    int64_t v = 0;
    int rc;
    p_int(&p, room_id);
    p_int(&p, user_id);
    rc = query_i64(c, SQL_MUTE_GET, &p, &v);
    if (rc == CD_E_NOT_FOUND) rc = CD_OK;
    *muted = v != 0;
    return rc;
}

/* Storage health (store.c's probe job, in a write transaction): the server answers. */
/* One range scan of the outbox's primary key and one events primary-key lookup per log entry;
 * the rows are fetched whole before the first callback. */
static int pg_outbox_page(struct store_conn *c, int64_t after, int limit, store_outbox_cb cb,
                          void *ud)
{
    struct params p = {0};
    struct jsonw w;
    PGresult *r;
    int rc;

    p_int(&p, after);
    p_limit(&p, limit);
    if ((rc = run(c, SQL_OUTBOX_PAGE, &p, &r)) != CD_OK) return rc;
    jsonw_init(&w, 512);
    for (int i = 0, rows = PQntuples(r); i < rows; i++) {
        struct store_outbox_event ob = {.pos = col_i64(r, i, 0), .room_id = col_i64(r, i, 1)};
        char id[48];
        if (col_i64(r, i, 2) > 0) {
            struct store_event ev = {.room_id = ob.room_id, .seq = col_i64(r, i, 2)};
            if (PQgetisnull(r, i, 7)) continue; /* no such entry */
            ev.kind = (int)col_i64(r, i, 7);
            ev.sender = col_i64(r, i, 8);
            ev.ts = col_i64(r, i, 9);
            if (!PQgetisnull(r, i, 10)) {
                ev.client_msg_id = PQgetvalue(r, i, 10);
                ev.cmid_len = (size_t)PQgetlength(r, i, 10);
            }
            ev.body = PQgetvalue(r, i, 11);
            ev.body_len = (size_t)PQgetlength(r, i, 11);
            if (!PQgetisnull(r, i, 12)) {
                ev.extra = PQgetvalue(r, i, 12);
                ev.extra_len = (size_t)PQgetlength(r, i, 12);
            }
            ev.reply_to = col_i64(r, i, 13);
            ev.thread = col_i64(r, i, 14);
            w.len = JSONW_HEADROOM;
            store_event_json(&w, &ev);
            ob.id = id;
            ob.id_len = store__log_event_id(id, ev.kind, ev.room_id, ev.seq);
            ob.type = store__log_event_type(ev.kind);
            ob.ts = ev.ts;
            ob.json = jsonw_text(&w);
            ob.json_len = jsonw_text_len(&w);
        } else {
            if (PQgetisnull(r, i, 3) || PQgetisnull(r, i, 4) || PQgetisnull(r, i, 6)) continue;
            ob.type = PQgetvalue(r, i, 3);
            ob.id = PQgetvalue(r, i, 4);
            ob.id_len = (size_t)PQgetlength(r, i, 4);
            ob.ts = col_i64(r, i, 5);
            ob.json = PQgetvalue(r, i, 6);
            ob.json_len = (size_t)PQgetlength(r, i, 6);
        }
        ob.type_len = strlen(ob.type);
        if (cb(ud, &ob)) break;
    }
    jsonw_free(&w);
    PQclear(r);
    return CD_OK;
}

static int pg_consumer_get(struct store_conn *c, const char *name, int64_t *pos)
{
    struct params p = {0};
    int rc;
    p_str(&p, name);
    rc = query_i64(c, SQL_CONSUMER_GET, &p, pos);
    if (rc == CD_E_NOT_FOUND) {
        *pos = 0;
        rc = CD_OK;
    }
    return rc;
}

static int pg_outbox_head(struct store_conn *c, int64_t *pos)
{
    struct params p = {0};
    return query_i64(c, SQL_OUTBOX_HEAD, &p, pos);
}

static int pg_consumer_put(struct store_conn *c, const char *name, int64_t pos)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_str(&p, name);
    p_int(&p, pos);
    rc = run(c, SQL_CONSUMER_PUT, &p, &r);
    PQclear(r);
    return rc;
}

static int pg_apikey_insert(struct store_conn *c, const char *name, const uint8_t hash[32],
                            int64_t now_ms, int64_t *id_out)
{
    struct params p = {0};
    p_str(&p, name);
    p_bytes(&p, hash, 32);
    p_int(&p, now_ms);
    return query_i64(c, SQL_APIKEY_INSERT, &p, id_out);
}

static void apikey_row(const PGresult *r, int row, struct store_apikey *k)
{
    k->id = col_i64(r, row, 0);
    col_text(r, row, 1, k->name, sizeof(k->name));
    k->created_at = col_i64(r, row, 2);
    k->revoked_at = col_i64(r, row, 3);
}

static int pg_apikey_by_hash(struct store_conn *c, const uint8_t hash[32], struct store_apikey *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_bytes(&p, hash, 32);
    if ((rc = run(c, SQL_APIKEY_BY_HASH, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0)
        rc = CD_E_NOT_FOUND;
    else
        apikey_row(r, 0, out);
    PQclear(r);
    return rc;
}

static int pg_apikey_list(struct store_conn *c, store_apikey_cb cb, void *ud)
{
    PGresult *r;
    int rc;
    if ((rc = run(c, SQL_APIKEY_LIST, NULL, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_apikey k;
        apikey_row(r, i, &k);
        if (cb(ud, &k)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_apikey_revoke(struct store_conn *c, int64_t id, int64_t now_ms)
{
    struct params p = {0};
    p_int(&p, id);
    p_int(&p, now_ms);
    return exec_one(c, SQL_APIKEY_REVOKE, &p);
}

/* ---- message operations and receipts ---- */

static int pg_msg_get(struct store_conn *c, int64_t room_id, int64_t seq, struct store_msg *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, room_id);
    p_int(&p, seq);
    if ((rc = run(c, SQL_MSG_GET, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        out->room_id = room_id;
        out->seq = seq;
        out->sender = col_i64(r, 0, 0);
        out->kind = (int)col_i64(r, 0, 1);
        out->deleted = (int)col_i64(r, 0, 2);
        out->thread = col_i64(r, 0, 3);
    }
    PQclear(r);
    return rc;
}

/* Runs statement id with n integer parameters (2-4). */
static int exec_i4(struct store_conn *c, enum sql_id id, int64_t a, int64_t b, int64_t x, int64_t y,
                   int n)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, a);
    p_int(&p, b);
    if (n > 2) p_int(&p, x);
    if (n > 3) p_int(&p, y);
    rc = run(c, id, &p, &r);
    PQclear(r);
    return rc;
}

static int state_ensure(struct store_conn *c, int64_t room_id, int64_t seq)
{
    return exec_i4(c, SQL_MSG_STATE_ENSURE, room_id, seq, 0, 0, 2);
}

static int pg_msg_thread_put(struct store_conn *c, int64_t room_id, int64_t seq, int64_t reply_to,
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
    struct params p = {0};
    PGresult *r;
    int rc;
    if (len > INT32_MAX) return CD_E_TOO_LARGE;
    if (memchr(body, 0, len)) return CD_E_INVALID_UTF8;
    p_int(&p, room_id);
    p_int(&p, seq);
    p_bytes(&p, body, len);
    rc = run(c, id, &p, &r);
    PQclear(r);
    return rc;
}

static int pg_msg_edit(struct store_conn *c, int64_t room_id, int64_t target, const char *body,
                       size_t body_len, int64_t edited_at, int64_t edit_seq)
{
    int rc = set_body(c, SQL_MSG_SET_BODY, room_id, target, body, body_len);
    if (rc == CD_OK) rc = state_ensure(c, room_id, target);
    if (rc == CD_OK) rc = exec_i4(c, SQL_MSG_EDITED, room_id, target, edited_at, edit_seq, 4);
    if (rc == CD_OK) rc = exec_i4(c, SQL_MSG_EDIT_ADD, room_id, target, edit_seq, 0, 3);
    return rc;
}

static int pg_msg_delete(struct store_conn *c, int64_t room_id, int64_t target, int64_t op_seq,
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

static int pg_reaction_set(struct store_conn *c, int64_t room_id, int64_t target, int64_t user_id,
                           const char *emoji, size_t emoji_len, int on, int64_t now_ms,
                           int *changed)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    if (emoji_len > INT32_MAX) return CD_E_TOO_LARGE;
    if (memchr(emoji, 0, emoji_len)) return CD_E_INVALID_UTF8;
    p_int(&p, room_id);
    p_int(&p, target);
    p_bytes(&p, emoji, emoji_len);
    p_int(&p, user_id);
    if (on) p_int(&p, now_ms);
    if ((rc = run(c, on ? SQL_REACTION_ON : SQL_REACTION_OFF, &p, &r)) != CD_OK) return rc;
    *changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return CD_OK;
}

static int pg_msg_touch(struct store_conn *c, int64_t room_id, int64_t target, int64_t op_seq)
{
    int rc = state_ensure(c, room_id, target);
    return rc == CD_OK ? exec_i4(c, SQL_MSG_TOUCH, room_id, target, op_seq, 0, 3) : rc;
}

static int pg_messages_page(struct store_conn *c, int64_t room_id, int64_t after, int64_t before,
                            int limit, int desc, int64_t viewer, int64_t thread, store_event_cb cb,
                            void *ud)
{
    static const enum sql_id ids[2][2] = {{SQL_MSGS_ASC, SQL_MSGS_DESC},
                                          {SQL_THREAD_ASC, SQL_THREAD_DESC}};
    struct params p = {0};
    PGresult *r;
    int rc, rows;
    p_int(&p, room_id);
    p_int(&p, after);
    p_limit(&p, limit);
    p_int(&p, before > 0 ? before : INT64_MAX);
    p_int(&p, viewer);
    if (thread > 0) p_int(&p, thread);
    if ((rc = run(c, ids[thread > 0][desc != 0], &p, &r)) != CD_OK) return rc;
    rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        struct store_event ev;
        memset(&ev, 0, sizeof(ev));
        event_row(r, i, &ev);
        ev.reply_to = col_i64(r, i, 8);
        ev.thread = col_i64(r, i, 9);
        ev.edited_at = col_i64(r, i, 10);
        ev.deleted = (int)col_i64(r, i, 11);
        ev.reply_count = col_i64(r, i, 12);
        ev.last_reply_seq = col_i64(r, i, 13);
        ev.state_seq = col_i64(r, i, 14);
        if (!PQgetisnull(r, i, 15)) {
            ev.reactions = PQgetvalue(r, i, 15);
            ev.reactions_len = (size_t)PQgetlength(r, i, 15);
        }
        if (cb(ud, &ev)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_delivered_mark(struct store_conn *c, int64_t room_id, int64_t user_id,
                             int64_t session_id, int64_t seq, int64_t *out_seq)
{
    struct params p = {0};
    long k;
    p_int(&p, room_id);
    p_int(&p, user_id);
    p_int(&p, session_id);
    p_int(&p, seq);
    if (c->optimistic && (k = room_find(c, room_id)) >= 0)
        p_int(&p, c->rooms[k].seq);
    else
        p_null(&p);
    return query_i64(c, SQL_DELIVERED_MARK, &p, out_seq);
}

static int pg_receipts_list(struct store_conn *c, int64_t room_id, int limit, store_receipt_cb cb,
                            void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc, rows;
    p_int(&p, room_id);
    p_limit(&p, limit);
    if ((rc = run(c, SQL_RECEIPTS_LIST, &p, &r)) != CD_OK) return rc;
    rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        struct store_receipt rr = {.user_id = col_i64(r, i, 0),
                                   .read_seq = col_i64(r, i, 1),
                                   .delivered_seq = col_i64(r, i, 2),
                                   .share_read = (int)col_i64(r, i, 3)};
        if (cb(ud, &rr)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_settings_get(struct store_conn *c, int64_t user_id, int *share_read_receipts)
{
    struct params p = {0};
    int64_t v = 1;
    int rc;
    p_int(&p, user_id);
    rc = query_i64(c, SQL_SETTINGS_GET, &p, &v);
    if (rc == CD_E_NOT_FOUND) rc = CD_OK;
    *share_read_receipts = v != 0;
    return rc;
}

static int pg_settings_put(struct store_conn *c, int64_t user_id, int share_read_receipts)
{
    return exec_i4(c, SQL_SETTINGS_PUT, user_id, share_read_receipts != 0, 0, 0, 2);
}

/* ---- attachments ---- */

static int pg_attachment_insert(struct store_conn *c, const struct store_attachment *a)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_str(&p, a->id);
    p_int(&p, a->owner);
    p_int(&p, a->size);
    p_str(&p, a->content_type);
    p_str(&p, a->name);
    p_str(&p, a->sha256);
    p_int(&p, a->created_at);
    rc = run(c, SQL_ATT_INSERT, &p, &r);
    PQclear(r);
    return rc;
}

static int pg_attachment_get(struct store_conn *c, const char *id, struct store_attachment *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_str(&p, id);
    if ((rc = run(c, SQL_ATT_GET, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        memset(out, 0, sizeof(*out));
        col_text(r, 0, 0, out->id, sizeof(out->id));
        out->owner = col_i64(r, 0, 1);
        out->size = col_i64(r, 0, 2);
        col_text(r, 0, 3, out->content_type, sizeof(out->content_type));
        col_text(r, 0, 4, out->name, sizeof(out->name));
        col_text(r, 0, 5, out->sha256, sizeof(out->sha256));
        out->created_at = col_i64(r, 0, 6);
    }
    PQclear(r);
    return rc;
}

static int pg_attachment_readable(struct store_conn *c, const char *id, int64_t user, int *out)
{
    struct params p = {0};
    int64_t v = 0;
    int rc;
    p_str(&p, id);
    p_int(&p, user);
    rc = query_i64(c, SQL_ATT_READABLE, &p, &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

static int pg_attachment_ref(struct store_conn *c, const char *id, int64_t room, int64_t seq)
{
    struct params p = {0};
    p_str(&p, id);
    p_int(&p, room);
    p_int(&p, seq);
    return defer(c, SQL_ATT_REF, &p);
}

static int pg_event_extra_put(struct store_conn *c, int64_t room, int64_t seq, const char *extra,
                              size_t len)
{
    struct params p = {0};
    if (len > INT32_MAX || memchr(extra, 0, len)) return CD_E_INVALID_FIELD;
    p_int(&p, room);
    p_int(&p, seq);
    p_bytes(&p, extra, len);
    return defer(c, SQL_EXTRA_PUT, &p);
}

static int pg_attachments_unref_message(struct store_conn *c, int64_t room, int64_t seq)
{
    int rc = exec_ii(c, SQL_UNREF_REFS, room, seq);
    return rc == CD_OK ? exec_ii(c, SQL_UNREF_EXTRA, room, seq) : rc;
}

static int pg_attachments_expire(struct store_conn *c, int64_t before_ms, int limit,
                                 int (*cb)(void *ud, const char *id), void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, before_ms);
    p_int(&p, limit);
    if ((rc = run(c, SQL_ATT_EXPIRE, &p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        if (cb(ud, PQgetvalue(r, i, 0))) break;
    PQclear(r);
    return CD_OK;
}

/* ---- search ---- */

static int pg_search_index_put(struct store_conn *c, int64_t room, int64_t seq, const char *text,
                               size_t len)
{
    struct params p = {0};
    if (len > INT32_MAX || memchr(text, 0, len)) return CD_E_INVALID_UTF8;
    p_int(&p, room);
    p_int(&p, seq);
    p_bytes(&p, text, len);
    return defer(c, SQL_SEARCH_PUT, &p);
}

static int pg_search_index_delete(struct store_conn *c, int64_t room, int64_t seq)
{
    return exec_ii(c, SQL_SEARCH_DEL, room, seq);
}

/* The indexer's connection (not the writer's): one statement, its own transaction, beside the
 * writer's commits. The position row is locked with SKIP LOCKED, so indexers on several nodes
 * take turns instead of waiting (a node that finds it taken indexes nothing this time). */
static int pg_search_index_log(struct store_conn *c, int limit, int *n)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    *n = 0;
    p_int(&p, limit);
    if ((rc = run(c, SQL_SEARCH_LOG, &p, &r)) != CD_OK) return rc;
    *n = (int)col_i64(r, 0, 0);
    PQclear(r);
    return CD_OK;
}

static int pg_search(struct store_conn *c, const struct store_search_q *q, store_search_cb cb,
                     void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, q->user);
    p_str(&p, q->match);
    p_int(&p, q->before > 0 ? q->before : INT64_MAX);
    p_int(&p, q->room);
    p_int(&p, q->limit);
    if ((rc = run(c, SQL_SEARCH, &p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_search_hit h = {
            .room_id = col_i64(r, i, 0),
            .seq = col_i64(r, i, 1),
            .sender = col_i64(r, i, 2),
            .ts = col_i64(r, i, 3),
            .pos = col_i64(r, i, 4),
            .snippet = PQgetvalue(r, i, 5),
            .snippet_len = (size_t)PQgetlength(r, i, 5),
        };
        if (cb(ud, &h)) break;
    }
    PQclear(r);
    return CD_OK;
}

/* Storage health (store.c's probe job, in a write transaction): the server answers. */
static int pg_probe(struct store_conn *c)
{
    struct params p = {0};
    int64_t v = 0;
    return query_i64(c, SQL_PROBE, &p, &v);
}

/* ---- people and room features ---- */

#define PROFILE_NCOLS 8

static void profile_row(const PGresult *r, int row, int col, struct store_profile *out)
{
    out->id = col_i64(r, row, col);
    col_text(r, row, col + 1, out->username, sizeof(out->username));
    col_text(r, row, col + 2, out->display_name, sizeof(out->display_name));
    col_text(r, row, col + 3, out->avatar, sizeof(out->avatar));
    col_text(r, row, col + 4, out->status_text, sizeof(out->status_text));
    out->created_at = col_i64(r, row, col + 5);
    out->last_seen = col_i64(r, row, col + 6);
    out->deleted_at = col_i64(r, row, col + 7);
}

/* Rows of (profile[, pair created_at]) or (member, profile), fetched whole first. */
static int each_profile(struct store_conn *c, enum sql_id id, const struct params *p,
                        int with_member, int with_at, store_profile_cb cb, void *ud)
{
    PGresult *r;
    int rc;
    if ((rc = run(c, id, p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_profile pr;
        struct store_member m;
        if (with_member) member_row(r, i, 0, &m);
        profile_row(r, i, with_member ? 5 : 0, &pr);
        if (cb(ud, &pr, with_member ? &m : NULL, with_at ? col_i64(r, i, PROFILE_NCOLS) : 0)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_user_insert_id(struct store_conn *c, int64_t id, const char *username,
                             const char *pwhash, int64_t now_ms)
{
    struct params p = {0};
    struct store_user u;
    int64_t got;
    int rc;
    p_int(&p, id);
    p_str(&p, username);
    p_str(&p, pwhash);
    p_int(&p, now_ms);
    rc = query_i64(c, SQL_USER_INSERT_ID, &p, &got);
    if (rc == CD_OK) { /* the outbox's user.created, as user_insert writes it */
        struct jsonw w;
        char eid[32];
        jsonw_init(&w, 128);
        store__user_created_json(&w, eid, id, username, now_ms);
        rc = ob_add(c, 0, 0, "user.created", eid, now_ms, &w);
        jsonw_free(&w);
    }
    if (rc != CD_E_NOT_FOUND) return rc;
    /* nothing inserted: the username or the id is taken */
    rc = pg_user_by_name(c, username, &u);
    return rc == CD_OK ? CD_E_USERNAME_TAKEN : rc == CD_E_NOT_FOUND ? CD_E_CONFLICT : rc;
}

static int pg_profile_get(struct store_conn *c, int64_t id, struct store_profile *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, id);
    if ((rc = run(c, SQL_PROFILE_GET, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0)
        rc = CD_E_NOT_FOUND;
    else
        profile_row(r, 0, 0, out);
    PQclear(r);
    return rc;
}

static int pg_profile_set(struct store_conn *c, int64_t id, const char *display_name,
                          const char *avatar, const char *status_text)
{
    struct params p = {0};
    p_int(&p, id);
    p_str(&p, display_name);
    p_str(&p, avatar);
    p_str(&p, status_text);
    return exec_one(c, SQL_PROFILE_SET, &p);
}

/* Byte order (COLLATE "C"), as SQLite's: the same pages on both stores. */
static int pg_users_by_prefix(struct store_conn *c, const char *lo, const char *hi,
                              const char *after, int limit, store_profile_cb cb, void *ud)
{
    struct params p = {0};
    p_str(&p, lo);
    p_str(&p, hi);
    p_str(&p, after);
    p_limit(&p, limit);
    return each_profile(c, SQL_USERS_BY_PREFIX, &p, 0, 0, cb, ud);
}

static int pg_user_set_pwhash(struct store_conn *c, int64_t id, const char *pwhash)
{
    struct params p = {0};
    p_int(&p, id);
    p_str(&p, pwhash);
    return exec_one(c, SQL_USER_SET_PWHASH, &p);
}

static int pg_user_erase(struct store_conn *c, int64_t id, int64_t now_ms)
{
    struct params p = {0};
    int rc;
    p_int(&p, id);
    p_int(&p, now_ms);
    if ((rc = exec_one(c, SQL_USER_ERASE, &p)) != CD_OK) return rc;
    p.n = 0;
    p_int(&p, id);
    if ((rc = defer(c, SQL_USER_ERASE_CONTACTS, &p)) != CD_OK) return rc;
    return defer(c, SQL_USER_ERASE_BLOCKS, &p);
}

static int pg_sessions_of_user(struct store_conn *c, int64_t user_id, int64_t now_ms,
                               int (*cb)(void *ud, const struct store_session *s), void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, user_id);
    p_int(&p, now_ms);
    if ((rc = run(c, SQL_SESSIONS_OF_USER, &p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_session ss = {col_i64(r, i, 0), col_i64(r, i, 1), col_i64(r, i, 2)};
        if (cb(ud, &ss)) break;
    }
    PQclear(r);
    return CD_OK;
}

/* The statements of table (enum store_pair): put, del, list, exists in that order. */
static enum sql_id pair_stmt(int table, int op)
{
    return (enum sql_id)((table == STORE_BLOCKS ? SQL_blocks_PUT : SQL_contacts_PUT) + op);
}

static int pg_pair_put(struct store_conn *c, int table, int64_t user, int64_t other, int64_t now_ms)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, user);
    p_int(&p, other);
    p_int(&p, now_ms);
    if ((rc = run(c, pair_stmt(table, 0), &p, &r)) == CD_OK) PQclear(r);
    return rc;
}

static int pg_pair_delete(struct store_conn *c, int table, int64_t user, int64_t other)
{
    struct params p = {0};
    p_int(&p, user);
    p_int(&p, other);
    return exec_one(c, pair_stmt(table, 1), &p);
}

static int pg_pair_list(struct store_conn *c, int table, int64_t user, int64_t after, int limit,
                        store_profile_cb cb, void *ud)
{
    struct params p = {0};
    p_int(&p, user);
    p_int(&p, after);
    p_limit(&p, limit);
    return each_profile(c, pair_stmt(table, 2), &p, 0, 1, cb, ud);
}

static int pg_pair_exists(struct store_conn *c, int table, int64_t user, int64_t other, int *out)
{
    struct params p = {0};
    int64_t v = 0;
    int rc;
    p_int(&p, user);
    p_int(&p, other);
    rc = query_i64(c, pair_stmt(table, 3), &p, &v);
    if (rc == CD_OK) *out = v != 0;
    return rc;
}

static int pg_blocks_all(struct store_conn *c, int (*cb)(void *ud, int64_t user, int64_t other),
                         void *ud)
{
    PGresult *r;
    int rc;
    if ((rc = run(c, SQL_BLOCKS_ALL, NULL, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        if (cb(ud, col_i64(r, i, 0), col_i64(r, i, 1))) break;
    PQclear(r);
    return CD_OK;
}

static int pg_member_access(struct store_conn *c, int64_t room_id, int64_t user_id,
                            struct store_access *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, room_id);
    p_int(&p, user_id);
    if ((rc = run(c, SQL_MEMBER_ACCESS, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        out->state = (int)col_i64(r, 0, 0);
        out->kind = (int)col_i64(r, 0, 1);
        out->member = col_i64(r, 0, 2) != 0;
        out->dm_blocked = col_i64(r, 0, 3) != 0;
    }
    PQclear(r);
    return rc;
}

static int pg_room_set_flags(struct store_conn *c, int64_t room_id, int is_public, int state)
{
    struct params p = {0};
    p_int(&p, room_id);
    p_int(&p, is_public);
    p_int(&p, state);
    return exec_one(c, SQL_ROOM_SET_FLAGS, &p);
}

static int pg_rooms_public(struct store_conn *c, int64_t after, int limit, store_room_cb cb,
                           void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, after);
    p_limit(&p, limit);
    if ((rc = run(c, SQL_ROOMS_PUBLIC, &p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_room room;
        room_row(r, i, 0, &room);
        if (cb(ud, &room, NULL)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_members_page(struct store_conn *c, int64_t room_id, int64_t after, int limit,
                           store_profile_cb cb, void *ud)
{
    struct params p = {0};
    p_int(&p, room_id);
    p_int(&p, after);
    p_limit(&p, limit);
    return each_profile(c, SQL_MEMBERS_PAGE, &p, 1, 0, cb, ud);
}

static int pg_member_hide(struct store_conn *c, int64_t room_id, int64_t user_id, int64_t seq)
{
    struct params p = {0};
    p_int(&p, room_id);
    p_int(&p, user_id);
    p_int(&p, seq);
    return exec_one(c, SQL_MEMBER_HIDE, &p);
}

static int pg_rooms_visible(struct store_conn *c, int64_t user_id, int64_t after, int limit,
                            store_room_cb cb, void *ud)
{
    struct params p = {0};
    p_int(&p, user_id);
    p_int(&p, after);
    p_limit(&p, limit);
    return each_member(c, SQL_ROOMS_VISIBLE, &p, 1, cb, ud);
}

static int pg_invite_insert(struct store_conn *c, const struct store_invite *inv)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_bytes(&p, inv->hash, 32);
    p_int(&p, inv->room_id);
    p_int(&p, inv->created_by);
    p_int(&p, inv->created_at);
    p_int(&p, inv->expires_at);
    p_int(&p, inv->max_uses);
    if ((rc = run(c, SQL_INVITE_INSERT, &p, &r)) == CD_OK) PQclear(r);
    return rc;
}

static int pg_invite_get(struct store_conn *c, const uint8_t hash[32], struct store_invite *out)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_bytes(&p, hash, 32);
    if ((rc = run(c, SQL_INVITE_GET, &p, &r)) != CD_OK) return rc;
    if (PQntuples(r) == 0) {
        rc = CD_E_NOT_FOUND;
    } else {
        memcpy(out->hash, hash, 32);
        out->room_id = col_i64(r, 0, 0);
        out->created_by = col_i64(r, 0, 1);
        out->created_at = col_i64(r, 0, 2);
        out->expires_at = col_i64(r, 0, 3);
        out->max_uses = col_i64(r, 0, 4);
        out->uses = col_i64(r, 0, 5);
    }
    PQclear(r);
    return rc;
}

static int pg_invite_use(struct store_conn *c, const uint8_t hash[32])
{
    struct params p = {0};
    p_bytes(&p, hash, 32);
    return exec_one(c, SQL_INVITE_USE, &p);
}

/* ---- administration (admin/admin.c) ---- */

static int pg_users_list(struct store_conn *c, int64_t after, int limit,
                         int (*cb)(void *ud, const struct store_user *u), void *ud)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, after);
    if (limit < 0)
        p_int(&p, INT64_MAX);
    else
        p_int(&p, limit);
    if ((rc = run(c, SQL_USERS_LIST, &p, &r)) != CD_OK) return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        struct store_user u;
        u.id = col_i64(r, i, 0);
        col_text(r, i, 1, u.username, sizeof(u.username));
        col_text(r, i, 2, u.pwhash, sizeof(u.pwhash));
        u.created_at = col_i64(r, i, 3);
        u.last_seen = col_i64(r, i, 4);
        if (cb(ud, &u)) break;
    }
    PQclear(r);
    return CD_OK;
}

static int pg_sessions_revoke_user(struct store_conn *c, int64_t user_id, int64_t now_ms,
                                   int64_t *n)
{
    struct params p = {0};
    PGresult *r;
    int rc;
    p_int(&p, user_id);
    p_int(&p, now_ms);
    if ((rc = run(c, SQL_SESSIONS_REVOKE_USER, &p, &r)) != CD_OK) return rc;
    if (n) *n = atoll(PQcmdTuples(r));
    PQclear(r);
    return CD_OK;
}

/* ---- delivery retention, dead-letter deletion, gauges, the notifier's windows ---- */

/* A DELETE/UPSERT of two bigints: *n = rows it changed. */
static int exec_count(struct store_conn *c, enum sql_id id, struct params *p, int64_t *n)
{
    PGresult *r;
    int rc = run(c, id, p, &r);
    *n = rc == CD_OK ? atoll(PQcmdTuples(r)) : 0;
    PQclear(r);
    return rc;
}

static int pg_deliveries_prune(struct store_conn *c, int64_t before_ms, int limit, int64_t *n)
{
    struct params p = {0};
    p_int(&p, before_ms);
    p_int(&p, limit);
    return exec_count(c, SQL_DELIVERIES_PRUNE, &p, n);
}

static int pg_delivery_delete(struct store_conn *c, int64_t id)
{
    struct params p = {0};
    p_int(&p, id);
    return exec_one(c, SQL_DELIVERY_DELETE, &p);
}

static int pg_deliveries_count(struct store_conn *c, int state, int64_t *n)
{
    struct params p = {0};
    p_int(&p, state);
    return query_i64(c, SQL_DELIVERIES_COUNT, &p, n);
}

static int pg_notify_take(struct store_conn *c, int64_t user_id, int64_t room_id, int64_t ts,
                          int64_t window_ms, int *taken)
{
    struct params p = {0};
    int64_t n = 0;
    int rc;
    p_int(&p, user_id);
    p_int(&p, room_id);
    p_int(&p, ts);
    p_int(&p, window_ms);
    rc = exec_count(c, SQL_NOTIFY_TAKE, &p, &n);
    *taken = n > 0;
    return rc;
}

static int pg_notify_prune(struct store_conn *c, int64_t before_ms, int limit, int64_t *n)
{
    struct params p = {0};
    p_int(&p, before_ms);
    p_int(&p, limit);
    return exec_count(c, SQL_NOTIFY_PRUNE, &p, n);
}

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .conn_open = pg_conn_open,
    .conn_close = pg_conn_close,
    .checkpoint = NULL, /* PostgreSQL checkpoints itself: no maintenance thread */
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .savepoint_release = pg_savepoint_release,
    .lock_rooms = pg_lock_rooms,
    .outbox_page = pg_outbox_page,
    .consumer_get = pg_consumer_get,
    .consumer_put = pg_consumer_put,
    .apikey_insert = pg_apikey_insert,
    .apikey_by_hash = pg_apikey_by_hash,
    .apikey_list = pg_apikey_list,
    .apikey_revoke = pg_apikey_revoke,
    .note_head = pg_note_head,
    .user_insert = pg_user_insert,
    .user_get = pg_user_get,
    .user_by_name = pg_user_by_name,
    .user_set_last_seen = pg_user_set_last_seen,
    .session_insert = pg_session_insert,
    .session_revoke = pg_session_revoke,
    .sessions_revoked_since = pg_sessions_revoked_since,
    .refresh_insert = pg_refresh_insert,
    .refresh_by_hash = pg_refresh_by_hash,
    .refresh_mark_used = pg_refresh_mark_used,
    .room_insert = pg_room_insert,
    .room_get = pg_room_get,
    .rooms_ahead = pg_rooms_ahead,
    .room_by_dm_key = pg_room_by_dm_key,
    .room_update = pg_room_update,
    .member_get = pg_member_get,
    .member_put = pg_member_put,
    .member_delete = pg_member_delete,
    .members_list = pg_members_list,
    .probe = pg_probe,
    .rooms_of_user = pg_rooms_of_user,
    .user_room_counts = pg_user_room_counts,
    .users_share_room = pg_users_share_room,
    .event_append = pg_event_append,
    .event_by_client_id = pg_event_by_client_id,
    .events_page = pg_events_page,
    .read_mark = pg_read_mark,
    .unread_count = pg_unread_count,
    .webhook_insert = pg_webhook_insert,
    .webhook_delete = pg_webhook_delete,
    .webhook_get = pg_webhook_get,
    .webhooks_list = pg_webhooks_list,
    .delivery_insert = pg_delivery_insert,
    .deliveries_list = pg_deliveries_list,
    .delivery_claim = pg_delivery_claim,
    .delivery_update = pg_delivery_update,
    .delivery_replay = pg_delivery_replay,
    .room_mute_put = pg_room_mute_put,
    .room_mute_get = pg_room_mute_get,
    .session_insert_id = pg_session_insert_id,
    .search_index_own_conn = 1,
    .msg_get = pg_msg_get,
    .msg_thread_put = pg_msg_thread_put,
    .msg_edit = pg_msg_edit,
    .msg_delete = pg_msg_delete,
    .reaction_set = pg_reaction_set,
    .msg_touch = pg_msg_touch,
    .messages_page = pg_messages_page,
    .delivered_mark = pg_delivered_mark,
    .receipts_list = pg_receipts_list,
    .settings_get = pg_settings_get,
    .settings_put = pg_settings_put,
    .user_insert_id = pg_user_insert_id,
    .profile_get = pg_profile_get,
    .profile_set = pg_profile_set,
    .users_by_prefix = pg_users_by_prefix,
    .user_set_pwhash = pg_user_set_pwhash,
    .user_erase = pg_user_erase,
    .sessions_of_user = pg_sessions_of_user,
    .pair_put = pg_pair_put,
    .pair_delete = pg_pair_delete,
    .pair_list = pg_pair_list,
    .pair_exists = pg_pair_exists,
    .blocks_all = pg_blocks_all,
    .member_access = pg_member_access,
    .room_set_flags = pg_room_set_flags,
    .rooms_public = pg_rooms_public,
    .members_page = pg_members_page,
    .member_hide = pg_member_hide,
    .rooms_visible = pg_rooms_visible,
    .invite_insert = pg_invite_insert,
    .invite_get = pg_invite_get,
    .invite_use = pg_invite_use,
    .users_list = pg_users_list,
    .sessions_revoke_user = pg_sessions_revoke_user,
    .attachment_insert = pg_attachment_insert,
    .attachment_get = pg_attachment_get,
    .attachment_readable = pg_attachment_readable,
    .attachment_ref = pg_attachment_ref,
    .event_extra_put = pg_event_extra_put,
    .attachments_unref_message = pg_attachments_unref_message,
    .attachments_expire = pg_attachments_expire,
    .search_index_put = pg_search_index_put,
    .search_index_delete = pg_search_index_delete,
    .search_index_log = pg_search_index_log,
    .search = pg_search,
    .deliveries_prune = pg_deliveries_prune,
    .delivery_delete = pg_delivery_delete,
    .deliveries_count = pg_deliveries_count,
    .notify_take = pg_notify_take,
    .notify_prune = pg_notify_prune,
    .outbox_head = pg_outbox_head,
};
