// Parsing of input templates (see input_template.h). The brace rules follow fmt/Python's
// str.format ({{ for a literal brace), which users of templates already know.
#include "core/input_template.h"

#include <fmt/core.h>

#include <algorithm>

#include "core/sql_name.h"
#include "util/utf8.h"

namespace lens::core {
namespace {

constexpr std::string_view k_placeholders =
    "use {user}, {assistant}, {user.COLUMN} or {assistant.COLUMN} (write {{ and }} for literal braces)";

void add_literal(std::vector<InputTemplate::Part>& parts, char c) {
  if (parts.empty() || parts.back().side) parts.push_back({});
  parts.back().literal.push_back(c);
}

// A placeholder that starts at text[open] ('{'): its part and the index past its '}'.
std::expected<std::pair<InputTemplate::Part, std::size_t>, std::string> placeholder(std::string_view text,
                                                                                    std::size_t open) {
  std::size_t i = open + 1;
  while (i < text.size() && ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
    ++i;
  const std::string_view word = text.substr(open + 1, i - open - 1);
  InputTemplate::Part part;
  if (word == "user") {
    part.side = Side::user;
  } else if (word == "assistant") {
    part.side = Side::assistant;
  } else {
    const std::size_t close = text.find('}', open);
    if (close == std::string_view::npos) {
      return std::unexpected(
          fmt::format("'{{' at position {} is never closed; {}", open + 1, k_placeholders));
    }
    return std::unexpected(fmt::format("unknown placeholder {} at position {}; {}",
                                       text.substr(open, close - open + 1), open + 1, k_placeholders));
  }
  if (i < text.size() && text[i] == '.') {
    const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    const bool name_starts = next == '"' || next == '_' || next >= 0x80 || (next >= 'a' && next <= 'z') ||
                             (next >= 'A' && next <= 'Z');
    if (!name_starts) {
      return std::unexpected(fmt::format(
          "placeholder at position {}: a column name must follow \"{}.\"; write {{{}.COLUMN}}, or "
          "{{{}.\"Column Name\"}} for a name that is not plain",
          open + 1, word, word, word));
    }
    auto column = parse_name_at(text, i + 1);
    if (!column) {
      return std::unexpected(fmt::format("placeholder at position {}: the column after \"{}.\": {}", open + 1,
                                         word, column.error()));
    }
    part.column = std::move(column->name);
    i = column->end;
  }
  if (i >= text.size() || text[i] != '}') {
    return std::unexpected(
        fmt::format("placeholder at position {} ({}...) must end with '}}' here (position {}); {}", open + 1,
                    text.substr(open, i - open), i + 1, k_placeholders));
  }
  return std::pair{std::move(part), i + 1};
}

}  // namespace

InputTemplate InputTemplate::default_reply() {
  return *parse("{user}\n\n{assistant}");
}

InputTemplate InputTemplate::default_no_reply() {
  return *parse("{user}");
}

std::expected<InputTemplate, std::string> InputTemplate::parse(std::string_view text) {
  if (!util::is_valid_utf8(text)) return std::unexpected("is not valid UTF-8");
  InputTemplate t;
  t.text_ = std::string(text);
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      add_literal(t.parts_, '{');
      i += 2;
    } else if (c == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      add_literal(t.parts_, '}');
      i += 2;
    } else if (c == '}') {
      return std::unexpected(
          fmt::format("'}}' at position {} closes nothing; write }} for a literal brace", i + 1));
    } else if (c == '{') {
      auto p = placeholder(text, i);
      if (!p) return std::unexpected(p.error());
      t.parts_.push_back(std::move(p->first));
      i = p->second;
    } else {
      add_literal(t.parts_, c);
      ++i;
    }
  }
  return t;
}

std::optional<std::size_t> InputTemplate::first_content(Side side) const {
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    if (parts_[i].side == side && parts_[i].column.empty()) return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> InputTemplate::first_placeholder(Side side) const {
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    if (parts_[i].side == side) return i;
  }
  return std::nullopt;
}

std::vector<std::string> InputTemplate::columns(Side side) const {
  std::vector<std::string> out;
  for (const auto& p : parts_) {
    if (p.side == side && !p.column.empty()) out.push_back(p.column);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace lens::core
