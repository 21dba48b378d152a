// The source mapping as SQL fragments; see source_sql.h.
#include "store/source_sql.h"

#include <fmt/core.h>
#include <algorithm>
#include <cctype>

namespace lens::store {
namespace {

using util::ErrorCode;
using util::fail;

std::string literal_list(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values)
    out += (out.empty() ? "" : ", ") + sql_literal(v);
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The key type a declared column type stands for; "" when it is none of uuid, an integer or
// text (PostgreSQL: format_type's spelling; SQLite: its type affinity rules).
std::string key_type_of(SqlDialect dialect, std::string_view declared) {
  const std::string t = lower(declared);
  if (dialect == SqlDialect::sqlite) return t.find("int") != std::string::npos ? "INTEGER" : "TEXT";
  if (t == "uuid") return "uuid";
  if (t == "bigint" || t == "integer" || t == "smallint") return "bigint";
  if (t == "text" || t.starts_with("character varying") || t.starts_with("character(") || t == "character" ||
      t == "name")
    return "text";
  return "";
}

std::string configured_key_type(SqlDialect dialect, core::KeyType type) {
  const bool lite = dialect == SqlDialect::sqlite;
  switch (type) {
    case core::KeyType::uuid:
      return lite ? "TEXT" : "uuid";
    case core::KeyType::bigint:
      return lite ? "INTEGER" : "bigint";
    case core::KeyType::text:
      return lite ? "TEXT" : "text";
    case core::KeyType::auto_detect:
      break;
  }
  return "";
}

// "[source] content = "text" (lens-embed.toml:5)".
std::string key_text(std::string_view key, std::string_view value, std::string_view source) {
  return fmt::format("[source] {} = {} ({})", key, core::toml_text(std::string(value)), source);
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + core::config_spelling(n);
  return out;
}

}  // namespace

std::string sql_literal(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

SourceSql::SourceSql(core::SourceMapping mapping, SqlDialect dialect)
    : mapping_(std::move(mapping)), relation_(mapping_.messages().value), dialect_(dialect) {
  key_type_ = configured_key_type(dialect_, mapping_.id_type().value);
  if (key_type_.empty()) key_type_ = dialect_ == SqlDialect::sqlite ? "TEXT" : "uuid";
}

bool SourceSql::is_default_schema() const {
  return mapping_.is_default() && foreign_key_ &&
         key_type_ == (dialect_ == SqlDialect::sqlite ? "TEXT" : "uuid");
}

util::Status SourceSql::adopt_catalog(const SourceCatalog& catalog, std::string_view where) {
  catalog_ = catalog;
  const auto& rel = mapping_.messages();
  const std::string rel_name = core::config_spelling(rel.value);
  if (!catalog.exists) {
    return fail(ErrorCode::configuration,
                fmt::format("{}: the source table `{}` does not exist{} ({}); lens-embed reads your "
                            "messages and never creates them (check --db, or [source] messages)",
                            where, rel_name,
                            dialect_ == SqlDialect::postgres && rel.value.schema.empty()
                                ? " (in the search path of this connection)"
                                : "",
                            key_text("messages", rel_name, rel.source)));
  }
  auto index_of = [&](const std::string& column) -> std::ptrdiff_t {
    auto it = std::find(catalog.columns.begin(), catalog.columns.end(), column);
    return it == catalog.columns.end() ? -1 : it - catalog.columns.begin();
  };
  std::vector<std::string> problems;
  // `column` (of `key`, whose configured value is `shown`) must be a column of the relation.
  auto need = [&](std::string_view key, const std::string& column, const std::string& shown,
                  const std::string& source) {
    if (column.empty() || index_of(column) >= 0) return;
    problems.push_back(fmt::format("{}: `{}` has no column {}", key_text(key, shown, source), rel_name,
                                   core::config_spelling(column)));
  };
  auto need_mapped = [&](std::string_view key, const core::Mapped<std::string>& m) {
    need(key, m.value, core::config_spelling(m.value), m.source);
  };
  need_mapped("id", mapping_.id());
  need_mapped("conversation_id", mapping_.conversation_id());
  need_mapped("role", mapping_.role());
  need_mapped("content", mapping_.content());
  need_mapped("created_at", mapping_.created_at());
  if (mapping_.has_updated_at()) need_mapped("updated_at", mapping_.updated_at());
  const auto& reply = mapping_.reply();
  if (reply.value.kind == core::ReplyKind::column) {
    need("reply", reply.value.column, "column:" + core::config_spelling(reply.value.column), reply.source);
  }
  for (const auto& c : mapping_.user_columns()) {
    const bool in_reply =
        !mapping_.reply_template().value.columns(core::Side::user).empty() &&
        std::ranges::count(mapping_.reply_template().value.columns(core::Side::user), c) > 0;
    const auto& t = in_reply ? mapping_.reply_template() : mapping_.no_reply_template();
    need(in_reply ? "template" : "template_no_reply", c, t.value.text(), t.source);
  }
  for (const auto& c : mapping_.assistant_columns())
    need("template", c, mapping_.reply_template().value.text(), mapping_.reply_template().source);
  if (!problems.empty()) {
    std::string text = fmt::format("{}: the source does not have the mapped columns:", where);
    for (const auto& p : problems)
      text += "\n  " + p;
    text += fmt::format("\n  `{}` has the columns: {}", rel_name, joined(catalog.columns));
    return fail(ErrorCode::configuration, text);
  }
  const auto id_index = static_cast<std::size_t>(index_of(mapping_.id().value));
  if (mapping_.id_type().value == core::KeyType::auto_detect) {
    const std::string declared = id_index < catalog.types.size() ? catalog.types[id_index] : "";
    key_type_ = key_type_of(dialect_, declared);
    if (key_type_.empty()) {
      return fail(ErrorCode::configuration,
                  fmt::format("{}: {}: the key's type is {}, not uuid, an integer or text; set [source] "
                              "id_type = \"uuid\", \"bigint\" or \"text\" if its values are one of those",
                              where, key_text("id", mapping_.id().value, mapping_.id().source), declared));
    }
  }
  is_table_ = catalog.is_table;
  foreign_key_ = catalog.is_table && catalog.key_is_unique;
  return {};
}

std::string SourceSql::expand(std::string_view pattern) const {
  const auto& m = mapping_;
  std::string out;
  out.reserve(pattern.size() + 64);
  for (std::size_t i = 0; i < pattern.size();) {
    if (pattern[i] != '@') {
      out.push_back(pattern[i++]);
      continue;
    }
    std::size_t j = i + 1;
    while (j < pattern.size() && (std::islower(static_cast<unsigned char>(pattern[j])) || pattern[j] == '_'))
      ++j;
    const std::string_view token = pattern.substr(i + 1, j - i - 1);
    i = j;
    if (token == "rel") {
      out += core::quote_sql_name(relation_);
    } else if (token == "src") {
      if (m.filter().value.empty())
        out += core::quote_sql_name(relation_);
      else
        out +=
            fmt::format("(SELECT * FROM {} WHERE ({}))", core::quote_sql_name(relation_), m.filter().value);
    } else if (token == "id") {
      out += core::quote_sql_name(m.id().value);
    } else if (token == "conv") {
      out += core::quote_sql_name(m.conversation_id().value);
    } else if (token == "role") {
      out += core::quote_sql_name(m.role().value);
    } else if (token == "content") {
      out += core::quote_sql_name(m.content().value);
    } else if (token == "created") {
      out += core::quote_sql_name(m.created_at().value);
    } else if (token == "updated") {
      out += core::quote_sql_name(m.has_updated_at() ? m.updated_at().value : m.created_at().value);
    } else if (token == "users") {
      out += literal_list(m.user_roles().value);
    } else if (token == "assistants") {
      out += literal_list(m.assistant_roles().value);
    } else if (token == "roles") {
      out += literal_list(m.user_roles().value) + ", " + literal_list(m.assistant_roles().value);
    } else if (token == "isuser" || token == "isassistant" || token == "isrole") {
      std::vector<std::string> values =
          token == "isassistant" ? m.assistant_roles().value : m.user_roles().value;
      if (token == "isrole")
        values.insert(values.end(), m.assistant_roles().value.begin(), m.assistant_roles().value.end());
      out += values.size() == 1 ? " = " + sql_literal(values[0]) : " IN (" + literal_list(values) + ")";
    } else if (token == "key") {
      out += key_type_;
    } else {
      out += "@";  // not a token (e.g. a PostgreSQL operator): kept as written
      out += token;
    }
  }
  return out;
}

std::string SourceSql::user_columns(std::string_view alias, std::string_view cast) const {
  std::string out;
  for (const auto& c : mapping_.user_columns())
    out += fmt::format(", {}.{}{}", alias, core::quote_sql_name(c), cast);
  return out;
}

std::string SourceSql::assistant_columns(std::string_view alias, std::string_view cast) const {
  std::string out;
  for (const auto& c : mapping_.assistant_columns())
    out += fmt::format(", {}.{}{}", alias, core::quote_sql_name(c), cast);
  return out;
}

std::string SourceSql::prune_sql(bool even_with_foreign_key) const {
  if (!even_with_foreign_key && foreign_key_ && mapping_.filter().value.empty()) return "";
  std::string sql;
  for (const char* table : {"message_embeddings", "embedding_failures"}) {
    sql +=
        expand(fmt::format("DELETE FROM {0} WHERE NOT EXISTS (SELECT 1 FROM @src p WHERE p.@id = "
                           "{0}.user_message_id AND p.@role@isuser);",
                           table));
  }
  return sql;
}

std::string SourceSql::keyset_index() const {
  // [output] schema moves lens-embed's tables, not the source's indexes.
  if (mapping_.is_default_source()) return "messages_user_keyset";
  return (mapping_.messages().value.name + "_lens_keyset").substr(0, core::k_max_name_bytes);
}

std::string SourceSql::order_index() const {
  if (mapping_.is_default_source()) return "messages_conversation_order";
  return (mapping_.messages().value.name + "_lens_order").substr(0, core::k_max_name_bytes);
}

std::vector<SourceSql::IndexDdl> SourceSql::source_index_ddl(bool concurrently) const {
  if (!is_table_) return {};
  const auto& rel = relation_;
  // SQLite qualifies the index and names the table bare; PostgreSQL the other way round.
  const auto create = [&](const std::string& name, const std::string& columns, const std::string& where) {
    const std::string head =
        dialect_ == SqlDialect::sqlite
            ? fmt::format("CREATE INDEX IF NOT EXISTS {}.{} ON {}",
                          core::quote_sql_name(rel.schema.empty() ? "main" : rel.schema),
                          core::quote_sql_name(name), core::quote_sql_name(rel.name))
            : fmt::format("CREATE INDEX {}IF NOT EXISTS {} ON @rel", concurrently ? "CONCURRENTLY " : "",
                          core::quote_sql_name(name));
    return IndexDdl{name, expand(head + " (" + columns + ")" + where + ";")};
  };
  std::vector<IndexDdl> out{create(keyset_index(), "@created, @id", " WHERE @role@isuser")};
  const auto& reply = mapping_.reply().value;
  if (reply.kind == core::ReplyKind::none) return out;
  const std::string lead = reply.kind == core::ReplyKind::next ? "@conv" : core::quote_sql_name(reply.column);
  out.push_back(create(order_index(), lead + ", @created, @id", ""));
  return out;
}

SourceDescription describe(const SourceSql& source) {
  SourceDescription d;
  const auto& c = source.catalog();
  d.is_table = c.is_table;
  for (std::size_t i = 0; i < c.columns.size(); ++i)
    d.columns.emplace_back(c.columns[i], i < c.types.size() ? c.types[i] : std::string());
  d.key_type = source.key_type();
  d.foreign_key = source.foreign_key();
  return d;
}

std::string SourceSql::column_type(std::string_view column) const {
  for (std::size_t i = 0; i < catalog_.columns.size() && i < catalog_.types.size(); ++i)
    if (catalog_.columns[i] == column) return catalog_.types[i];
  return {};
}

}  // namespace lens::store
