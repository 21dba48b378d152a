// Migrations of the SQLite store; see migrations.h.
#include "store/sqlite/migrations.h"

#include <fmt/core.h>

#include "store/sqlite/schema.sql.h"

namespace lens::store::sqlite {

util::Status migrate(Database& db) {
  if (auto s = db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                       "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))");
      !s)
    return s;
  if (auto s = db.exec("BEGIN IMMEDIATE"); !s) return s;
  auto version = db.scalar_int("SELECT coalesce(max(version), 0) FROM schema_migrations");
  if (!version) {
    (void)db.exec("ROLLBACK");
    return std::unexpected(version.error());
  }
  if (*version > k_schema_version) {
    (void)db.exec("ROLLBACK");
    return util::fail(util::ErrorCode::configuration,
                      fmt::format("sqlite: {} has schema version {}, newer than this lens-embed "
                                  "understands ({}); upgrade lens-embed",
                                  db.path(), *version, k_schema_version));
  }
  if (*version < 1) {
    if (auto s = db.exec(sqlite_schema::k_v1); !s) {
      (void)db.exec("ROLLBACK");
      return s;
    }
    if (auto s = db.exec("INSERT INTO schema_migrations (version) VALUES (1)"); !s) {
      (void)db.exec("ROLLBACK");
      return s;
    }
  }
  return db.exec("COMMIT");
}

}  // namespace lens::store::sqlite
