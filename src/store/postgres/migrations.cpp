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

// `name` in the relation's schema, quoted, for to_regclass and CREATE INDEX.
std::string in_source_schema(const SourceSql& source, const std::string& name) {
  const auto& schema = source.relation().schema;
  return schema.empty() ? core::quote_sql_name(name)
                        : core::quote_sql_name(schema) + "." + core::quote_sql_name(name);
}

// The source indexes for `source` (SourceSql::source_index_ddl), as one script.
std::string source_indexes_sql(const SourceSql& source) {
  std::string sql;
  for (const auto& index : source.source_index_ddl())
    sql += index.sql + "\n";
  return sql;
}

// lens-embed's v1 tables for `source`: the fixed statements for the default schema, else
// with the key's type and, when the source is a table keyed by its id, the foreign key.
std::string v1_tables(const SourceSql& source, const std::string& embedding_type) {
  std::string sql = postgres_schema::k_v1;
  const auto replace_all = [&](std::string_view from, const std::string& to) {
    for (auto at = sql.find(from); at != std::string::npos; at = sql.find(from, at + to.size()))
      sql.replace(at, from.size(), to);
  };
  replace_all("{embedding_type}", embedding_type);
  if (source.is_default_schema()) return sql;
  const std::string fk = source.foreign_key() ? source.expand(" REFERENCES @rel(@id) ON DELETE CASCADE") : "";
  replace_all("uuid        NOT NULL REFERENCES messages(id) ON DELETE CASCADE",
              source.key_type() + " NOT NULL" + fk);
  replace_all("assistant_message_id uuid,", "assistant_message_id " + source.key_type() + ",");
  replace_all("user_message_id uuid        NOT NULL,", "user_message_id " + source.key_type() + " NOT NULL,");
  return sql;
}

