// Validation of the source mapping (see source_mapping.h): each key read and checked on its
// own, then the rules that tie keys together. Every problem is collected, so one run of
// `lens-embed` shows all of them.
#include "core/source_mapping.h"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <optional>

#include "util/edit_distance.h"

namespace lens::core {
namespace {

enum class Key {
  messages,
  id,
  conversation_id,
  role,
  content,
  created_at,
  updated_at,
  user_roles,
  assistant_roles,
  reply,
  filter,
  template_reply,
  template_no_reply,
  id_type,
  output_schema,
};

struct KeyName {
  Key key;
  std::string_view name;
};
constexpr std::array<KeyName, 15> k_keys{{
    {Key::messages, "source.messages"},
    {Key::id, "source.id"},
    {Key::conversation_id, "source.conversation_id"},
    {Key::role, "source.role"},
    {Key::content, "source.content"},
    {Key::created_at, "source.created_at"},
    {Key::updated_at, "source.updated_at"},
    {Key::user_roles, "source.user_roles"},
    {Key::assistant_roles, "source.assistant_roles"},
    {Key::reply, "source.reply"},
    {Key::filter, "source.filter"},
    {Key::template_reply, "source.template"},
    {Key::template_no_reply, "source.template_no_reply"},
    {Key::id_type, "source.id_type"},
    {Key::output_schema, "output.schema"},
}};

constexpr std::array<std::string_view, k_keys.size()> k_key_names = [] {
  std::array<std::string_view, k_keys.size()> names{};
  for (std::size_t i = 0; i < k_keys.size(); ++i)
    names[i] = k_keys[i].name;
  return names;
}();

// "source.content" as a config file shows it: "[source] content".
std::string shown(std::string_view key) {
  const auto dot = key.find('.');
  if (dot == std::string_view::npos) return fmt::format("[{}]", key);
  return fmt::format("[{}] {}", key.substr(0, dot), key.substr(dot + 1));
}

// The problem with an unknown key: the nearest known key (a typo, or the other table), else
// the list of keys of its table.
std::string unknown_key(const MappingEntry& e) {
  const std::string_view full = e.key;
  const auto dot = full.find('.');
  const std::string_view table = full.substr(0, dot);
  const std::string_view name = dot == std::string_view::npos ? std::string_view() : full.substr(dot + 1);
  // The nearest key within half the name's length in edits; else one that the name cuts
  // short or runs on ("created" for created_at).
  std::string_view best;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 2) + 1;
  for (const auto& k : k_keys) {
    const std::string_view known = k.name.substr(k.name.find('.') + 1);
    if (const std::size_t d = util::edit_distance(name, known); d < best_distance) {
      best_distance = d;
      best = k.name;
    }
  }
  for (const auto& k : k_keys) {
    const std::string_view known = k.name.substr(k.name.find('.') + 1);
    if (best.empty() && name.size() >= 3 && (known.starts_with(name) || name.starts_with(known)))
      best = k.name;
  }
  if (!best.empty())
    return fmt::format("{}: unknown key {}; did you mean {}?", e.source, shown(e.key), shown(best));
  std::string known;
  for (const auto& k : k_keys) {
    if (k.name.starts_with(table) && k.name.size() > table.size() && k.name[table.size()] == '.')
      known += (known.empty() ? "" : ", ") + std::string(k.name.substr(table.size() + 1));
  }
  return fmt::format("{}: unknown key {}; the keys of [{}] are: {}", e.source, shown(e.key), table, known);
}

// What is wrong with a filter as a self-contained condition, or "". The stores put it in
// parentheses, so a ';', a comment or an unbalanced quote or parenthesis could end or change
// the statement around it. (PostgreSQL's E'\'' and $$ quoting are not understood: write
// such a condition with '' instead.)
std::string filter_problem(std::string_view f) {
  int depth = 0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '\'' || c == '"') {
      const std::size_t close = f.find(c, i + 1);
      if (close == std::string_view::npos) {
        return fmt::format("the {} at position {} is never closed", c == '\'' ? "quote '" : "quote \"",
                           i + 1);
      }
      i = close;  // '' and "" inside a literal are two adjacent literals here: same balance
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (--depth < 0) return fmt::format("the ')' at position {} closes nothing", i + 1);
    } else if (c == ';') {
      return fmt::format("';' at position {}: the filter is one condition, not a statement", i + 1);
    } else if ((c == '-' && i + 1 < f.size() && f[i + 1] == '-') ||
               (c == '/' && i + 1 < f.size() && f[i + 1] == '*')) {
      return fmt::format("a comment at position {}: it would swallow the SQL around the filter", i + 1);
    }
  }
  if (depth > 0) return "a '(' is never closed";
  return "";
}

}  // namespace

std::string_view to_string(KeyType type) {
  switch (type) {
    case KeyType::auto_detect:
      return "auto";
    case KeyType::uuid:
      return "uuid";
    case KeyType::bigint:
      return "bigint";
    case KeyType::text:
      return "text";
  }
  return "auto";
}

