-- Test schema (c): questions and answers kept in two tables with text keys, joined in a view
-- that the mapping reads; the view's content column is "Body" (mixed case: only a quoted
-- name finds it), the roles are the literals 'question' and 'answer'.
CREATE TABLE questions (
  question_key text PRIMARY KEY,
  thread_key   text NOT NULL,
  asked_at     timestamptz NOT NULL,
  edited_at    timestamptz,
  question     text,
  topic        text
);
CREATE TABLE answers (
  answer_key  text PRIMARY KEY,
  thread_key  text NOT NULL,
  answered_at timestamptz NOT NULL,
  edited_at   timestamptz,
  answer      text,
  answered_by text
);
CREATE VIEW thread_messages AS
  SELECT question_key AS message_key, thread_key, 'question'::text AS kind, question AS "Body",
         asked_at AS sent_at, edited_at, topic, NULL::text AS answered_by
  FROM questions
  UNION ALL
  SELECT answer_key, thread_key, 'answer'::text, answer, answered_at, edited_at, NULL::text, answered_by
  FROM answers;
