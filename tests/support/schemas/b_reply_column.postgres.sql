-- Test schema (b): replies linked to the user message they answer by a parent column
-- (reply = "column:reply_to"); a user message may have several replies, and a reply may come
-- after later user messages of its conversation. Deleting a user message orphans its replies.
CREATE TABLE posts (
  id              uuid PRIMARY KEY,
  conversation_id uuid NOT NULL,
  role            text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content         text,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz,
  reply_to        uuid REFERENCES posts(id) ON DELETE SET NULL
);
