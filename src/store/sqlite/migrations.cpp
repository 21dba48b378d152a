// Migrations of the SQLite store; see migrations.h.
#include "store/sqlite/migrations.h"

#include <fmt/core.h>
#include <set>
#include <string>

#include "store/shared_sql.h"
#include "store/sqlite/schema.sql.h"

namespace lens::store::sqlite {
namespace {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

Result<bool> table_exists(Database& db, std::string_view name) {
  Statement q;
  if (auto s = q.prepare(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1"); !s)
    return std::unexpected(s.error());
  q.bind(1, name);
  return q.step("reading the schema");
}

// The version of lens-embed's tables: from lens_embed_schema_migrations; 1 for a v1 file
// (its three tables without that table: v1 recorded itself in `schema_migrations`, which
// may as well be an application's, so it is not read); 0 for none.
Result<int> read_version(Database& db) {
  auto ours = table_exists(db, "lens_embed_schema_migrations");
  if (!ours) return std::unexpected(ours.error());
  if (*ours) {
    auto v = db.scalar_int("SELECT coalesce(max(version), 0) FROM lens_embed_schema_migrations");
    if (!v) return std::unexpected(v.error());
    return static_cast<int>(*v);
  }
  for (const char* t : {"message_embeddings", "embedding_failures", "embedding_runs"}) {
    auto exists = table_exists(db, t);
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) return 0;
  }
  return 1;
}

// The schema that holds the source relation, quoted ("main" when the mapping names none).
std::string source_schema(const SourceSql& source) {
  const auto& schema = source.mapping().messages().value.schema;
  return core::quote_sql_name(schema.empty() ? std::string("main") : schema);
}

Result<bool> source_indexes_present(Database& db, const SourceSql& source) {
  if (!source.is_table()) return true;  // a view has none to create
  const bool two = source.mapping().reply().value.kind != core::ReplyKind::none;
  auto n = db.scalar_int(fmt::format(
      "SELECT count(*) FROM {}.sqlite_schema WHERE type = 'index' AND name IN "
      "({}, {})",
      source_schema(source), sql_literal(source.keyset_index()), sql_literal(source.order_index())));
  if (!n) return std::unexpected(n.error());
  return *n == (two ? 2 : 1);
}

// lens-embed's v1 tables for `source`: the fixed statements for the default schema, else
// with the key's type and, when the source is a table of this file keyed by its id alone,
// the foreign key to it (deleting a message deletes its row).
std::string v1_tables(const SourceSql& source) {
  std::string sql = sqlite_schema::k_v1;
  if (source.is_default_schema()) return sql;
  const std::string fk = source.foreign_key()
                             ? fmt::format(" REFERENCES {}({}) ON DELETE CASCADE",
                                           core::quote_sql_name(source.mapping().messages().value.name),
                                           core::quote_sql_name(source.mapping().id().value))
                             : "";
  const auto replace_all = [&](std::string_view from, const std::string& to) {
    for (auto at = sql.find(from); at != std::string::npos; at = sql.find(from, at + to.size()))
      sql.replace(at, from.size(), to);
  };
  replace_all("TEXT    NOT NULL REFERENCES messages(id) ON DELETE CASCADE",
              source.key_type() + " NOT NULL" + fk);
  replace_all("assistant_message_id TEXT,", "assistant_message_id " + source.key_type() + ",");
  return sql;
}

Status newer_than_us(Database& db, int version) {
  return fail(ErrorCode::configuration, fmt::format("sqlite: {} has lens-embed schema version {}, newer than "
                                                    "this lens-embed understands ({}); upgrade lens-embed",
                                                    db.path(), version, k_schema_version));
}

Status record(Database& db, int version, std::string_view note) {
  Statement q;
  if (auto s =
          q.prepare(db, "INSERT OR IGNORE INTO lens_embed_schema_migrations (version, note) VALUES (?1, ?2)");
      !s)
    return s;
  q.bind(1, std::int64_t{version});
  q.bind(2, note);
  return q.run("recording the schema version");
}

Status migrate_in_transaction(Database& db, const SourceSql& source, int version,
                              const MigrateOptions& options) {
  if (auto s = db.exec(sqlite_schema::k_migrations_table); !s) return s;
  if (version < 1) {
    if (auto s = db.exec(v1_tables(source)); !s) return s;
    if (auto s = record(db, 1, "output tables"); !s) return s;
  } else if (version == 1) {
    if (auto s = record(db, 1, "lens-embed v1 file (recorded in schema_migrations)"); !s) return s;
  }
  if (version < 2) {
    if (auto s = db.exec(sqlite_schema::k_v2); !s) return s;
    // A backlog parked by v1 (every transient failure was terminal) is due at once.
    if (auto s = db.exec(fmt::format("UPDATE embedding_failures SET next_attempt_at = last_failed_at "
                                     "WHERE reason IN ({})",
                                     reasons_sql_list(core::FailureClass::transient)));
        !s)
      return s;
    if (auto s = record(db, 2, "failure classes, run errors, dimensions index"); !s) return s;
  }
  if (version < 3) {
    if (auto s = db.exec(sqlite_schema::k_v3); !s) return s;
    if (auto s = record(db, 3, "fenced count of runs"); !s) return s;
  }
  if (version < 4) {
    if (auto s = db.exec(sqlite_schema::k_v4); !s) return s;
    if (auto s = record(db, 4, "input definitions"); !s) return s;
  }
  if (version < 5) {
    if (auto s = db.exec(source.expand(sqlite_schema::k_v5)); !s) return s;
    if (auto s = record(db, 5, "batch API ledger"); !s) return s;
  }
  if (!options.source_indexes || !source.is_table()) return {};
  std::string sql;
  for (const auto& index : source.source_index_ddl())
    sql += index.sql + "\n";
  return db.exec(sql);
}

// Rows of user messages deleted from a source the foreign key cannot follow (a view, a table
// of another database) or filtered out since: deleted at every migrate, i.e. when a run starts.
Status prune(Database& db, const SourceSql& source) {
  const std::string sql = source.prune_sql();
  if (sql.empty()) return {};
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return s;
  if (auto s = db.exec(sql); !s) {
    (void)db.exec("ROLLBACK");
    return s;
  }
  return db.exec("COMMIT");
}

}  // namespace

Status inspect_source(Database& db, SourceSql& source) {
  const auto& rel = source.mapping().messages().value;
  SourceCatalog catalog;
  {
    Statement q;
    if (auto s = q.prepare(db, fmt::format("SELECT type FROM {}.sqlite_schema WHERE name = ?1 AND type IN "
                                           "('table', 'view')",
                                           source_schema(source)));
        !s) {
      // No such attached database: the relation does not exist.
      return source.adopt_catalog(catalog, fmt::format("sqlite {}", db.path()));
    }
    q.bind(1, std::string_view(rel.name));
    auto row = q.step("reading the source table");
    if (!row) return std::unexpected(row.error());
    if (*row) {
      catalog.exists = true;
      catalog.is_table = q.text(0) == "table" && (rel.schema.empty() || rel.schema == "main");
    }
  }
  if (catalog.exists) {
    Statement q;
    if (auto s = q.prepare(db, "SELECT name, type, pk FROM pragma_table_info(?1, ?2) ORDER BY cid"); !s)
      return s;
    q.bind(1, std::string_view(rel.name));
    q.bind(2, std::string_view(rel.schema.empty() ? std::string_view("main") : std::string_view(rel.schema)));
    int key_columns = 0;
    bool id_is_key = false;
    for (;;) {
      auto row = q.step("reading the source table");
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      catalog.columns.push_back(q.text(0));
      catalog.types.push_back(q.text(1));
      if (q.integer(2) > 0) {
        ++key_columns;
        if (q.text(0) == source.mapping().id().value) id_is_key = true;
      }
    }
    catalog.key_is_unique = id_is_key && key_columns == 1;
  }
  return source.adopt_catalog(catalog, fmt::format("sqlite {}", db.path()));
}

Status migrate(Database& db, const SourceSql& source, const MigrateOptions& options) {
  // Current and complete: no DDL and no write lock, so a `run` next to another process's
  // writes starts without waiting.
  auto version = read_version(db);
  if (!version) return std::unexpected(version.error());
  if (*version > k_schema_version) return newer_than_us(db, *version);
  if (*version == k_schema_version) {
    auto indexes = options.source_indexes ? source_indexes_present(db, source) : Result<bool>(true);
    if (!indexes) return std::unexpected(indexes.error());
    if (*indexes) return prune(db, source);
  }
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return s;
  // Another process may have migrated while we waited for the lock: read again.
  version = read_version(db);
  Status s = !version                      ? Status(std::unexpected(version.error()))
             : *version > k_schema_version ? newer_than_us(db, *version)
                                           : migrate_in_transaction(db, source, *version, options);
  if (!s) {
    (void)db.exec("ROLLBACK");
    return s;
  }
  if (auto c = db.exec("COMMIT"); !c) return c;
  return prune(db, source);
}

Result<std::vector<SourceIndex>> read_source_indexes(Database& db, const SourceSql& source) {
  std::vector<SourceIndex> out;
  for (const auto& index : source.source_index_ddl()) {
    Statement q;
    if (auto s =
            q.prepare(db, fmt::format("SELECT 1 FROM {}.sqlite_schema WHERE type = 'index' AND name = ?1",
                                      source_schema(source)));
        !s)
      return std::unexpected(s.error());
    q.bind(1, std::string_view(index.name));
    auto row = q.step("reading the source indexes");
    if (!row) return std::unexpected(row.error());
    out.push_back({index.name, *row, index.sql});
  }
  return out;
}

Status check_current(Database& db) {
  auto version = read_version(db);
  if (!version) return std::unexpected(version.error());
  if (*version > k_schema_version) return newer_than_us(db, *version);
  if (*version == 0) {
    return fail(ErrorCode::configuration,
                fmt::format("sqlite {}: no lens-embed tables in this database; run `lens-embed init` first",
                            db.path()));
  }
  if (*version < k_schema_version) {
    return fail(
        ErrorCode::configuration,
        fmt::format("sqlite {}: lens-embed's tables are at schema version {}, this lens-embed needs {}; "
                    "run `lens-embed init` to upgrade them",
                    db.path(), *version, k_schema_version));
  }
  return {};
}

}  // namespace lens::store::sqlite
