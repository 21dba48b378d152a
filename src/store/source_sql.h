// The source mapping (core/source_mapping.h) as SQL fragments, shared by both stores: quoted
// names, the filtered source, role lists, the key's type as the output tables store it, and
// the check of the catalog's columns against the mapping. Each store writes its queries as
// patterns with @tokens (expand()), so the default mapping yields the same statements, and so
// the same plans, as the fixed schema did.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/source_mapping.h"
#include "store/store.h"
#include "util/result.h"

namespace lens::store {

enum class SqlDialect { sqlite, postgres };

// What a store learnt from its catalog about the mapped relation.
struct SourceCatalog {
  bool exists = false;
  bool is_table = false;             // a table (not a view): indexes and foreign keys possible
  bool key_is_unique = false;        // the id column alone is the primary key (or unique)
  std::vector<std::string> columns;  // in catalog order
  std::vector<std::string> types;    // declared type of each column (SQLite: may be "")
};

class SourceSql {
 public:
  // The default mapping, key type uuid (PostgreSQL) / TEXT (SQLite), with a foreign key.
  SourceSql() : SourceSql(core::SourceMapping(), SqlDialect::sqlite) {}
  SourceSql(core::SourceMapping mapping, SqlDialect dialect);

  [[nodiscard]] const core::SourceMapping& mapping() const { return mapping_; }
  // The relation every statement reads: the mapping's, or with the schema pin_schema() gave.
  [[nodiscard]] const core::RelationName& relation() const { return relation_; }
  // Makes an unqualified relation `schema`.NAME, as the connection's search_path resolved it
  // before the store put [output] schema in front (PostgreSQL), so that a relation of the
  // same name in lens-embed's own schema is never read instead.
  void pin_schema(const std::string& schema) { relation_.schema = schema; }
  [[nodiscard]] SqlDialect dialect() const { return dialect_; }

  // Checks `catalog` against the mapping and, on success, takes the key type (unless the
  // mapping sets id_type) and whether the output may hold a foreign key. `where` starts the
  // message ("sqlite lens.db", "postgres").
  // On failure: configuration naming the key, its value and source, the relation and its
  // real columns (a missing relation: its name and that lens-embed never creates it).
  [[nodiscard]] util::Status adopt_catalog(const SourceCatalog& catalog, std::string_view where);

  // The pattern with its tokens replaced (replacements are not scanned again):
  //   @rel      the relation, quoted ("lens"."chat_messages")
  //   @src      @rel, or (SELECT * FROM @rel WHERE (filter)) when there is a filter
  //   @id @conv @role @content @created   the mapped columns, quoted
  //   @updated  the updated_at column; the created_at column when there is none
  //   @users @assistants @roles   the role values as SQL string literals: 'a', 'b'
  //   @isuser @isassistant @isrole   " = 'user'", or " IN ('a', 'b')" for several values
  //   @key      the key type: uuid | bigint | text (PostgreSQL), TEXT | INTEGER (SQLite)
  // Role values are literals, not bound parameters, on purpose: a partial index (WHERE role =
  // 'user') only serves a query whose condition is a constant (SQLite has no STAT4 re-prepare
  // in Debian's build; PostgreSQL's generic plans neither). sql_literal() quotes them.
  [[nodiscard]] std::string expand(std::string_view pattern) const;

  // ", p.c1, p.c2" for the {user.COLUMN}s under `alias` (each `cast` appended, e.g. "::text").
  [[nodiscard]] std::string user_columns(std::string_view alias, std::string_view cast = "") const;
  [[nodiscard]] std::string assistant_columns(std::string_view alias, std::string_view cast = "") const;

  // The catalog adopt_catalog() was given (empty before).
  [[nodiscard]] const SourceCatalog& catalog() const { return catalog_; }
  // The catalog's declared type of `column` ("" when unknown or not declared).
  [[nodiscard]] std::string column_type(std::string_view column) const;
  [[nodiscard]] const std::string& key_type() const { return key_type_; }
  // The output tables may reference the source: a table whose id alone is its key (SQLite:
  // in the main database too).
  [[nodiscard]] bool foreign_key() const { return foreign_key_; }
  [[nodiscard]] bool is_table() const { return is_table_; }
  // The default mapping with the default key type: the original fixed statements apply.
  [[nodiscard]] bool is_default_schema() const;

  // Statements that delete lens-embed's rows and failures of user messages that are gone
  // from the source or fail its filter; empty when the foreign key does it (the source is a
  // table keyed by its id and there is no filter). Valid in both dialects.
  // `even_with_foreign_key`: the statements in every case, for `verify` to print when a
  // foreign key that should have deleted such rows was not enforced (SQLite's default for
  // other writers) or the message stopped being a user message.
  [[nodiscard]] std::string prune_sql(bool even_with_foreign_key = false) const;

  // The names of the two source indexes init creates: messages_user_keyset and
  // messages_conversation_order for the default mapping; else derived from the relation.
  [[nodiscard]] std::string keyset_index() const;
  [[nodiscard]] std::string order_index() const;

  // The statements that create those indexes (keyset_index(), then order_index() unless the
  // reply rule is "none"), one per index, each ending in ';'. SQLite: the index name
  // qualified by the relation's schema (main when none). PostgreSQL: `concurrently` adds
  // CONCURRENTLY (for a live table; it cannot run inside a transaction). Empty on a view.
  struct IndexDdl {
    std::string name;  // unqualified, as the catalog spells it
    std::string sql;
  };
  [[nodiscard]] std::vector<IndexDdl> source_index_ddl(bool concurrently = false) const;

 private:
  core::SourceMapping mapping_;
  core::RelationName relation_;
  SqlDialect dialect_;
  std::string key_type_;
  SourceCatalog catalog_;
  bool foreign_key_ = true;
  bool is_table_ = true;
};

// What `source` learnt from the catalog, as store.h describes it to `doctor`.
[[nodiscard]] SourceDescription describe(const SourceSql& source);

// `value` as an SQL string literal: single quotes, '' for a quote inside.
[[nodiscard]] std::string sql_literal(std::string_view value);

}  // namespace lens::store
