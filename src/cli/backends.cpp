// Backend selection: the typed settings become store and provider options here, once.
#include "cli/backends.h"

#include <fmt/core.h>
#include <algorithm>
#include <cstdlib>

#include "provider/local_hash.h"
#include "provider/openai/openai_provider.h"
#include "store/postgres/postgres_store.h"
#include "store/sqlite/sqlite_store.h"

namespace lens::cli {

util::Result<DatabaseTarget> parse_database_url(const std::string& url) {
  auto strip = [&](std::string_view prefix) { return url.substr(prefix.size()); };
  if (url.starts_with("sqlite://")) return DatabaseTarget{DatabaseKind::sqlite, strip("sqlite://")};
  if (url.starts_with("sqlite:")) return DatabaseTarget{DatabaseKind::sqlite, strip("sqlite:")};
  if (store::looks_like_postgres_conninfo(url)) {
    return DatabaseTarget{DatabaseKind::postgres, url};
  }
  for (std::string_view ext : {".db", ".sqlite", ".sqlite3"}) {
    if (url.ends_with(ext)) return DatabaseTarget{DatabaseKind::sqlite, url};
  }
  return util::fail(util::ErrorCode::invalid_argument,
                    fmt::format("--db: cannot tell what database \"{}\" is; use sqlite:PATH, "
                                "postgresql://USER@HOST/DB or a libpq string like \"host=H dbname=D\"",
                                url));
}

util::Result<std::unique_ptr<store::Store>> open_store(const std::string& url, const StoreOptions& options) {
  auto target = parse_database_url(url);
  if (!target) return std::unexpected(target.error());
  const auto& output = options.mapping.output_schema();
  // PostgreSQL puts lens-embed's tables in that schema (postgres/migrations.h); a SQLite
  // database other than main would be an ATTACHed file that every command must attach the
  // same way, which a URL cannot say.
  if (target->kind == DatabaseKind::sqlite && !output.value.empty() && output.value != "main") {
    return util::fail(util::ErrorCode::configuration,
                      fmt::format("{}: [output] schema = {}: SQLite keeps lens-embed's tables in the main "
                                  "database of the file; remove the key or set it to \"main\" (a schema "
                                  "of its own is for PostgreSQL)",
                                  output.source, core::toml_text(output.value)));
  }
  if (target->kind == DatabaseKind::sqlite) {
    if (target->location.empty()) {
      return util::fail(util::ErrorCode::invalid_argument, "--db sqlite: needs a path, e.g. sqlite:lens.db");
    }
    store::SqliteOptions sqlite;
    sqlite.path = target->location;
    sqlite.access = options.access;
    sqlite.wait_for_writer = options.wait_for_writer;
    sqlite.source_indexes = options.source_indexes;
    sqlite.mapping = options.mapping;
    return store::open_sqlite_store(sqlite);
  }
  store::PostgresOptions pg;
  pg.conninfo = target->location;
  pg.access = options.access;
  pg.use_claims = options.claims;
  pg.worker_id = options.worker_id;
  pg.hnsw_index = options.hnsw_index;
  pg.vector_dimensions = options.vector_dimensions;
  // LENS_PG_COPY=off: stage rows with INSERTs, for servers without COPY FROM STDIN (PGlite).
  const char* copy = std::getenv("LENS_PG_COPY");
  pg.use_copy = !(copy && std::string_view(copy) == "off");
  pg.source_indexes = options.source_indexes;
  pg.notify_trigger = options.notify_trigger;
  pg.mapping = options.mapping;
  return store::open_postgres_store(pg);
}

util::Result<std::unique_ptr<provider::Provider>> make_provider(const Settings& settings) {
  const ProviderSettings& p = *settings.provider_settings;
  if (p.kind == ProviderKind::local_hash) {
    return std::unique_ptr<provider::Provider>(
        std::make_unique<provider::LocalHashProvider>(settings.dimensions));
  }
  if (p.base_url.empty()) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("provider {} has no base URL: pass --base-url URL or set {}_BASE_URL",
                                  p.name, p.api_key_env.substr(0, p.api_key_env.rfind("_API_KEY"))));
  }
  if (p.api_key.empty()) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("provider {} needs an API key: set {} (in the environment or .env)", p.name,
                                  p.api_key_env));
  }
  provider::OpenAiOptions o;
  o.base_url = p.base_url;
  o.api_key = p.api_key;
  o.model = p.model.empty() ? settings.model : p.model;
  o.encoding_format = p.encoding_format;
  o.request_timeout = p.timeout;
  o.verify_tls = p.verify_tls;
  o.ca_cert = p.ca_cert;
  // HTTP/1.1 needs one connection per request in flight.
  o.max_connections = std::max(4, p.concurrency * 2);
  return provider::make_openai_provider(o);
}

}  // namespace lens::cli
