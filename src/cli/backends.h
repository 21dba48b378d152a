// The only place that picks concrete backends: a Store from a database URL, a Provider
// from the settings.
#pragma once

#include <memory>
#include <string>

#include "cli/settings.h"
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
// On failure: invalid_argument starting with "--db" and listing the accepted forms.
[[nodiscard]] util::Result<DatabaseTarget> parse_database_url(const std::string& url);

struct StoreOptions {
  // read_only (status, failures, search): no DDL, no file, no lock; read_write (run):
  // a SQLite file must exist; create (init --create). store/store.h, AccessMode.
  store::AccessMode access = store::AccessMode::read_only;
  bool wait_for_writer = true;  // SQLite: wait for another run's writer lock (false: --no-wait)
  std::string worker_id;        // host:pid, for claims
  bool claims = false;          // PostgreSQL: split work with other workers through leases
  bool hnsw_index = false;      // init --index hnsw (PostgreSQL with pgvector)
  int vector_dimensions = 0;    // PostgreSQL with pgvector: vector(N) for a new table
  bool source_indexes = false;  // init --source-indexes: the indexes the pending query needs
  bool notify_trigger = false;  // init: PostgreSQL's --follow NOTIFY trigger on the source
  core::SourceMapping mapping;  // [source]/[output]: the relation and columns the store reads
};

// Opens (does not migrate) the database `url` names. The caller owns the store; a store is
// used by one thread at a time (store.h).
// On failure: parse_database_url's error, or the store's (connection, authentication, a
// mapped table or column that is missing); configuration for an [output] schema other than
// "" or "main" on SQLite.
[[nodiscard]] util::Result<std::unique_ptr<store::Store>> open_store(const std::string& url,
                                                                     const StoreOptions& options);

// A client for the configured provider, sending `settings.model` with
// `provider_settings.dimensions` or else the model's default size.
// REQUIRES: settings.provider_settings (make_settings with Uses::provider).
// On failure: invalid_argument when an OpenAI-compatible provider has no base URL or no API
// key (naming the variable to set), or make_openai_provider's error.
[[nodiscard]] util::Result<std::unique_ptr<provider::Provider>> make_provider(const Settings& settings);

}  // namespace lens::cli
