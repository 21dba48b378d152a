// Versioned, idempotent migrations of the SQLite store (schema.sql.h), and the checks of
// what the store needs in the file: the source table and, read-only, a current schema.
#pragma once

#include <vector>

#include "store/source_sql.h"
#include "store/sqlite/database.h"
#include "store/store.h"

namespace lens::store::sqlite {

// The schema version this binary creates and understands.
inline constexpr int k_schema_version = 5;

struct MigrateOptions {
  // `init`: also create the two indexes the pending query needs on `messages`, when missing.
  bool source_indexes = false;
};

// Brings lens-embed's tables to k_schema_version in one IMMEDIATE transaction (so two
// processes migrate one after the other). A current schema runs no DDL and takes no write
// lock. A lens-embed v1 file (its tables, and the old `schema_migrations` beside them, which
// is left as it is) is upgraded in place; an application's own `schema_migrations` is never
// read. Never creates the source table.
// On success: the schema is current. On failure: nothing of it committed; a missing source
// table or column, or a database with a newer version, is configuration; other errors as
// classify() says.
[[nodiscard]] util::Status migrate(Database& db, const SourceSql& source, const MigrateOptions& options);

// Reads the mapped source relation from the catalog (sqlite_schema, pragma_table_info) into
// `source` (SourceSql::adopt_catalog): whether it is there, its columns, the key's type.
// Called when the store opens, in every mode, before any statement reads the source.
// On failure: configuration naming the missing relation or mapped column.
[[nodiscard]] util::Status inspect_source(Database& db, SourceSql& source);

// The indexes the pending query needs on the source (SourceSql::source_index_ddl) and
// whether an index of each name exists in the relation's database.
[[nodiscard]] util::Result<std::vector<SourceIndex>> read_source_indexes(Database& db,
                                                                         const SourceSql& source);

// For read-only opens: no DDL, no write. On success: lens-embed's schema is at
// k_schema_version (inspect_source checks the source). On failure: configuration saying to run `lens-embed
// init` (no tables, or an older version) or to upgrade lens-embed (a newer one).
[[nodiscard]] util::Status check_current(Database& db);

}  // namespace lens::store::sqlite
