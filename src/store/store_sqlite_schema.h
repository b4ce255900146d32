/* store_sqlite_schema.h - numbered migrations of the SQLite schema (internal to src/store).
 * Migration N brings PRAGMA user_version from N-1 to N. Never edit a released migration: append. */
#ifndef CD_STORE_SQLITE_SCHEMA_H
#define CD_STORE_SQLITE_SCHEMA_H

static const char *const store_sqlite_migrations[] = {
    /* 1: accounts, sessions (refresh-token families), refresh tokens */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  username TEXT NOT NULL UNIQUE,"
    "  pwhash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE sessions ("
    "  id INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);"
    "CREATE TABLE refresh_tokens ("
    "  id INTEGER PRIMARY KEY,"
    "  session_id INTEGER NOT NULL REFERENCES sessions(id),"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  hash BLOB NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  used_at INTEGER);"
    "CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);",

    /* 2: rooms, membership, the per-room log.
     * rooms.last_seq was the room's log counter (dropped by migration 3). dm_key is NULL for
     * groups: UNIQUE lets NULLs repeat. members and events are WITHOUT ROWID so the primary key is
     * the table's own b-tree: a room's log is stored clustered by (room_id, seq) and a history
     * page, a catch-up or an unread count is one contiguous range scan with no second lookup.
     * members_user serves "rooms of a user" and, with the primary key, "do a and b share a room"
     * without touching the table. events_client_id is partial: only messages carry a client_msg_id,
     * other entries cost no index entry. */
    "CREATE TABLE rooms ("
    "  id INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  topic TEXT NOT NULL DEFAULT '',"
    "  created_by INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  last_seq INTEGER NOT NULL DEFAULT 0,"
    "  member_count INTEGER NOT NULL DEFAULT 0,"
    "  dm_key TEXT UNIQUE);"
    "CREATE TABLE members ("
    "  room_id INTEGER NOT NULL,"
    "  user_id INTEGER NOT NULL,"
    "  role INTEGER NOT NULL,"
    "  joined_seq INTEGER NOT NULL,"
    "  read_seq INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (room_id, user_id)) WITHOUT ROWID;"
    "CREATE INDEX members_user ON members(user_id, room_id);"
    "CREATE TABLE events ("
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  sender INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  client_msg_id TEXT,"
    "  body TEXT NOT NULL,"
    "  PRIMARY KEY (room_id, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX events_client_id ON events(sender, client_msg_id)"
    "  WHERE client_msg_id IS NOT NULL;",

    /* 3: a room's last seq is read from its log (the last entry of its primary-key range, one
     * seek) instead of a counter in rooms: a group commit no longer updates one rooms row per
     * room it touched. */
    "ALTER TABLE rooms DROP COLUMN last_seq;",

    /* 4: the log is stored in append order (a rowid table) with (room_id, seq) as a unique index,
     * no longer clustered by room (migration 2). A group commit appends its messages to the last
     * pages of one b-tree instead of to the middle of each room's range, where every page that
     * fills splits among its siblings: with 100 active rooms, 2.7 instead of 3.7 WAL pages per
     * message and a quarter less writer CPU per message (bench/notes.md). A history page is an
     * index range scan plus one rowid lookup per row. Existing rows are copied room by room. */
    "CREATE TABLE events_log ("
    "  id INTEGER PRIMARY KEY,"
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  sender INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  client_msg_id TEXT,"
    "  body TEXT NOT NULL);"
    "INSERT INTO events_log(room_id, seq, kind, sender, ts, client_msg_id, body)"
    "  SELECT room_id, seq, kind, sender, ts, client_msg_id, body FROM events"
    "  ORDER BY room_id, seq;"
    "DROP TABLE events;"
    "ALTER TABLE events_log RENAME TO events;"
    "CREATE UNIQUE INDEX events_room_seq ON events(room_id, seq);"
    "CREATE UNIQUE INDEX events_client_id ON events(sender, client_msg_id)"
    "  WHERE client_msg_id IS NOT NULL;",

    /* 5: sessions by revocation time, for the start-up read of the sessions ended within the
     * access-token lifetime (their tokens stay refused across a restart). Partial: sessions
     * never revoked cost no entry. */
    "CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;",

    /* 6: message operations and receipts. The idempotency key becomes (room, sender,
     * client_msg_id): the same id in two rooms is two messages. msg_state holds the derived state
     * of a message that was edited, deleted, reacted to, replied in a thread or is a thread root
     * (plain messages have no row: the send path writes nothing more); msg_edits remembers the
     * edit entries of a message so a delete erases their text too. delivered: a watermark per
     * (room, user, login session). */
    "DROP INDEX events_client_id;"
    "CREATE UNIQUE INDEX events_client_id ON events(room_id, sender, client_msg_id)"
    "  WHERE client_msg_id IS NOT NULL;"
    "CREATE TABLE msg_state ("
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  reply_to INTEGER,"
    "  thread INTEGER,"
    "  edited_at INTEGER,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  reply_count INTEGER NOT NULL DEFAULT 0,"
    "  last_reply_seq INTEGER,"
    "  state_seq INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (room_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX msg_state_thread ON msg_state(room_id, thread, seq) WHERE thread IS NOT NULL;"
    "CREATE TABLE msg_edits ("
    "  room_id INTEGER NOT NULL,"
    "  target INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY (room_id, target, seq)) WITHOUT ROWID;"
    "CREATE TABLE reactions ("
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  emoji TEXT NOT NULL,"
    "  user_id INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  PRIMARY KEY (room_id, seq, emoji, user_id)) WITHOUT ROWID;"
    "CREATE TABLE delivered ("
    "  room_id INTEGER NOT NULL,"
    "  user_id INTEGER NOT NULL,"
    "  session_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY (room_id, user_id, session_id)) WITHOUT ROWID;"
    "CREATE TABLE user_settings ("
    "  user_id INTEGER PRIMARY KEY,"
    "  share_read_receipts INTEGER NOT NULL DEFAULT 1);",
    /* 7: people and room features (issue 14 part 5): profiles and account deletion on users,
     * public/archived/deleted rooms, direct rooms hidden by their member until a new message
     * (members.hidden_seq), contacts, blocks, invite links (only the token's SHA-256), and
     * sessions by user (the sessions list, ending all sessions but one). */
    "ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN avatar TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN status_text TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rooms ADD COLUMN is_public INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rooms ADD COLUMN state INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE members ADD COLUMN hidden_seq INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX rooms_public ON rooms(id) WHERE is_public = 1 AND state = 0;"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE TABLE contacts ("
    "  user_id INTEGER NOT NULL,"
    "  other_id INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, other_id)) WITHOUT ROWID;"
    "CREATE TABLE blocks ("
    "  user_id INTEGER NOT NULL,"
    "  other_id INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, other_id)) WITHOUT ROWID;"
    "CREATE INDEX blocks_other ON blocks(other_id, user_id);"
    "CREATE TABLE invites ("
    "  hash BLOB PRIMARY KEY,"
    "  room_id INTEGER NOT NULL,"
    "  created_by INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  max_uses INTEGER NOT NULL,"
    "  uses INTEGER NOT NULL DEFAULT 0);",
    /* 8: attachments and search. attachments: one row per upload (the bytes are in the blob
     * store under the id); attachment_refs: which messages reference which uploads (download
     * authorization, expiry of unreferenced uploads); event_extras: extra JSON members of a
     * message entry (its attachments' metadata), read beside the log by every event query.
     * msg_search: an FTS5 index of message text whose rowid is the entry's rowid in events
     * (append order), so "newest first" is FTS5's own rowid order and a page stops at its
     * limit; room_id and seq key it for edits and deletes (search_index_put/delete). New
     * messages are indexed by the asynchronous indexer (search_index_log) behind the position
     * in search_pos: one FTS5 segment per indexer run instead of one per group commit. The
     * existing messages are indexed once here. */
    "CREATE TABLE attachments ("
    "  id TEXT PRIMARY KEY,"
    "  owner INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  content_type TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX attachments_created ON attachments(created_at);"
    "CREATE TABLE attachment_refs ("
    "  att_id TEXT NOT NULL,"
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY (att_id, room_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX attachment_refs_msg ON attachment_refs(room_id, seq);"
    "CREATE TABLE event_extras ("
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  extra TEXT NOT NULL,"
    "  PRIMARY KEY (room_id, seq)) WITHOUT ROWID;"
    "CREATE VIRTUAL TABLE msg_search USING fts5(body, room_id UNINDEXED, seq UNINDEXED,"
    "  tokenize = 'unicode61 remove_diacritics 2');"
    "INSERT INTO msg_search(rowid, body, room_id, seq)"
    "  SELECT id, body, room_id, seq FROM events WHERE kind = 0;"
    /* the asynchronous indexer's position: the last events rowid it has looked at */
    "CREATE TABLE search_pos (id INTEGER NOT NULL);"
    "INSERT INTO search_pos SELECT coalesce(max(id), 0) FROM events;",

    /* 9: the outbox (issue 13): one row per committed log entry, user or room creation, written
     * in the same transaction; pos (the rowid) is the global commit order (one writer). A log
     * entry's row is only (room_id, seq): readers join the log for the rest, so an append adds
     * ~10 bytes to a page the batch's other appends share. It is written by a trigger of the
     * log's own INSERT (one statement per message, not two, which cost more; bench/notes.md).
     * An ignored INSERT (a resent client_msg_id) fires nothing. Other events carry their type, id,
     * time and JSON (seq 0). Rows are never deleted: pos never goes back (no AUTOINCREMENT needed).
     * The existing log is indexed in its append order. outbox_consumers: the saved positions of
     * named consumers. */
    "CREATE TABLE outbox ("
    "  pos INTEGER PRIMARY KEY,"
    "  room_id INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  type TEXT,"
    "  eid TEXT,"
    "  ts INTEGER,"
    "  body TEXT);"
    "INSERT INTO outbox(room_id, seq) SELECT room_id, seq FROM events ORDER BY id;"
    "CREATE TRIGGER events_outbox AFTER INSERT ON events BEGIN"
    "  INSERT INTO outbox(room_id, seq) VALUES (new.room_id, new.seq);"
    "END;"
    "CREATE TABLE outbox_consumers ("
    "  name TEXT PRIMARY KEY,"
    "  pos INTEGER NOT NULL) WITHOUT ROWID;",

    /* 10: API keys of the server API: the SHA-256 of each key, never the key. */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  hash BLOB NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);",
    /* 11: webhooks (endpoints and durable deliveries) and per-user room settings (mute).
     * deliveries is unique by (endpoint_id, event_id): an event enqueued again by a consumer
     * that resumes after a crash is one delivery. deliveries_due serves the engine's scan of
     * pending rows by due time; dead rows are listed by id (the primary key). */
    "CREATE TABLE webhooks ("
    "  id INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  url TEXT NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  types TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE deliveries ("
    "  id INTEGER PRIMARY KEY,"
    "  endpoint_id INTEGER NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  last_error TEXT,"
    "  UNIQUE (endpoint_id, event_id));"
    "CREATE INDEX deliveries_due ON deliveries(state, next_at);"
    "CREATE TABLE room_settings ("
    "  room_id INTEGER NOT NULL,"
    "  user_id INTEGER NOT NULL,"
    "  muted INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (room_id, user_id)) WITHOUT ROWID;",
    /* 12: delivered webhook rows are pruned after --webhook-retention (by the
     * deliveries_due index, state 1 by next_at); the notifier's coalescing window per
     * (user, room), so it holds across restarts and notifier processes (pruned by ts). */
    "CREATE TABLE notify_last ("
    "  user_id INTEGER NOT NULL,"
    "  room_id INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, room_id));"
    "CREATE INDEX notify_last_ts ON notify_last(ts);",
    /* 13: users by avatar, for the download authorization and the expiry of uploads
     * that are some user's current avatar (attachment_readable, attachments_expire). */
    "CREATE INDEX users_avatar ON users(avatar) WHERE avatar <> '';",
};

static const int store_sqlite_nmigrations =
    (int)(sizeof(store_sqlite_migrations) / sizeof(store_sqlite_migrations[0]));

#endif
