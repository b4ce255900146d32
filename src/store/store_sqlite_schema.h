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
};

static const int store_sqlite_nmigrations =
    (int)(sizeof(store_sqlite_migrations) / sizeof(store_sqlite_migrations[0]));

#endif
