-- The default source schema (CONTRACT §2): conversations and messages with uuid keys.
-- No index beyond the keys: what lens-embed needs on top is `doctor`'s to report.
CREATE TABLE conversations (
  id         uuid PRIMARY KEY,
  user_id    uuid NOT NULL,
  title      text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE messages (
  id              uuid PRIMARY KEY,
  conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  role            text NOT NULL CHECK (role IN ('system','user','assistant','tool')),
  content         text,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz
);
