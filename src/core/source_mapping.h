// The source mapping ([source] and [output] of lens-embed.toml, CONTRACT §7): which table or
// view holds the messages, which columns mean what, which rows count, how a user message finds
// its reply, and the input templates. Validated once, here, each value with the place it came
// from; the stores turn it into their SQL, input_text.h renders input texts with it.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/input_template.h"
#include "core/sql_name.h"
#include "util/result.h"

namespace lens::core {

// A value and where it came from: "lens-embed.toml:12", or "default".
template <typename T>
struct Mapped {
  T value{};
  std::string source = "default";
};

// How a user message finds the assistant message that answers it.
enum class ReplyKind {
  next,    // CONTRACT §1: the first user-or-assistant message after it in its conversation by
           // (created_at, id), when that message is an assistant's
  column,  // the assistant message whose `column` equals the user message's id; the first by
           // (created_at, id) when several do (no conversation condition)
  none,    // no reply: every exchange is the user message alone
};
struct ReplyRule {
  ReplyKind kind = ReplyKind::next;
  std::string column;  // ReplyKind::column only: a column of the assistant's row
  friend bool operator==(const ReplyRule&, const ReplyRule&) = default;
};

// The type of the source's key, which the output's user_message_id and assistant_message_id
// take. auto_detect: the store reads it from the database's catalog (PostgreSQL:
// format_type of the id column; SQLite: the column's declared type, text when it has none).
// A configured type is for what a catalog cannot say, e.g. a SQLite view's untyped column.
// integer/int4 keys count as bigint: the output is always wide enough.
enum class KeyType { auto_detect, uuid, bigint, text };
[[nodiscard]] std::string_view to_string(KeyType type);

// A value of a config file that is neither a string nor a list of strings.
struct NotText {
  std::string type;  // what it is, for the error: "an integer", "a table", ...
};
using MappingValue = std::variant<std::string, std::vector<std::string>, NotText>;

// One key of [source] or [output] as a config file gave it, unknown keys included.
struct MappingEntry {
  std::string key;  // the table, a dot and the key as written: "source.content", "output.schema"
  MappingValue value;
  std::string source;  // "PATH:LINE"
};

// Every key the mapping knows ("source.messages", ..., "source.id_type", "output.schema"), in
// the order `config` and `doctor` print them.
[[nodiscard]] std::span<const std::string_view> mapping_keys();

// A line of `config` / `doctor`: the key, the value as TOML would write it, its source.
struct MappingLine {
  std::string key, value, source;
};

class SourceMapping {
 public:
  // Today's schema: `messages (id, conversation_id, role, content, created_at, updated_at)`,
  // roles user/assistant, reply "next", no filter, the default templates, key type auto,
  // lens-embed's tables in the default schema. Every source is "default".
  SourceMapping() = default;

  // Names as the catalog spells them (unquoted); quote_sql_name() makes them SQL.
  [[nodiscard]] const Mapped<RelationName>& messages() const { return messages_; }
  [[nodiscard]] const Mapped<std::string>& id() const { return id_; }
  [[nodiscard]] const Mapped<std::string>& conversation_id() const { return conversation_id_; }
  [[nodiscard]] const Mapped<std::string>& role() const { return role_; }
  [[nodiscard]] const Mapped<std::string>& content() const { return content_; }
  [[nodiscard]] const Mapped<std::string>& created_at() const { return created_at_; }
  // "" when the source has no such column (has_updated_at() is false).
  [[nodiscard]] const Mapped<std::string>& updated_at() const { return updated_at_; }
  // Non-empty, without duplicates, disjoint from each other; values compared exactly.
  [[nodiscard]] const Mapped<std::vector<std::string>>& user_roles() const { return user_roles_; }
  [[nodiscard]] const Mapped<std::vector<std::string>>& assistant_roles() const { return assistant_roles_; }
  [[nodiscard]] const Mapped<ReplyRule>& reply() const { return reply_; }
  // A condition on one row of `messages`, column names unqualified; "" for none. The stores
  // apply it, parenthesised, to the rows before anything else (a row failing it is neither
  // embedded nor a reply, nor does it stand between a message and its reply). Checked to be
  // self-contained: quotes and parentheses balanced, no ';', no comment.
  [[nodiscard]] const Mapped<std::string>& filter() const { return filter_; }
  // The input text of an exchange with a reply: holds {user} and then {assistant}.
  [[nodiscard]] const Mapped<InputTemplate>& reply_template() const { return reply_template_; }
  // The input text of a user message alone: holds {user}, nothing of the assistant.
  [[nodiscard]] const Mapped<InputTemplate>& no_reply_template() const { return no_reply_template_; }
  [[nodiscard]] const Mapped<KeyType>& id_type() const { return id_type_; }
  // [output] schema: where lens-embed's own tables go; "" for the default schema.
  [[nodiscard]] const Mapped<std::string>& output_schema() const { return output_schema_; }

  [[nodiscard]] bool has_updated_at() const { return !updated_at_.value.empty(); }
  // Every value equals its default (whatever the sources say).
  [[nodiscard]] bool is_default() const;
  // Every [source] value equals its default; [output] schema may be anything.
  [[nodiscard]] bool is_default_source() const;
  // The COLUMNs of {user.COLUMN} in either template, and of {assistant.COLUMN} in the reply
  // template: what a store reads into Exchange::user_columns / assistant_columns. Sorted.
  [[nodiscard]] std::vector<std::string> user_columns() const;
  [[nodiscard]] std::vector<std::string> assistant_columns() const;

  // 12 hex digits that change when anything that decides input texts changes: the templates,
  // the reply rule, the filter and the role lists (order and duplicates aside). Column and
  // table names are left out: renaming a column or moving the data behind a view with the
  // same content changes no text. Stable across versions: stored beside the rows, it lets
  // `status` say that rows are stale because the mapping changed.
  [[nodiscard]] std::string fingerprint() const;

  // Every key of mapping_keys() with its value and source.
  [[nodiscard]] std::vector<MappingLine> describe() const;

 private:
  friend class MappingBuilder;

  Mapped<RelationName> messages_{{"", "messages"}};
  Mapped<std::string> id_{"id"}, conversation_id_{"conversation_id"}, role_{"role"}, content_{"content"},
      created_at_{"created_at"}, updated_at_{"updated_at"};
  Mapped<std::vector<std::string>> user_roles_{{"user"}}, assistant_roles_{{"assistant"}};
  Mapped<ReplyRule> reply_;
  Mapped<std::string> filter_;
  Mapped<InputTemplate> reply_template_{InputTemplate::default_reply()};
  Mapped<InputTemplate> no_reply_template_{InputTemplate::default_no_reply()};
  Mapped<KeyType> id_type_{KeyType::auto_detect};
  Mapped<std::string> output_schema_;
};

// The mapping that `entries` describe, every other key at its default.
// On failure: invalid_argument listing every problem, each as "SOURCE: [table] key = VALUE:
// what is wrong; the fix" (an unknown key names the nearest known one; a wrong type says
// the right one; a name that is not plain shows its quoted spelling; a template names the
// placeholder and position).
[[nodiscard]] util::Result<SourceMapping> make_source_mapping(const std::vector<MappingEntry>& entries);

// The lines `config` prints: every known key with its value as given (valid or not) or its
// default, then the unknown keys. Never fails: it is how a user finds a bad value.
[[nodiscard]] std::vector<MappingLine> describe_entries(const std::vector<MappingEntry>& entries);

// A value as TOML writes it: a basic string with escapes ("a\nb"), or a list ["a", "b"].
[[nodiscard]] std::string toml_text(const MappingValue& value);

}  // namespace lens::core