std::span<const std::string_view> mapping_keys() {
  return k_key_names;
}

// Fills a SourceMapping from entries: each key on its own, then the rules between keys.
class MappingBuilder {
 public:
  void apply(const MappingEntry& e) {
    const auto* k =
        std::find_if(k_keys.begin(), k_keys.end(), [&](const KeyName& n) { return n.name == e.key; });
    if (k == k_keys.end()) {
      problems_.push_back(unknown_key(e));
      return;
    }
    if (const auto* wrong = std::get_if<NotText>(&e.value)) {
      const bool list = k->key == Key::user_roles || k->key == Key::assistant_roles;
      fail(e, fmt::format("must be {}, not {}", list ? "a list of strings, e.g. [\"user\"]" : "a string",
                          wrong->type));
      return;
    }
    switch (k->key) {
      case Key::user_roles:
        roles(e, m_.user_roles_);
        return;
      case Key::assistant_roles:
        roles(e, m_.assistant_roles_);
        return;
      default:
        break;
    }
    const auto* text = std::get_if<std::string>(&e.value);
    if (!text) {
      fail(e, "must be a string, not a list");
      return;
    }
    switch (k->key) {
      case Key::messages:
        if (auto r = parse_relation_name(*text))
          m_.messages_ = {*r, e.source};
        else
          fail(e, text->empty() ? "must name the table or view that holds the messages" : r.error());
        return;
      case Key::id:
        return column(e, *text, m_.id_, false);
      case Key::conversation_id:
        return column(e, *text, m_.conversation_id_, false);
      case Key::role:
        return column(e, *text, m_.role_, false);
      case Key::content:
        return column(e, *text, m_.content_, false);
      case Key::created_at:
        return column(e, *text, m_.created_at_, false);
      case Key::updated_at:
        return column(e, *text, m_.updated_at_, true);
      case Key::reply:
        return reply(e, *text);
      case Key::filter:
        if (auto problem = filter_problem(*text); !problem.empty())
          fail(e, problem + "; write one SQL condition on a row, e.g. \"NOT deleted\"");
        else
          m_.filter_ = {*text, e.source};
        return;
      case Key::template_reply:
        return templ(e, *text, m_.reply_template_);
      case Key::template_no_reply:
        return templ(e, *text, m_.no_reply_template_);
      case Key::id_type:
        return id_type(e, *text);
      case Key::output_schema:
        if (text->empty()) {
          m_.output_schema_ = {"", e.source};
        } else if (auto r = parse_column_name(*text)) {
          m_.output_schema_ = {*r, e.source};
        } else {
          fail(e, r.error() + " (a schema name; \"\" for the default schema)");
        }
        return;
      case Key::user_roles:
      case Key::assistant_roles:
        return;
    }
  }

  // The rules between keys, once every key is read.
  void check_together() {
    const std::pair<Key, const Mapped<std::string>*> columns[] = {
        {Key::id, &m_.id_},
        {Key::conversation_id, &m_.conversation_id_},
        {Key::role, &m_.role_},
        {Key::content, &m_.content_},
        {Key::created_at, &m_.created_at_},
        {Key::updated_at, &m_.updated_at_}};
    for (std::size_t i = 0; i < std::size(columns); ++i) {
      for (std::size_t j = i + 1; j < std::size(columns); ++j) {
        const auto& a = *columns[i].second;
        const auto& b = *columns[j].second;
        if (a.value.empty() || a.value != b.value) continue;
        problems_.push_back(fmt::format(
            "{}: {} and {} ({}) both name the column \"{}\"; each key names a column of its own", a.source,
            shown(name_of(columns[i].first)), shown(name_of(columns[j].first)), b.source, a.value));
      }
      // conversation_id may be the link: threads whose replies carry their question's id as
      // the thread id (a Slack-style thread_ts) map both keys to one column.
      if (m_.reply_.value.kind == ReplyKind::column && columns[i].first != Key::conversation_id &&
          m_.reply_.value.column == columns[i].second->value) {
        problems_.push_back(
            fmt::format("{}: [source] reply = \"column:{}\" names the column of {} ({}); name the column of "
                        "the assistant's row that holds the id of the user message it answers",
                        m_.reply_.source, m_.reply_.value.column, shown(name_of(columns[i].first)),
                        columns[i].second->source));
      }
    }
    for (const auto& role : m_.user_roles_.value) {
      if (std::find(m_.assistant_roles_.value.begin(), m_.assistant_roles_.value.end(), role) !=
          m_.assistant_roles_.value.end()) {
        problems_.push_back(fmt::format(
            "{}: [source] user_roles and assistant_roles ({}) both hold \"{}\"; a role is the user's or the "
            "assistant's, not both",
            m_.user_roles_.source, m_.assistant_roles_.source, role));
      }
    }
    const auto& with = m_.reply_template_;
    const auto user_at = with.value.first_content(Side::user);
    const auto assistant_at = with.value.first_content(Side::assistant);
    if (!user_at) {
      template_rule(with, "template", "has no {user}; the user's message must be in the input text");
    }
    if (!assistant_at) {
      template_rule(
          with, "template",
          "has no {assistant}; the reply must be in the input text (reply = \"none\" embeds the user "
          "message alone)");
    }
    if (user_at && assistant_at && *assistant_at < *user_at) {
      template_rule(
          with, "template",
          "puts {assistant} before {user}; a long input is cut at its end, so the user's words come "
          "first");
    }
    const auto& without = m_.no_reply_template_;
    if (!without.value.first_content(Side::user)) {
      template_rule(without, "template_no_reply",
                    "has no {user}; the user's message must be in the input text");
    }
    if (without.value.first_placeholder(Side::assistant)) {
      template_rule(without, "template_no_reply",
                    "names the assistant; it renders a user message that has no reply");
    }
  }

