// The only place that picks concrete backends: a Store from a database URL, a Provider
// from the configuration.
#pragma once

#include <memory>
#include <string>

#include "cli/config.h"
#include "provider/provider.h"
#include "store/store.h"

namespace lens::cli {

enum class DatabaseKind { sqlite, postgres };

struct DatabaseTarget {
  DatabaseKind kind = DatabaseKind::sqlite;
  std::string location;  // SQLite path, or libpq conninfo/URI
};

// `sqlite:PATH`, `sqlite://PATH`, a file path ending in .db/.sqlite/.sqlite3 → SQLite;
// postgres://, postgresql://, or a libpq key=value string → PostgreSQL.
[[nodiscard]] util::Result<DatabaseTarget> parse_database_url(const std::string& url);

struct StoreOptions {
  std::string worker_id;      // host:pid, for claims
  bool claims = false;        // PostgreSQL: split work with other workers through leases
  bool hnsw_index = false;    // init --index hnsw (PostgreSQL with pgvector)
  int vector_dimensions = 0;  // PostgreSQL with pgvector: vector(N) for a new table
};

[[nodiscard]] util::Result<std::unique_ptr<store::Store>> open_store(const DatabaseTarget& target,
                                                                     const StoreOptions& options);

[[nodiscard]] util::Result<std::unique_ptr<provider::Provider>> make_provider(const Config& config,
                                                                              int default_dimensions);

}  // namespace lens::cli
