// Source schemas for the tests of issue 12, on SQLite and PostgreSQL: the default schema and
// the three test schemas, their lens-embed.toml [source] mapping, a deterministic corpus for
// each and the exchanges a correct run embeds from it. SQL text, so that any connection can
// run it; load() runs it through support/sql.h's Db.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/source_mapping.h"
#include "core/types.h"
#include "support/sql.h"

namespace lens::test::schemas {

enum class Schema {
  default_schema,      // CONTRACT §2: conversations + messages, uuid keys
  a_qualified_bigint,  // a schema-qualified table, bigint identity keys, other column names,
                       // roles student/tutor, soft-delete flag as filter, no updated_at
  b_reply_column,      // replies linked by reply_to (reply = "column:reply_to"), several per question
  c_view_text_keys,    // a view over a questions and an answers table, text keys, "Body" column,
                       // a template with {user.topic} and {assistant.answered_by}
};
inline constexpr Schema k_all_schemas[] = {Schema::default_schema, Schema::a_qualified_bigint,
                                           Schema::b_reply_column, Schema::c_view_text_keys};
enum class Dialect { sqlite, postgres };

// "default", "a_qualified_bigint", ...: the stem of its SQL files.
[[nodiscard]] std::string_view name(Schema schema);
[[nodiscard]] std::string_view name(Dialect dialect);

struct Fixture {
  Schema schema = Schema::default_schema;
  Dialect dialect = Dialect::sqlite;
  // (a) only: the schema that holds chat_messages. PostgreSQL: a schema the test owns, off the
  // connection's search_path (a second PgScratch; create_sql creates it if missing); SQLite:
  // "main".
  std::string source_schema = "main";
};

// The statements that create the fixture's source tables and views: the file
// tests/support/schemas/NAME.DIALECT.sql with ${source_schema} replaced (quoted). Empty when
// the file cannot be read (the test then fails on it).
[[nodiscard]] std::string create_sql(const Fixture& fixture);

// The fixture's [source] keys, as a config file would give them (source "fixture").
[[nodiscard]] std::vector<core::MappingEntry> mapping_entries(const Fixture& fixture);
// The same keys as lens-embed.toml text: "[source]\nmessages = \"...\"\n...".
[[nodiscard]] std::string toml_snippet(const Fixture& fixture);
// make_source_mapping(mapping_entries(fixture)); the fixtures' mappings are valid.
[[nodiscard]] core::SourceMapping mapping(const Fixture& fixture);

// One source row, in the fixture's own terms: each schema uses the fields it has.
struct Message {
  std::string id;  // uuid, decimal bigint or text key, as the database prints it
  std::string conversation_id;
  std::string role;  // the schema's role value ("user", "student", "question", ...)
  std::optional<std::string> content;
  std::string created_at;                  // "2024-03-01T08:00:05.000Z": sorts as text like the time
  std::optional<std::string> updated_at;   // schemas with updated_at only
  bool deleted = false;                    // (a): is_deleted, the filter's column
  std::optional<std::string> reply_to;     // (b): the user message this one answers
  std::optional<std::string> topic;        // (c), questions: {user.topic}
  std::optional<std::string> answered_by;  // (c), answers: {assistant.answered_by}
};

struct CorpusOptions {
  int conversations = 40;
  std::uint64_t seed = 1;
};

struct Corpus {
  std::vector<Message> messages;  // in the order insert_sql inserts them
  // Every exchange a correct run embeds: eligible user messages (passing the filter, content
  // neither NULL nor ASCII-blank) by (created_at, id), each with its reply under the
  // mapping's rule and the template columns filled; feed to core::build_input_text.
  std::vector<core::Exchange> expected;
};

// A corpus for the fixture: system messages, unanswered and NULL/blank questions, equal
// timestamps (ordered by id), edited messages (updated_at), quotes and non-ASCII text, and per
// schema: deleted rows (a), several and late replies (b), answers without questions (c).
[[nodiscard]] Corpus make_corpus(const Fixture& fixture, const CorpusOptions& options = {});

// The statements that insert `messages` (after create_sql), in one transaction.
[[nodiscard]] std::string insert_sql(const Fixture& fixture, const std::vector<Message>& messages);

// create_sql and insert_sql(messages) run on `db` (whose dialect must be fixture.dialect):
// "" or the first error.
[[nodiscard]] std::string load(Db& db, const Fixture& fixture, const std::vector<Message>& messages);

// The exchanges a correct run embeds from `messages` (Corpus::expected); recompute after a
// test edits, deletes or adds messages.
[[nodiscard]] std::vector<core::Exchange> expected_exchanges(const Fixture& fixture,
                                                             const std::vector<Message>& messages);

// A query over any mapped source, independent of lens-embed's stores: every user message that
// passes the filter, by (created_at, id), with its reply under the mapping's rule. Columns:
// user id, user content, reply id (NULL: none), reply content, then the values of
// mapping.user_columns() and mapping.assistant_columns() in order. Blank contents are not
// excluded (the caller does, as SQL's trim differs between dialects). Role values are
// inlined as literals: for tests only.
[[nodiscard]] std::string exchanges_query(const core::SourceMapping& mapping);

}  // namespace lens::test::schemas
