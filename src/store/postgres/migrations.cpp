// Migrations of the PostgreSQL store; see migrations.h.
#include "store/postgres/migrations.h"

#include <fmt/core.h>
#include <set>

#include "store/postgres/schema.sql.h"
#include "store/shared_sql.h"
#include "util/log.h"

namespace lens::store::postgres {
namespace {

using util::ErrorCode;
using util::fail;
using util::Result;
using util::Status;

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The source table (through the search path) and its columns. No table: no rows.
Status check_source(Connection& conn) {
  auto r = conn.exec("reading the source table",
                     "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
                     "AND a.attnum > 0 AND NOT a.attisdropped",
                     Params().text(k_source_table));
  if (!r) return std::unexpected(r.error());
  if (r->size() == 0) {
    return fail(ErrorCode::configuration,
                fmt::format("postgres: the source table `{}` does not exist (in the search path of this "
                            "connection); lens-embed reads Lens's messages and never creates them (check "
                            "--db and its database and search_path)",
                            k_source_table));
  }
  std::set<std::string> columns;
  for (int i = 0; i < r->size(); ++i)
    columns.insert(r->text(i, 0));
  std::string missing;
  for (auto c : k_source_columns)
    if (!columns.contains(std::string(c))) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", c);
  if (!missing.empty()) {
    return fail(ErrorCode::configuration,
                fmt::format("postgres: the source table `{}` has no column {}", k_source_table, missing));
  }
  return {};
}

// lens-embed's schema version: 0 without our migrations table.
Result<int> read_version(Connection& conn) {
  auto exists =
      conn.exec("checking the schema", "SELECT to_regclass('lens_embed_schema_migrations') IS NOT NULL");
  if (!exists) return std::unexpected(exists.error());
  if (!exists->boolean(0, 0)) return 0;
  auto version =
      conn.exec("checking the schema", "SELECT coalesce(max(version), 0) FROM lens_embed_schema_migrations");
  if (!version) return std::unexpected(version.error());
  return static_cast<int>(version->integer(0, 0));
}

Status newer_than_us(int version) {
  return fail(ErrorCode::configuration,
              fmt::format("postgres: the database has lens-embed schema version {}, newer than this "
                          "lens-embed understands ({}); upgrade lens-embed",
                          version, k_schema_version));
}

// True when the schema is at this version and has everything the options ask for.
Result<bool> schema_is_current(Connection& conn, const PostgresOptions& options) {
  auto version = read_version(conn);
  if (!version) return std::unexpected(version.error());
  if (*version != k_schema_version) return false;
  auto r = conn.exec("checking the schema",
                     "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'lens_embed_messages_changed'), "
                     "to_regclass('message_embeddings_hnsw') IS NOT NULL, "
                     "to_regclass('messages_user_keyset') IS NOT NULL AND "
                     "to_regclass('messages_conversation_order') IS NOT NULL");
  if (!r) return std::unexpected(r.error());
  if (options.notify_trigger && !r->boolean(0, 0)) return false;
  if (options.hnsw_index && !r->boolean(0, 1)) return false;
  if (options.source_indexes && !r->boolean(0, 2)) return false;
  return true;
}

// real[] unless pgvector is there (or can be created) and the dimension is known.
Result<std::string> choose_embedding_type(Connection& conn, const PostgresOptions& options) {
  if (!options.prefer_pgvector || options.vector_dimensions <= 0) return std::string("real[]");
  auto have = conn.exec("detecting pgvector",
                        "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'vector'), "
                        "(SELECT count(*) FROM pg_available_extensions WHERE name = 'vector')");
  if (!have) return std::unexpected(have.error());
  if (have->integer(0, 0) == 0) {
    if (have->integer(0, 1) == 0) return std::string("real[]");
    // Available but not created: try, inside a savepoint so a missing privilege
    // only costs the fast path.
    if (auto s = conn.exec_simple("detecting pgvector", "SAVEPOINT lens_pgvector"); !s)
      return std::unexpected(s.error());
    if (auto s = conn.exec_simple("creating pgvector", "CREATE EXTENSION IF NOT EXISTS vector"); !s) {
      util::log_info("postgres: pgvector is available but cannot be created ({}); using real[]",
                     s.error().message);
      if (auto r = conn.exec_simple("detecting pgvector", "ROLLBACK TO SAVEPOINT lens_pgvector"); !r)
        return std::unexpected(r.error());
      return std::string("real[]");
    }
  }
  // halfvec: vector's HNSW index stops at 2000 dimensions, halfvec's at 4000.
  return fmt::format("{}({})", options.vector_dimensions > 2000 ? "halfvec" : "vector",
                     options.vector_dimensions);
}

Status create_hnsw_index(Connection& conn) {
  auto type = read_embedding_type(conn);
  if (!type) return std::unexpected(type.error());
  if (!is_pgvector(*type)) {
    util::log_warn("postgres: --index hnsw needs a pgvector column; embedding is {}, no index created",
                   *type);
    return {};
  }
  const char* ops = starts_with(*type, "halfvec") ? "halfvec_cosine_ops" : "vector_cosine_ops";
  return conn.exec_simple("creating the HNSW index",
                          fmt::format("CREATE INDEX IF NOT EXISTS message_embeddings_hnsw ON "
                                      "message_embeddings USING hnsw (embedding {})",
                                      ops));
}

Status migrate_in_transaction(Connection& conn, const PostgresOptions& options) {
  if (auto r = conn.exec("migrating",
                         fmt::format("SELECT pg_advisory_xact_lock({})", postgres_schema::k_migration_lock));
      !r)
    return std::unexpected(r.error());
  auto version = conn.exec("migrating", "SELECT coalesce(max(version), 0) FROM lens_embed_schema_migrations");
  if (!version) return std::unexpected(version.error());
  const auto current = version->integer(0, 0);
  if (current > k_schema_version) return newer_than_us(static_cast<int>(current));
  if (current < 1) {
    auto type = choose_embedding_type(conn, options);
    if (!type) return std::unexpected(type.error());
    std::string sql = postgres_schema::k_v1;
    const std::string placeholder = "{embedding_type}";
    sql.replace(sql.find(placeholder), placeholder.size(), *type);
    if (auto s = conn.exec_simple("creating schema v1", sql); !s) return s;
    if (*type == "real[]") {
      if (auto s = conn.exec_simple("creating schema v1", postgres_schema::k_real_array_storage); !s)
        return s;
    }
    if (auto r = conn.exec("creating schema v1",
                           "INSERT INTO lens_embed_schema_migrations (version, note) VALUES (1, $1)",
                           Params().text("embedding " + *type));
        !r)
      return std::unexpected(r.error());
    util::log_info("postgres: creating lens-embed's tables (embedding {})", *type);
  }
  if (current < 2) {
    if (auto s = conn.exec_simple("upgrading to schema v2", postgres_schema::k_v2); !s) return s;
    // A backlog parked by v1 (every transient failure was terminal) is due at once.
    if (auto s =
            conn.exec_simple("upgrading to schema v2",
                             fmt::format("UPDATE embedding_failures SET next_attempt_at = last_failed_at "
                                         "WHERE reason IN ({})",
                                         reasons_sql_list(core::FailureClass::transient)));
        !s)
      return s;
    if (auto r = conn.exec("upgrading to schema v2",
                           "INSERT INTO lens_embed_schema_migrations (version, note) VALUES (2, $1)",
                           Params().text("failure classes, run errors, claim liveness, dimensions index"));
        !r)
      return std::unexpected(r.error());
    if (current >= 1) util::log_info("postgres: upgrading lens-embed's tables to schema v2");
  }
  if (options.source_indexes) {
    if (auto s = conn.exec_simple("creating the source indexes", postgres_schema::k_source_indexes); !s)
      return s;
  }
  if (options.notify_trigger) {
    if (auto s = conn.exec_simple("installing the change trigger", postgres_schema::k_notify_trigger); !s)
      return s;
  }
  if (options.hnsw_index) return create_hnsw_index(conn);
  return {};
}

}  // namespace

Status migrate(Connection& conn, const PostgresOptions& options) {
  if (auto s = check_source(conn); !s) return s;
  // A schema that is already current needs no DDL, so a least-privilege role (no CREATE,
  // not the owner) can run `run` and `status` after the owner ran `init`.
  if (auto current = schema_is_current(conn, options); !current) {
    return std::unexpected(current.error());
  } else if (*current) {
    return {};
  }
  if (auto s = conn.exec_simple("migrating", postgres_schema::k_migrations_table); !s) return s;
  if (auto s = conn.exec_simple("migrating", "BEGIN"); !s) return s;
  auto s = migrate_in_transaction(conn, options);
  if (!s) {
    conn.rollback();
    return s;
  }
  return conn.exec_simple("migrating", "COMMIT");
}

Status check_current(Connection& conn) {
  if (auto s = check_source(conn); !s) return s;
  auto version = read_version(conn);
  if (!version) return std::unexpected(version.error());
  if (*version > k_schema_version) return newer_than_us(*version);
  if (*version == 0) {
    return fail(ErrorCode::configuration,
                "postgres: no lens-embed tables in this database (or its search_path); run `lens-embed init` "
                "first");
  }
  if (*version < k_schema_version) {
    return fail(
        ErrorCode::configuration,
        fmt::format("postgres: lens-embed's tables are at schema version {}, this lens-embed needs {}; "
                    "run `lens-embed init` to upgrade them",
                    *version, k_schema_version));
  }
  return {};
}

Result<std::string> read_embedding_type(Connection& conn) {
  auto r = conn.exec("reading the schema",
                     "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                     "WHERE attrelid = 'message_embeddings'::regclass AND attname = 'embedding'");
  if (!r) return std::unexpected(r.error());
  if (r->size() != 1)
    return fail(ErrorCode::not_found, "postgres: message_embeddings has no embedding column");
  return r->text(0, 0);
}

bool is_pgvector(std::string_view type) {
  const auto dot = type.rfind('.');  // format_type may schema-qualify
  const auto bare = dot == std::string_view::npos ? type : type.substr(dot + 1);
  return starts_with(bare, "vector") || starts_with(bare, "halfvec");
}

}  // namespace lens::store::postgres
