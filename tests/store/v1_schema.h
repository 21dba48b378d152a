// lens-embed's schema version 1 as it was created (git show fd14bc1:src/store/*/schema.sql.h
// and the migration code of that commit), so the tests can build a v1 database and check
// that the current binary upgrades it in place.
#pragma once

namespace lens::store::test {

// SQLite v1: the source tables (created when missing), the output tables, and the version in
// `schema_migrations`, a name an application may also use.
inline constexpr const char* k_sqlite_v1 = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));
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
INSERT INTO schema_migrations (version) VALUES (1);
)sql";

// PostgreSQL v1 (real[] embeddings): our own migrations table already, the source tables
// when missing, the output tables and claims.
inline constexpr const char* k_postgres_v1 = R"sql(
CREATE TABLE IF NOT EXISTS lens_embed_schema_migrations (
  version    integer PRIMARY KEY,
  applied_at timestamptz NOT NULL DEFAULT now(),
  note       text
);
CREATE TABLE IF NOT EXISTS conversations (
  id         uuid PRIMARY KEY,
  user_id    uuid NOT NULL,
  title      text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS messages (
  id              uuid PRIMARY KEY,
  conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  role            text NOT NULL CHECK (role IN ('system','user','assistant','tool')),
  content         text,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz
);
-- Keyset cursor over user messages: (created_at, id) in index order, never OFFSET.
CREATE INDEX IF NOT EXISTS messages_user_keyset ON messages (created_at, id) WHERE role = 'user';
-- The answer of a user message: the next user/assistant message of its conversation.
CREATE INDEX IF NOT EXISTS messages_conversation_order ON messages (conversation_id, created_at, id);

CREATE TABLE IF NOT EXISTS message_embeddings (
  provider             text        NOT NULL,
  model                text        NOT NULL,
  user_message_id      uuid        NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  assistant_message_id uuid,
  content_sha256       bytea       NOT NULL,
  token_count          integer     NOT NULL,
  truncated            boolean     NOT NULL DEFAULT false,
  dimensions           integer     NOT NULL,
  embedding            real[] NOT NULL,
  source_version       timestamptz,  -- newest coalesce(updated_at, created_at) of the exchange as read
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, model, user_message_id)
);
CREATE TABLE IF NOT EXISTS embedding_failures (
  provider        text        NOT NULL,
  model           text        NOT NULL,
  user_message_id uuid        NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  reason          text        NOT NULL,
  detail          text,
  attempts        integer     NOT NULL DEFAULT 1,
  source_version  timestamptz,
  first_failed_at timestamptz NOT NULL DEFAULT now(),
  last_failed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, model, user_message_id)
);
CREATE TABLE IF NOT EXISTS embedding_runs (
  id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  provider     text        NOT NULL,
  model        text        NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  heartbeat_at timestamptz,
  status       text        NOT NULL,
  embedded     bigint      NOT NULL DEFAULT 0,
  unchanged    bigint      NOT NULL DEFAULT 0,
  skipped      bigint      NOT NULL DEFAULT 0,
  failed       bigint      NOT NULL DEFAULT 0,
  truncated    bigint      NOT NULL DEFAULT 0,
  tokens       bigint      NOT NULL DEFAULT 0,
  requests     bigint      NOT NULL DEFAULT 0,
  retries      bigint      NOT NULL DEFAULT 0,
  rate_limited bigint      NOT NULL DEFAULT 0,
  arguments    text,
  worker       text
);
-- Work handed to one `run` process: no other process embeds it while the lease lives.
-- No foreign key: a claim on a deleted message simply expires or is released.
CREATE TABLE IF NOT EXISTS embedding_claims (
  provider        text        NOT NULL,
  model           text        NOT NULL,
  user_message_id uuid        NOT NULL,
  worker          text        NOT NULL,
  claimed_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (provider, model, user_message_id)
);
CREATE INDEX IF NOT EXISTS embedding_claims_worker ON embedding_claims (worker);
CREATE INDEX IF NOT EXISTS embedding_claims_expiry ON embedding_claims (provider, model, expires_at);
INSERT INTO lens_embed_schema_migrations (version, note) VALUES (1, 'embedding real[]');
)sql";

}  // namespace lens::store::test
