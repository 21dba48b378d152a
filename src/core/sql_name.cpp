// Parsing and quoting of the names a source mapping holds (see sql_name.h). Plain names are
// checked strictly, so that a typo ("message id", "content;") is an error naming the key
// instead of a quoted identifier that the database later reports as missing.
#include "core/sql_name.h"

#include <fmt/core.h>

#include "util/utf8.h"

namespace lens::core {
namespace {

bool ascii_letter(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
// Non-ASCII bytes count as letters, as in PostgreSQL's scanner; UTF-8 validity is checked
// on the whole name afterwards.
bool plain_start(unsigned char c) {
  return ascii_letter(c) || c == '_' || c >= 0x80;
}
bool plain_rest(unsigned char c) {
  return plain_start(c) || (c >= '0' && c <= '9') || c == '$';
}

bool is_plain(std::string_view name) {
  if (name.empty() || !plain_start(static_cast<unsigned char>(name.front()))) return false;
  for (char c : name) {
    if (!plain_rest(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// What is wrong with a name whatever its spelling, or "".
std::string check_name(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > k_max_name_bytes) {
    return fmt::format("is {} bytes long; PostgreSQL keeps only the first {}", name.size(), k_max_name_bytes);
  }
  if (!util::is_valid_utf8(name)) return "is not valid UTF-8";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "contains a control character";
  }
  return "";
}

std::string describe_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u == 0x7f) return fmt::format("byte 0x{:02x}", u);
  return fmt::format("'{}'", c);
}

// The error for `text` that is not plain where it should be, with `fix` as the spelling to use.
std::string not_plain(std::string_view text, std::size_t bad, std::string_view fix) {
  return fmt::format(
      "\"{}\" is not a plain SQL name ({} at position {}); if that is the real name, write it in "
      "double quotes inside the TOML string: '{}'",
      text, describe_char(text[bad]), bad + 1, fix);
}

// SCHEMA.NAME with each part that is not plain quoted: the fix for a relation name.
std::string quote_parts(std::string_view text) {
  std::string out;
  for (std::size_t start = 0;;) {
    const std::size_t dot = text.find('.', start);
    const std::string_view part = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    out += is_plain(part) ? std::string(part) : quote_sql_name(part);
    if (dot == std::string_view::npos) return out;
    out.push_back('.');
    start = dot + 1;
  }
}

}  // namespace

std::expected<NameAt, std::string> parse_name_at(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return std::unexpected("a name is missing");
  NameAt out;
  if (text[pos] == '"') {
    std::size_t i = pos + 1;
    for (;;) {
      if (i >= text.size()) {
        return std::unexpected(fmt::format("{} has no closing double quote", text.substr(pos)));
      }
      if (text[i] == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          out.name.push_back('"');
          i += 2;
          continue;
        }
        out.end = i + 1;
        break;
      }
      out.name.push_back(text[i++]);
    }
  } else {
    if (!plain_start(static_cast<unsigned char>(text[pos]))) {
      return std::unexpected(not_plain(text, pos, quote_sql_name(text)));
    }
    std::size_t i = pos;
    while (i < text.size() && plain_rest(static_cast<unsigned char>(text[i])))
      ++i;
    out.name = std::string(text.substr(pos, i - pos));
    out.end = i;
  }
  if (auto problem = check_name(out.name); !problem.empty()) {
    return std::unexpected(fmt::format("the name {} {}", quote_sql_name(out.name), problem));
  }
  return out;
}

std::expected<std::string, std::string> parse_column_name(std::string_view text) {
  auto name = parse_name_at(text, 0);
  if (!name) return std::unexpected(name.error());
  if (name->end != text.size()) {
    if (text.front() == '"') {
      return std::unexpected(
          fmt::format("{} has text after its closing quote; a column name is one name", text));
    }
    return std::unexpected(not_plain(text, name->end, quote_sql_name(text)));
  }
  return std::move(name->name);
}

std::expected<RelationName, std::string> parse_relation_name(std::string_view text) {
  const auto unquoted = text.find('"') == std::string_view::npos;
  // A plain part that fails is re-reported with every part quoted as needed.
  auto first = parse_name_at(text, 0);
  if (!first && unquoted && !text.empty() && !plain_start(static_cast<unsigned char>(text.front())) &&
      text.find('.') != std::string_view::npos) {
    return std::unexpected(not_plain(text, 0, quote_parts(text)));
  }
  if (!first) return std::unexpected(first.error());
  if (first->end == text.size()) return RelationName{"", std::move(first->name)};
  if (text[first->end] != '.') {
    if (text.front() == '"') {
      return std::unexpected(
          fmt::format("{}: expected '.' or the end after the closing quote (NAME or SCHEMA.NAME)", text));
    }
    return std::unexpected(not_plain(text, first->end, unquoted ? quote_parts(text) : quote_sql_name(text)));
  }
  const std::size_t at = first->end + 1;
  auto second = parse_name_at(text, at);
  if (!second && unquoted && at < text.size() && !plain_start(static_cast<unsigned char>(text[at]))) {
    return std::unexpected(not_plain(text, at, quote_parts(text)));
  }
  if (!second) return std::unexpected(second.error());
  if (second->end != text.size()) {
    if (text[second->end] == '.') {
      return std::unexpected(fmt::format("\"{}\" has more than two parts; write NAME or SCHEMA.NAME", text));
    }
    return std::unexpected(not_plain(text, second->end, unquoted ? quote_parts(text) : quote_sql_name(text)));
  }
  return RelationName{std::move(first->name), std::move(second->name)};
}

std::string config_spelling(std::string_view name) {
  return is_plain(name) ? std::string(name) : quote_sql_name(name);
}

std::string config_spelling(const RelationName& relation) {
  if (relation.schema.empty()) return config_spelling(relation.name);
  return config_spelling(relation.schema) + "." + config_spelling(relation.name);
}

std::string quote_sql_name(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_sql_name(const RelationName& relation) {
  if (relation.schema.empty()) return quote_sql_name(relation.name);
  return quote_sql_name(relation.schema) + "." + quote_sql_name(relation.name);
}

}  // namespace lens::core
