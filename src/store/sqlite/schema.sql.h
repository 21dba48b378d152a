// SQLite schema migrations, applied in order; schema_migrations records the version.
#pragma once

namespace lens::store::sqlite_schema {

// Version 1: the Lens source tables (created only when missing, for the embedded
// default), the output tables of CONTRACT §3, and the indexes the pending query needs.
inline constexpr const char* k_v1 = R"sql(
CREATE TABLE IF NOT EXISTS conversations (
  id         TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL,
  title      TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE IF NOT EXISTS messages (
  id              TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  role            TEXT NOT NULL CHECK (role IN ('system','user','assistant','tool')),
  content         TEXT,
  created_at      TEXT NOT NULL,
  updated_at      TEXT
);
-- Keyset cursor over user messages: (created_at, id) in index order, never OFFSET.
CREATE INDEX IF NOT EXISTS messages_user_keyset ON messages (created_at, id) WHERE role = 'user';
-- The answer of a user message: the next user/assistant message of its conversation.
CREATE INDEX IF NOT EXISTS messages_conversation_order ON messages (conversation_id, created_at, id);

CREATE TABLE IF NOT EXISTS message_embeddings (
  provider             TEXT    NOT NULL,
  model                TEXT    NOT NULL,
  user_message_id      TEXT    NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  assistant_message_id TEXT,
  content_sha256       BLOB    NOT NULL,
  token_count          INTEGER NOT NULL,
  truncated            INTEGER NOT NULL DEFAULT 0,
  dimensions           INTEGER NOT NULL,
  embedding            BLOB    NOT NULL,  -- little-endian float32 x dimensions
  source_version       TEXT,              -- newest updated_at/created_at of the exchange as read
  created_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at           TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY (provider, model, user_message_id)
);
-- Covering index for the pending query: change detection reads only this, never the
-- table rows that carry the vectors (a 3072-d row spans several pages).
CREATE INDEX IF NOT EXISTS message_embeddings_state
  ON message_embeddings (provider, model, user_message_id, assistant_message_id, source_version, content_sha256);
CREATE TABLE IF NOT EXISTS embedding_failures (
  provider        TEXT    NOT NULL,
  model           TEXT    NOT NULL,
  user_message_id TEXT    NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  reason          TEXT    NOT NULL,
  detail          TEXT,
  attempts        INTEGER NOT NULL DEFAULT 1,
  source_version  TEXT,
  first_failed_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  last_failed_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY (provider, model, user_message_id)
);
CREATE TABLE IF NOT EXISTS embedding_runs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  provider     TEXT    NOT NULL,
  model        TEXT    NOT NULL,
  started_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  finished_at  TEXT,
  heartbeat_at TEXT,
  status       TEXT    NOT NULL,
  embedded     INTEGER NOT NULL DEFAULT 0,
  unchanged    INTEGER NOT NULL DEFAULT 0,
  skipped      INTEGER NOT NULL DEFAULT 0,
  failed       INTEGER NOT NULL DEFAULT 0,
  truncated    INTEGER NOT NULL DEFAULT 0,
  tokens       INTEGER NOT NULL DEFAULT 0,
  requests     INTEGER NOT NULL DEFAULT 0,
  retries      INTEGER NOT NULL DEFAULT 0,
  rate_limited INTEGER NOT NULL DEFAULT 0,
  arguments    TEXT,
  worker       TEXT
);
)sql";

}  // namespace lens::store::sqlite_schema