  util::Result<SourceMapping> finish() {
    if (problems_.empty()) return std::move(m_);
    if (problems_.size() == 1) return util::fail(util::ErrorCode::invalid_argument, problems_.front());
    std::string all = fmt::format("{} problems in [source]/[output]:", problems_.size());
    for (const auto& p : problems_)
      all += "\n  " + p;
    return util::fail(util::ErrorCode::invalid_argument, all);
  }

 private:
  static std::string_view name_of(Key key) {
    for (const auto& k : k_keys) {
      if (k.key == key) return k.name;
    }
    return "";
  }

  void fail(const MappingEntry& e, const std::string& problem) {
    problems_.push_back(fmt::format("{}: {} = {}: {}", e.source, shown(e.key), toml_text(e.value), problem));
  }

  void template_rule(const Mapped<InputTemplate>& t, std::string_view key, std::string_view problem) {
    problems_.push_back(
        fmt::format("{}: [source] {} = {}: {}", t.source, key, toml_text(t.value.text()), problem));
  }

  void column(const MappingEntry& e, const std::string& text, Mapped<std::string>& out, bool may_be_empty) {
    if (text.empty() && may_be_empty) {
      out = {"", e.source};
      return;
    }
    if (text.empty()) {
      fail(e, "must name a column");
      return;
    }
    if (auto r = parse_column_name(text))
      out = {*r, e.source};
    else
      fail(e, r.error());
  }

  void roles(const MappingEntry& e, Mapped<std::vector<std::string>>& out) {
    const auto* list = std::get_if<std::vector<std::string>>(&e.value);
    if (!list) {
      fail(e, fmt::format("must be a list of strings, e.g. [{}]", toml_text(e.value)));
      return;
    }
    if (list->empty()) {
      fail(e, "must hold at least one role");
      return;
    }
    std::vector<std::string> distinct;
    for (const auto& role : *list) {
      if (role.empty()) {
        fail(e, "holds an empty role; list the values of the role column exactly");
        return;
      }
      if (std::find(distinct.begin(), distinct.end(), role) == distinct.end()) distinct.push_back(role);
    }
    out = {std::move(distinct), e.source};
  }

  void reply(const MappingEntry& e, const std::string& text) {
    constexpr std::string_view k_forms = "use \"next\", \"none\" or \"column:NAME\"";
    // Set member by member: g++ 12 at -O3 warns (maybe-uninitialized) on a braced temporary.
    ReplyRule rule;
    if (text == "next") {
      rule.kind = ReplyKind::next;
    } else if (text == "none") {
      rule.kind = ReplyKind::none;
    } else if (text.starts_with("column:")) {
      auto name = parse_column_name(std::string_view(text).substr(7));
      if (!name) {
        fail(e, fmt::format("the column after \"column:\": {}", name.error()));
        return;
      }
      rule.kind = ReplyKind::column;
      rule.column = std::move(*name);
    } else {
      fail(e, fmt::format("unknown reply rule; {}", k_forms));
      return;
    }
    m_.reply_.value = std::move(rule);
    m_.reply_.source = e.source;
  }

  void templ(const MappingEntry& e, const std::string& text, Mapped<InputTemplate>& out) {
    auto t = InputTemplate::parse(text);
    if (t)
      out = {std::move(*t), e.source};
    else
      fail(e, t.error());
  }

  void id_type(const MappingEntry& e, const std::string& text) {
    for (auto type : {KeyType::auto_detect, KeyType::uuid, KeyType::bigint, KeyType::text}) {
      if (text == to_string(type)) {
        m_.id_type_ = {type, e.source};
        return;
      }
    }
    fail(e, "use \"auto\" (read from the database), \"uuid\", \"bigint\" or \"text\"");
  }

  SourceMapping m_;
  std::vector<std::string> problems_;
};

util::Result<SourceMapping> make_source_mapping(const std::vector<MappingEntry>& entries) {
  MappingBuilder b;
  for (const auto& e : entries)
    b.apply(e);
  b.check_together();
  return b.finish();
}

}  // namespace lens::core
