// Names of tables, views, schemas and columns as lens-embed.toml writes them, parsed once so
// that the stores only ever quote a name, never interpret one.
#pragma once

#include <cstddef>
#include <expected>
#include <string>
#include <string_view>

namespace lens::core {

// PostgreSQL cuts longer names to 63 bytes without a word (NAMEDATALEN - 1), so a longer one
// could name another column than the user meant; SQLite has no limit but follows it too.
inline constexpr std::size_t k_max_name_bytes = 63;

// A table or view, possibly schema-qualified. Both parts exactly as the database's catalog
// spells them (case kept: lens-embed quotes every name it sends).
struct RelationName {
  std::string schema;  // "": the connection's search_path (PostgreSQL), main (SQLite)
  std::string name;
  friend bool operator==(const RelationName&, const RelationName&) = default;
};

// One name starting at text[pos]:
//  - plain: a letter, '_' or any non-ASCII byte, then letters, digits, '_', '$' or non-ASCII
//    bytes; taken as spelled (no case folding), so `Body` is the column "Body";
//  - quoted: "..." with "" for a quote inside, for anything else ("Message Id", "a.b").
// The name is non-empty, at most k_max_name_bytes, valid UTF-8, without control characters.
struct NameAt {
  std::string name;
  std::size_t end = 0;  // index just past the name
};
// On failure: a sentence (no key, no position) saying what is wrong and how to write it.
[[nodiscard]] std::expected<NameAt, std::string> parse_name_at(std::string_view text, std::size_t pos);

// `text` is exactly one name (see parse_name_at). On failure: as parse_name_at.
[[nodiscard]] std::expected<std::string, std::string> parse_column_name(std::string_view text);

// `text` is NAME or SCHEMA.NAME (each part as parse_name_at). On failure: as parse_name_at.
[[nodiscard]] std::expected<RelationName, std::string> parse_relation_name(std::string_view text);

// The name as lens-embed.toml would write it: plain when it parses as plain, else quoted.
// parse_column_name(config_spelling(n)) == n for every valid n.
[[nodiscard]] std::string config_spelling(std::string_view name);
[[nodiscard]] std::string config_spelling(const RelationName& relation);

// The name as an SQL identifier: always double-quoted, "" for a quote inside. PostgreSQL and
// SQLite read this form alike; each store may still keep its own helper.
[[nodiscard]] std::string quote_sql_name(std::string_view name);
[[nodiscard]] std::string quote_sql_name(const RelationName& relation);

}  // namespace lens::core
