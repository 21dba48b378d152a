// SQLite Store: the Store interface on the sections of store/sqlite/ (database,
// migrations, pending, writes, reports). WAL mode, prepared statements, one transaction
// per batch.
#include "store/sqlite/sqlite_store.h"

#include <fmt/core.h>
#include <filesystem>

#include "store/source_sql.h"
#include "store/sqlite/batch_ledger.h"
#include "store/sqlite/database.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/pending.h"
#include "store/sqlite/reports.h"
#include "store/sqlite/writer_lock.h"
#include "store/sqlite/writes.h"
#include "store/write_isolation.h"

namespace lens::store {
namespace {

using util::Result;
using util::Status;

// Every call makes one attempt (a locked database is waited for up to 30 s by SQLite's
// busy timeout, then reported as transient): the pipeline owns retries (store.h).
class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteOptions& options, SourceSql source, Status source_ok,
              std::unique_ptr<sqlite::WriterLock> lock, std::unique_ptr<sqlite::Database> db)
      : options_(options),
        source_(std::move(source)),
        source_ok_(std::move(source_ok)),
        lock_(std::move(lock)),
        db_(std::move(db)),
        ledger_(*db_, source_) {}

  Status migrate() override {
    if (!source_ok_) return source_ok_;
    if (options_.access == AccessMode::read_only) return sqlite::check_current(*db_);
    return sqlite::migrate(*db_, source_, {.source_indexes = options_.source_indexes});
  }

  Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                   std::size_t max_items) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return sqlite::next_pending(*db_, source_, scope, cursor, max_items);
  }

  Result<WriteReport> write_batch(const WriteBatch& batch) override {
    return write_isolating_refused_rows(
        batch, "sqlite", [&](const WriteBatch& b) { return sqlite::write_once(*db_, source_, b); });
  }

  Result<std::int64_t> begin_run(const RunRecord& run) override { return sqlite::begin_run(*db_, run); }

  Status finish_run(std::int64_t run_id, core::RunStatus status, const core::RunStats& stats,
                    const std::string& cause) override {
    return sqlite::finish_run(*db_, run_id, status, stats, cause);
  }

  Result<std::int64_t> count_pending(const WorkScope& scope) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return sqlite::count_pending(*db_, source_, scope);
  }

  Result<StatusReport> status(std::size_t recent_runs) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return sqlite::read_status(*db_, source_, recent_runs);
  }

  Result<std::vector<PairSummary>> pairs() override { return sqlite::read_pairs(*db_); }

  BatchLedger* batch_ledger() override { return &ledger_; }

  Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                              const std::string& model) override {
    return sqlite::read_failures(*db_, provider, model);
  }

  Result<std::vector<SearchHit>> search(const std::string& provider, const std::string& model,
                                        std::span<const float> query, std::size_t k) override {
    return sqlite::search(*db_, source_, provider, model, query, k);
  }

 private:
  SqliteOptions options_;
  SourceSql source_;  // the mapping, with the key type of the catalog
  // What the catalog said of the source: every call that reads it (and migrate) returns a
  // missing table or column instead of meeting it as an SQL error.
  Status source_ok_;
  std::unique_ptr<sqlite::WriterLock> lock_;  // declared first: released after db_ closes
  std::unique_ptr<sqlite::Database> db_;
  sqlite::SqliteBatchLedger ledger_;  // on db_ and source_
};

sqlite::Database::Mode database_mode(AccessMode access) {
  switch (access) {
    case AccessMode::read_only:
      return sqlite::Database::Mode::read_only;
    case AccessMode::read_write:
      return sqlite::Database::Mode::read_write;
    case AccessMode::create:
      break;
  }
  return sqlite::Database::Mode::create;
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options) {
  const std::string& path = options.path;
  // Checked here rather than left to SQLite, so the message can say what to do, and so a
  // mistyped path leaves neither a database nor a lock file behind.
  if (options.access != AccessMode::create) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return util::fail(util::ErrorCode::configuration,
                        fmt::format("sqlite: there is no database at {} (check --db); lens-embed creates one "
                                    "only when asked: `lens-embed init --create --db sqlite:{}`",
                                    path, path));
    }
  }
  std::unique_ptr<sqlite::WriterLock> lock;
  if (options.access != AccessMode::read_only) {
    auto l = sqlite::WriterLock::acquire(path, options.wait_for_writer);
    if (!l) return std::unexpected(l.error());
    lock = std::move(*l);
  }
  auto db = sqlite::Database::open(path, database_mode(options.access));
  if (!db) return std::unexpected(db.error());
  // Before any statement reads the source: a missing table or column is named here (at open
  // for read_only, by migrate() and the reads otherwise), never met as an SQL error.
  SourceSql source(options.mapping, SqlDialect::sqlite);
  Status source_ok = sqlite::inspect_source(**db, source);
  if (options.access == AccessMode::read_only) {
    if (!source_ok) return std::unexpected(source_ok.error());
    if (auto s = sqlite::check_current(**db); !s) return std::unexpected(s.error());
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(
      options, std::move(source), std::move(source_ok), std::move(lock), std::move(*db)));
}

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, AccessMode access) {
  SqliteOptions options;
  options.path = path;
  options.access = access;
  return open_sqlite_store(options);
}

}  // namespace lens::store
