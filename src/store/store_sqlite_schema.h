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

    /* 6: the outbox (issue 13): one row per committed log entry, user or room creation, written
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

    /* 7: API keys of the server API: the SHA-256 of each key, never the key. */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  hash BLOB NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER);",
    /* 8: webhooks (endpoints and durable deliveries) and per-user room settings (mute).
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
};

static const int store_sqlite_nmigrations =
    (int)(sizeof(store_sqlite_migrations) / sizeof(store_sqlite_migrations[0]));

#endif
