// Versioned, idempotent migrations of the SQLite store (schema.sql.h).
#pragma once

#include "store/sqlite/database.h"

namespace lens::store::sqlite {

// The schema version this binary creates and understands.
inline constexpr int k_schema_version = 1;

// Brings the schema to k_schema_version in one IMMEDIATE transaction (so two processes
// migrate one after the other). On success: the schema is current. On failure: nothing
// of it committed; a database with a newer version is configuration ("upgrade
// lens-embed"), other errors as classify() says.
[[nodiscard]] util::Status migrate(Database& db);

}  // namespace lens::store::sqlite
