// SQLite schema migrations, applied in order; lens_embed_schema_migrations records the
// version. Only lens-embed's own tables: the source tables are Lens's (or the test's).
#pragma once

namespace lens::store::sqlite_schema {

// Our own migrations table. lens-embed v1 used `schema_migrations`, a name an application's
// migration tool may own too: it is no longer read or written (a v1 file keeps it).
inline constexpr const char* k_migrations_table = R"sql(
CREATE TABLE IF NOT EXISTS lens_embed_schema_migrations (
  version    INTEGER PRIMARY KEY,
  applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  note       TEXT
))sql";

// Version 1: the output tables of CONTRACT §3. (lens-embed v1 also created the source
// tables and their two indexes when missing; a v1 file keeps them, a new one never gets
// them from here.)
inline constexpr const char* k_v1 = R"sql(
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

// Version 2 (issue 11): when a transient failure is offered again, why a run ended, and
// the index that lists each (provider, model)'s dimensions with one seek per value. The
// transient failures a v1 run left (a parked backlog) become due at once: migrations.cpp
// sets their next_attempt_at after this.
inline constexpr const char* k_v2 = R"sql(
ALTER TABLE embedding_failures ADD COLUMN next_attempt_at TEXT;
ALTER TABLE embedding_runs ADD COLUMN error TEXT;
CREATE INDEX IF NOT EXISTS message_embeddings_dimensions ON message_embeddings (provider, model, dimensions);
)sql";

// Version 3 (issue 16): the run's late writes refused by the fence (core::RunStats::fenced),
// stored with its other counters so that `status` shows them after the run has ended.
inline constexpr const char* k_v3 = R"sql(
ALTER TABLE embedding_runs ADD COLUMN fenced INTEGER NOT NULL DEFAULT 0;
)sql";

// Version 4 (issue 12): per (provider, model), the fingerprint of what defined the input
// texts (core::input_definition_fingerprint) when a run last read every input to the end.
// A run that finds another one re-reads and hashes every input once, as `run --rehash`.
inline constexpr const char* k_v4 = R"sql(
CREATE TABLE IF NOT EXISTS lens_embed_input_definitions (
  provider    TEXT NOT NULL,
  model       TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  PRIMARY KEY (provider, model)
);
)sql";

// Version 5 (issue 13): the Batch API ledger. A pattern: @key is the source key's type.
// A batch and its items are recorded before its file is uploaded; while `done` = 0 the
// items are held (the pending query leaves them out for every run of the pair).
// `batch_key` is the local key, also in the file name and the batch's metadata.
inline constexpr const char* k_v5 = R"sql(
CREATE TABLE IF NOT EXISTS embedding_batches (
  batch_key       TEXT    PRIMARY KEY,
  provider        TEXT    NOT NULL,
  model           TEXT    NOT NULL,
  dimensions      INTEGER,
  remote_id       TEXT,
  input_file_id   TEXT,
  output_file_id  TEXT,
  error_file_id   TEXT,
  status          TEXT    NOT NULL,  -- recorded, uploaded, then the provider's status
  done            INTEGER NOT NULL DEFAULT 0,
  items           INTEGER NOT NULL DEFAULT 0,
  requests        INTEGER NOT NULL DEFAULT 0,
  tokens          INTEGER NOT NULL DEFAULT 0,
  completed       INTEGER NOT NULL DEFAULT 0,
  failed          INTEGER NOT NULL DEFAULT 0,
  error           TEXT,
  created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE INDEX IF NOT EXISTS embedding_batches_open ON embedding_batches (provider, model, done);
CREATE TABLE IF NOT EXISTS embedding_batch_items (
  batch_key       TEXT    NOT NULL REFERENCES embedding_batches(batch_key) ON DELETE CASCADE,
  user_message_id @key    NOT NULL,
  content_sha256  BLOB    NOT NULL,
  custom_id       TEXT    NOT NULL,
  input_index     INTEGER NOT NULL,
  tokens          INTEGER NOT NULL,
  PRIMARY KEY (batch_key, custom_id, input_index)
);
CREATE INDEX IF NOT EXISTS embedding_batch_items_message ON embedding_batch_items (user_message_id, batch_key);
)sql";

}  // namespace lens::store::sqlite_schema