// lens-embed's schema version: 0 without our migrations table (in [output] schema when set:
// a table of that name further down the search_path is another lens-embed's).
Result<int> read_version(Connection& conn, const SourceSql& source) {
  const std::string table = own_table(source, "lens_embed_schema_migrations");
  auto exists = conn.exec("checking the schema", "SELECT to_regclass($1) IS NOT NULL", Params().text(table));
  if (!exists) return std::unexpected(exists.error());
  if (!exists->boolean(0, 0)) return 0;
  auto version = conn.exec("checking the schema", "SELECT coalesce(max(version), 0) FROM " + table);
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
Result<bool> schema_is_current(Connection& conn, const SourceSql& source, const PostgresOptions& options) {
  auto version = read_version(conn, source);
  if (!version) return std::unexpected(version.error());
  if (*version != k_schema_version) return false;
  auto r = conn.exec("checking the schema",
                     "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'lens_embed_messages_changed' "
                     "AND tgrelid = to_regclass($1)), "
                     "to_regclass($5) IS NOT NULL, "
                     "to_regclass($2) IS NOT NULL AND ($4 OR to_regclass($3) IS NOT NULL)",
                     Params()
                         .text(core::quote_sql_name(source.relation()))
                         .text(in_source_schema(source, source.keyset_index()))
                         .text(in_source_schema(source, source.order_index()))
                         .boolean(source.mapping().reply().value.kind == core::ReplyKind::none)
                         .text(own_table(source, "message_embeddings_hnsw")));
  if (!r) return std::unexpected(r.error());
  // A view gets neither trigger nor indexes: nothing to wait for.
  if (options.notify_trigger && source.is_table() && !r->boolean(0, 0)) return false;
  if (options.hnsw_index && !r->boolean(0, 1)) return false;
  if (options.source_indexes && source.is_table() && !r->boolean(0, 2)) return false;
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

// Versions after 2, one DDL block each: a new version is a line here and its SQL in
// schema.sql.h.
struct LaterVersion {
  int version;
  const char* sql;
  const char* note;
};
inline constexpr LaterVersion k_later_versions[] = {
    {3, postgres_schema::k_v3, "fenced count of runs"},
    {4, postgres_schema::k_v4, "input definitions"},
    {5, postgres_schema::k_v5, "batch API ledger"},
};
static_assert(std::size(k_later_versions) + 2 == k_schema_version);

Status migrate_in_transaction(Connection& conn, const SourceSql& source, const PostgresOptions& options) {
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
    if (auto s = conn.exec_simple("creating schema v1", v1_tables(source, *type)); !s) return s;
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
  // Later versions are one DDL block each, applied in order.
  for (const auto& step : k_later_versions) {
    if (current >= step.version) continue;
    const auto what = fmt::format("upgrading to schema v{}", step.version);
    // {key_type}: the type of the source's key (batch items refer to messages).
    std::string sql = step.sql;
    for (auto at = sql.find("{key_type}"); at != std::string::npos; at = sql.find("{key_type}", at))
      sql.replace(at, 10, source.key_type());
    if (auto s = conn.exec_simple(what, sql); !s) return s;
    if (auto r = conn.exec(what, "INSERT INTO lens_embed_schema_migrations (version, note) VALUES ($1, $2)",
                           Params().integer(step.version).text(step.note));
        !r)
      return std::unexpected(r.error());
    if (current >= 1) util::log_info("postgres: upgrading lens-embed's tables to schema v{}", step.version);
  }
  if (options.source_indexes && source.is_table()) {
    if (auto s = conn.exec_simple("creating the source indexes", source_indexes_sql(source)); !s) return s;
  }
  if (options.notify_trigger && source.is_table()) {
    std::string sql = postgres_schema::k_notify_trigger;
    const std::string_view on = "ON messages";
    sql.replace(sql.find(on), on.size(), "ON " + core::quote_sql_name(source.relation()));
    if (auto s = conn.exec_simple("installing the change trigger", sql); !s) return s;
  }
  if (options.hnsw_index) return create_hnsw_index(conn);
  return {};
}

// Rows of user messages deleted from a source the foreign key cannot follow (a view) or
// filtered out since: deleted at every migrate, i.e. when a run starts.
Status prune(Connection& conn, const SourceSql& source) {
  const std::string sql = source.prune_sql();
  if (sql.empty()) return {};
  return conn.exec_simple("removing rows of deleted messages", sql);
}

}  // namespace

std::string own_table(const SourceSql& source, std::string_view name) {
  const auto& output = source.mapping().output_schema().value;
  if (output.empty()) return std::string(name);
  return core::quote_sql_name(output) + "." + std::string(name);
}

std::string output_session_sql(const core::SourceMapping& mapping) {
  const auto& output = mapping.output_schema().value;
  if (output.empty()) return {};
  // The session's own search_path (role, database, conninfo options) stays behind ours.
  const std::string quoted = sql_literal(core::quote_sql_name(output));
  return fmt::format(
      "SELECT set_config('search_path', CASE WHEN current_setting('search_path') = '' THEN {0} ELSE {0} "
      "|| ', ' || current_setting('search_path') END, false)",
      quoted);
}

Status inspect_source(Connection& conn, SourceSql& source) {
  // An unqualified relation is pinned to the schema the search_path finds it in, [output]
  // schema left out: a table of that name among lens-embed's own is never the source.
  if (const auto& output = source.mapping().output_schema().value;
      !output.empty() && source.relation().schema.empty()) {
    auto pin = conn.exec("reading the source table",
                         "SELECT s.nsp FROM unnest(current_schemas(true)) WITH ORDINALITY AS s(nsp, ord) "
                         "JOIN pg_namespace n ON n.nspname = s.nsp JOIN pg_class c ON c.relnamespace = n.oid "
                         "AND c.relname = $1 WHERE s.nsp <> $2 ORDER BY s.ord LIMIT 1",
                         Params().text(source.relation().name).text(output));
    if (!pin) return std::unexpected(pin.error());
    if (pin->size() > 0) source.pin_schema(pin->text(0, 0));
  }
  auto r =
      conn.exec("reading the source table",
                "SELECT c.relkind IN ('r', 'p'), a.attname, format_type(a.atttypid, a.atttypmod), "
                "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR "
                "  i.indisunique) AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL) "
                "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE c.oid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                Params().text(core::quote_sql_name(source.relation())));
  if (!r) return std::unexpected(r.error());
  SourceCatalog catalog;
  catalog.exists = r->size() > 0;
  for (int i = 0; i < r->size(); ++i) {
    catalog.is_table = r->boolean(i, 0);
    catalog.columns.push_back(r->text(i, 1));
    catalog.types.push_back(r->text(i, 2));
    if (r->text(i, 1) == source.mapping().id().value) catalog.key_is_unique = r->boolean(i, 3);
  }
  return source.adopt_catalog(catalog, "postgres");
}

Status migrate(Connection& conn, const SourceSql& source, const PostgresOptions& options) {
  // A schema that is already current needs no DDL, so a least-privilege role (no CREATE,
  // not the owner) can run `run` and `status` after the owner ran `init`.
  if (auto current = schema_is_current(conn, source, options); !current) {
    return std::unexpected(current.error());
  } else if (*current) {
    return prune(conn, source);
  }
  // [output] schema first: the session's search_path starts with it, so every CREATE below
  // lands there once it exists (and in the next schema of the path while it does not).
  if (const auto& output = source.mapping().output_schema().value; !output.empty()) {
    if (auto s = conn.exec_simple("creating [output] schema",
                                  "CREATE SCHEMA IF NOT EXISTS " + core::quote_sql_name(output));
        !s)
      return s;
  }
  if (auto s = conn.exec_simple("migrating", postgres_schema::k_migrations_table); !s) return s;
  if (auto s = conn.exec_simple("migrating", "BEGIN"); !s) return s;
  auto s = migrate_in_transaction(conn, source, options);
  if (!s) {
    conn.rollback();
    return s;
  }
  if (auto c = conn.exec_simple("migrating", "COMMIT"); !c) return c;
  return prune(conn, source);
}

Status check_current(Connection& conn, const SourceSql& source) {
  auto version = read_version(conn, source);
  if (!version) return std::unexpected(version.error());
  if (*version > k_schema_version) return newer_than_us(*version);
  if (*version == 0) {
    const auto& output = source.mapping().output_schema();
    if (!output.value.empty()) {
      return fail(ErrorCode::configuration,
                  fmt::format("postgres: no lens-embed tables in schema {} ([output] schema, {}); run "
                              "`lens-embed init` first",
                              core::quote_sql_name(output.value), output.source));
    }
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

Result<std::vector<SourceIndex>> read_source_indexes(Connection& conn, const SourceSql& source) {
  std::vector<SourceIndex> out;
  const auto ddl = source.source_index_ddl(true);
  for (const auto& index : ddl) {
    auto r = conn.exec("reading the source indexes", "SELECT to_regclass($1) IS NOT NULL",
                       Params().text(in_source_schema(source, index.name)));
    if (!r) return std::unexpected(r.error());
    out.push_back({index.name, r->boolean(0, 0), index.sql});
  }
  return out;
}

Result<std::vector<std::string>> missing_privileges(Connection& conn, const SourceSql& source) {
  struct Need {
    std::string object;
    std::vector<const char*> privileges;
    bool sequence = false;
  };
  const std::vector<Need> needs = {
      {core::quote_sql_name(source.relation()), {"SELECT"}},
      {own_table(source, "message_embeddings"), {"SELECT", "INSERT", "UPDATE", "DELETE"}},
      {own_table(source, "embedding_failures"), {"SELECT", "INSERT", "UPDATE", "DELETE"}},
      {own_table(source, "embedding_claims"), {"SELECT", "INSERT", "UPDATE", "DELETE"}},
      {own_table(source, "embedding_runs"), {"SELECT", "INSERT", "UPDATE"}},
      {own_table(source, "embedding_runs_id_seq"), {"USAGE"}, true},
      {own_table(source, "lens_embed_input_definitions"), {"SELECT", "INSERT", "UPDATE"}},
      {own_table(source, "embedding_batches"), {"SELECT", "INSERT", "UPDATE"}},
      {own_table(source, "embedding_batch_items"), {"SELECT", "INSERT"}},
      {own_table(source, "lens_embed_schema_migrations"), {"SELECT"}},
  };
  auto user = conn.exec("checking privileges", "SELECT quote_ident(current_user)");
  if (!user) return std::unexpected(user.error());
  std::vector<std::string> out;
  for (const auto& need : needs) {
    std::string missing;
    for (const char* privilege : need.privileges) {
      // A missing object is not a privilege problem (check_current and inspect_source say so).
      auto r = conn.exec("checking privileges",
                         need.sequence ? "SELECT to_regclass($1) IS NULL OR has_sequence_privilege($1, $2)"
                                       : "SELECT to_regclass($1) IS NULL OR has_table_privilege($1, $2)",
                         Params().text(need.object).text(privilege));
      if (!r) return std::unexpected(r.error());
      if (!r->boolean(0, 0)) missing += (missing.empty() ? "" : ", ") + std::string(privilege);
    }
    if (!missing.empty())
      out.push_back(fmt::format("GRANT {} ON {}{} TO {};", missing, need.sequence ? "SEQUENCE " : "",
                                need.object, user->text(0, 0)));
  }
  return out;
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
