// Versioned, idempotent migrations of lens-embed's PostgreSQL tables (schema.sql.h), and
// what the store reads back from the schema: the embedding column's type.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/postgres/connection.h"
#include "store/postgres/postgres_store.h"
#include "store/source_sql.h"

namespace lens::store::postgres {

// The schema version this binary creates and understands.
inline constexpr int k_schema_version = 5;

// Brings lens-embed's tables to k_schema_version with what `options` asks for (vector type
// and dimensions of a new table; `init`'s source indexes, NOTIFY trigger and HNSW index),
// in one transaction under an advisory lock so concurrent workers migrate one after the
// other. A schema that is already current and complete runs no DDL at all, so a
// least-privilege role can call it. Never creates the source table. One attempt.
// On success: the schema is current. On failure: nothing of it committed; a missing source
// table or column, or a database with a newer version ("upgrade lens-embed"), is
// configuration; other errors as classified by the connection.
// The tables follow `source`: the key's type, and a foreign key only when the source is a
// table keyed by its id; init's indexes and trigger go on the source only when it is a table.
[[nodiscard]] util::Status migrate(Connection& conn, const SourceSql& source, const PostgresOptions& options);

// Reads the mapped source relation from the catalog (pg_class, pg_attribute, pg_index) into
// `source` (SourceSql::adopt_catalog): whether it is there, table or view, its columns, the
// key's type and whether the id alone is unique. With [output] schema, an unqualified relation
// is first pinned to the schema the search_path finds it in, [output] schema left out. Called
// when the store connects, in every mode, before any statement reads the source.
// On failure: configuration naming the missing relation or mapped column.
[[nodiscard]] util::Status inspect_source(Connection& conn, SourceSql& source);

// For read-only opens: no DDL, no write. On success: lens-embed's schema is at
// k_schema_version (inspect_source checks the source). On failure: configuration saying to run `lens-embed
// init` (no tables, or an older version) or to upgrade lens-embed (a newer one).
[[nodiscard]] util::Status check_current(Connection& conn, const SourceSql& source);

// `name` (a table or index of lens-embed's) as catalog lookups must spell it: in [output]
// schema when there is one ("\"lens_out\".message_embeddings"), else bare (the search_path
// finds it, as it always did).
[[nodiscard]] std::string own_table(const SourceSql& source, std::string_view name);

// The statement every session of the store runs first when [output] schema is set: the
// search_path becomes "<output schema>, <the session's own search_path>", so lens-embed's
// unqualified table names (and CREATE) mean its own schema, while what the user's
// search_path found before is still found. inspect_source pins an unqualified source
// relation to its schema. "" when [output] schema is empty.
[[nodiscard]] std::string output_session_sql(const core::SourceMapping& mapping);

// The indexes the pending query needs on the source (SourceSql::source_index_ddl, created
// CONCURRENTLY) and whether an index of each name exists in the relation's schema.
[[nodiscard]] util::Result<std::vector<SourceIndex>> read_source_indexes(Connection& conn,
                                                                         const SourceSql& source);

// The GRANT statements the connected role needs for `run` and does not hold: SELECT on the
// source relation; on lens-embed's tables what docs/OPERATIONS.md grants the least-privilege
// role. One statement per object, naming only the missing privileges.
[[nodiscard]] util::Result<std::vector<std::string>> missing_privileges(Connection& conn,
                                                                        const SourceSql& source);

// The declared type of message_embeddings.embedding, e.g. "real[]", "vector(4)".
// On failure: not_found when the column is missing, else the statement's error.
[[nodiscard]] util::Result<std::string> read_embedding_type(Connection& conn);

// True for pgvector column types (vector, halfvec, possibly schema-qualified).
[[nodiscard]] bool is_pgvector(std::string_view type);

}  // namespace lens::store::postgres
