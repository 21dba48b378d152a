-- Test schema (a) in SQLite: qualified by `main` (SQLite's schemas are attached databases),
-- 64-bit integer keys above 2^31 (the rowid alias), its own column names, roles
-- student/tutor/system, a soft-delete flag (0/1) used as the filter, no updated_at.
CREATE TABLE ${source_schema}.chat_messages (
  message_no  INTEGER PRIMARY KEY,
  thread_no   INTEGER NOT NULL,
  author_role TEXT    NOT NULL CHECK (author_role IN ('student', 'tutor', 'system')),
  body        TEXT,
  posted_at   TEXT    NOT NULL,
  is_deleted  INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1))
);
