-- Test schema (b) in SQLite: replies linked by reply_to (reply = "column:reply_to"), several
-- replies to one user message; uuids as text, times as ISO-8601 text.
CREATE TABLE posts (
  id              TEXT PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content         TEXT,
  created_at      TEXT NOT NULL,
  updated_at      TEXT,
  reply_to        TEXT REFERENCES posts(id) ON DELETE SET NULL
);
