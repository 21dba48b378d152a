-- Test schema (a): a table in a schema of its own (off the search_path, so only the
-- qualified name finds it), bigint identity keys above 2^31, its own column names, roles
-- student/tutor/system, a soft-delete flag used as the filter, no updated_at, no
-- conversations table. ${source_schema} is replaced by the test's schema name.
CREATE SCHEMA IF NOT EXISTS ${source_schema};
CREATE TABLE ${source_schema}.chat_messages (
  message_no  bigint GENERATED ALWAYS AS IDENTITY (START WITH 3000000001) PRIMARY KEY,
  thread_no   bigint  NOT NULL,
  author_role text    NOT NULL CHECK (author_role IN ('student', 'tutor', 'system')),
  body        text,
  posted_at   timestamptz NOT NULL,
  is_deleted  boolean NOT NULL DEFAULT false
);
