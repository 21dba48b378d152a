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

// The source table and its columns, read from pragma_table_info (no table: no rows).
Status check_source(Database& db) {
  Statement q;
  if (auto s = q.prepare(db, "SELECT name FROM pragma_table_info(?1)"); !s) return s;
  q.bind(1, k_source_table);
  std::set<std::string> columns;
  for (;;) {
    auto row = q.step("reading the source table");
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    columns.insert(q.text(0));
  }
  if (columns.empty()) {
    return fail(ErrorCode::configuration,
                fmt::format("sqlite {}: the source table `{}` does not exist; lens-embed reads Lens's "
                            "messages and never creates them (check --db)",
                            db.path(), k_source_table));
  }
  std::string missing;
  for (auto c : k_source_columns)
    if (!columns.contains(std::string(c))) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", c);
  if (!missing.empty()) {
    return fail(ErrorCode::configuration, fmt::format("sqlite {}: the source table `{}` has no column {}",
                                                      db.path(), k_source_table, missing));
  }
  return {};
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

Result<bool> source_indexes_present(Database& db) {
  auto n = db.scalar_int(
      "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN ('messages_user_keyset', "
      "'messages_conversation_order')");
  if (!n) return std::unexpected(n.error());
  return *n == 2;
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

Status migrate_in_transaction(Database& db, int version, const MigrateOptions& options) {
  if (auto s = db.exec(sqlite_schema::k_migrations_table); !s) return s;
  if (version < 1) {
    if (auto s = db.exec(sqlite_schema::k_v1); !s) return s;
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
  if (options.source_indexes) return db.exec(sqlite_schema::k_source_indexes);
  return {};
}

}  // namespace

Status migrate(Database& db, const MigrateOptions& options) {
  if (auto s = check_source(db); !s) return s;
  // Current and complete: no DDL and no write lock, so a `run` next to another process's
  // writes starts without waiting.
  auto version = read_version(db);
  if (!version) return std::unexpected(version.error());
  if (*version > k_schema_version) return newer_than_us(db, *version);
  if (*version == k_schema_version) {
    auto indexes = options.source_indexes ? source_indexes_present(db) : Result<bool>(true);
    if (!indexes) return std::unexpected(indexes.error());
    if (*indexes) return {};
  }
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return s;
  // Another process may have migrated while we waited for the lock: read again.
  version = read_version(db);
  Status s = !version                      ? Status(std::unexpected(version.error()))
             : *version > k_schema_version ? newer_than_us(db, *version)
                                           : migrate_in_transaction(db, *version, options);
  if (!s) {
    (void)db.exec("ROLLBACK");
    return s;
  }
  return db.exec("COMMIT");
}

Status check_current(Database& db) {
  if (auto s = check_source(db); !s) return s;
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
