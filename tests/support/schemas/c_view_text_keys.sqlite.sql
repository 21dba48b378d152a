-- Test schema (c) in SQLite: questions and answers in two tables with text keys, joined in a
-- view; the view's content column is "Body", the roles are 'question' and 'answer'.
CREATE TABLE questions (
  question_key TEXT PRIMARY KEY,
  thread_key   TEXT NOT NULL,
  asked_at     TEXT NOT NULL,
  edited_at    TEXT,
  question     TEXT,
  topic        TEXT
);
CREATE TABLE answers (
  answer_key  TEXT PRIMARY KEY,
  thread_key  TEXT NOT NULL,
  answered_at TEXT NOT NULL,
  edited_at   TEXT,
  answer      TEXT,
  answered_by TEXT
);
CREATE VIEW thread_messages AS
  SELECT question_key AS message_key, thread_key, 'question' AS kind, question AS "Body",
         asked_at AS sent_at, edited_at, topic, NULL AS answered_by
  FROM questions
  UNION ALL
  SELECT answer_key, thread_key, 'answer', answer, answered_at, edited_at, NULL, answered_by
  FROM answers;
