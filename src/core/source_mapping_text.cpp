// The source mapping as text: the lines `config` and `doctor` print, TOML spellings of its
// values, and the fingerprint of what decides input texts (see source_mapping.h).
#include <fmt/core.h>

#include <algorithm>

#include "core/source_mapping.h"
#include "util/sha256.h"

namespace lens::core {
namespace {

std::string reply_text(const ReplyRule& r) {
  switch (r.kind) {
    case ReplyKind::next:
      return "next";
    case ReplyKind::none:
      return "none";
    case ReplyKind::column:
      return "column:" + config_spelling(r.column);
  }
  return "next";
}

std::string column_text(const std::string& name) {
  return name.empty() ? "" : config_spelling(name);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// One field of the fingerprint's input: its name and its length, so no two different
// mappings can serialise alike.
void field(std::string& out, std::string_view name, std::string_view value) {
  out += fmt::format("{}={}:{}\n", name, value.size(), value);
}

}  // namespace

std::string toml_text(const MappingValue& value) {
  if (const auto* wrong = std::get_if<NotText>(&value)) return "(" + wrong->type + ")";
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    std::string out = "[";
    for (std::size_t i = 0; i < list->size(); ++i)
      out += (i ? ", " : "") + toml_text((*list)[i]);
    return out + "]";
  }
  std::string out = "\"";
  for (char c : std::get<std::string>(value)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        else
          out.push_back(c);
    }
  }
  return out + "\"";
}

std::vector<std::string> SourceMapping::user_columns() const {
  auto a = reply_template_.value.columns(Side::user);
  const auto b = no_reply_template_.value.columns(Side::user);
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

std::vector<std::string> SourceMapping::assistant_columns() const {
  return reply_template_.value.columns(Side::assistant);
}

std::string SourceMapping::fingerprint() const {
  // Versioned: a change to this serialisation would mark every row of every database stale.
  std::string in = "lens-embed source mapping v1\n";
  field(in, "template", reply_template_.value.text());
  field(in, "template_no_reply", no_reply_template_.value.text());
  field(in, "reply", reply_text(reply_.value));
  field(in, "filter", filter_.value);
  for (const auto& r : sorted(user_roles_.value))
    field(in, "user_role", r);
  for (const auto& r : sorted(assistant_roles_.value))
    field(in, "assistant_role", r);
  return util::to_hex(util::sha256(in)).substr(0, 12);
}

std::vector<MappingLine> SourceMapping::describe() const {
  const std::pair<const MappingValue, const std::string&> values[] = {
      {config_spelling(messages_.value), messages_.source},
      {column_text(id_.value), id_.source},
      {column_text(conversation_id_.value), conversation_id_.source},
      {column_text(role_.value), role_.source},
      {column_text(content_.value), content_.source},
      {column_text(created_at_.value), created_at_.source},
      {column_text(updated_at_.value), updated_at_.source},
      {user_roles_.value, user_roles_.source},
      {assistant_roles_.value, assistant_roles_.source},
      {reply_text(reply_.value), reply_.source},
      {filter_.value, filter_.source},
      {reply_template_.value.text(), reply_template_.source},
      {no_reply_template_.value.text(), no_reply_template_.source},
      {std::string(to_string(id_type_.value)), id_type_.source},
      {column_text(output_schema_.value), output_schema_.source},
  };
  static_assert(std::size(values) == 15, "one value per key of mapping_keys()");
  const auto keys = mapping_keys();
  std::vector<MappingLine> out;
  for (std::size_t i = 0; i < keys.size(); ++i)
    out.push_back({std::string(keys[i]), toml_text(values[i].first), values[i].second});
  return out;
}

bool SourceMapping::is_default() const {
  return is_default_source() && output_schema_.value.empty();
}

bool SourceMapping::is_default_source() const {
  const auto mine = describe();
  const auto defaults = SourceMapping().describe();
  for (std::size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].key != "output.schema" && mine[i].value != defaults[i].value) return false;
  }
  return true;
}

std::vector<MappingLine> describe_entries(const std::vector<MappingEntry>& entries) {
  std::vector<MappingLine> out = SourceMapping().describe();
  for (const auto& e : entries) {
    auto it = std::find_if(out.begin(), out.end(), [&](const MappingLine& l) { return l.key == e.key; });
    if (it == out.end()) {
      out.push_back({e.key, toml_text(e.value), e.source + ", unknown key"});
    } else {
      it->value = toml_text(e.value);
      it->source = e.source;
    }
  }
  return out;
}

}  // namespace lens::core
