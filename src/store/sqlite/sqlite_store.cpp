// SQLite Store: the Store interface on the sections of store/sqlite/ (database,
// migrations, pending, writes, reports). WAL mode, prepared statements, one transaction
// per batch.
#include "store/sqlite/sqlite_store.h"

#include <fmt/core.h>
#include <unistd.h>
#include <filesystem>

#include "store/source_sql.h"
#include "store/sqlite/batch_ledger.h"
#include "store/sqlite/database.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/pending.h"
#include "store/sqlite/reports.h"
#include "store/sqlite/verify_reads.h"
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

  Result<std::vector<SourceIndex>> source_indexes() override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return sqlite::read_source_indexes(*db_, source_);
  }

  Result<SourceDescription> describe_source() override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return describe(source_);
  }

  Status set_change_tracking(bool) override {
    return util::fail(util::ErrorCode::configuration, k_no_change_tracking);
  }

  Result<std::vector<std::string>> missing_privileges() override {
    // A run writes the file, and its -wal and -shm files beside it.
    std::vector<std::string> out;
    const std::filesystem::path file(db_->path());
    const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : ".";
    if (::access(file.c_str(), W_OK) != 0)
      out.push_back(fmt::format("make {} writable by this user (a run writes it)", file.string()));
    if (::access(dir.c_str(), W_OK) != 0)
      out.push_back(
          fmt::format("make the directory {} writable by this user (SQLite creates {}-wal and "
                      "{}-shm there)",
                      dir.string(), file.filename().string(), file.filename().string()));
    return out;
  }

  Result<std::string> input_definition(const std::string& provider, const std::string& model) override {
    sqlite::Statement q;
    if (auto s = q.prepare(*db_,
                           "SELECT fingerprint FROM lens_embed_input_definitions WHERE provider = ?1 AND "
                           "model = ?2");
        !s)
      return std::unexpected(s.error());
    q.bind(1, std::string_view(provider));
    q.bind(2, std::string_view(model));
    auto row = q.step("reading the input definition");
    if (!row) return std::unexpected(row.error());
    return *row ? q.text(0) : std::string();
  }

  Status record_input_definition(const std::string& provider, const std::string& model,
                                 const std::string& fingerprint) override {
    sqlite::Statement q;
    if (auto s = q.prepare(*db_,
                           "INSERT INTO lens_embed_input_definitions (provider, model, fingerprint) VALUES "
                           "(?1, ?2, ?3) ON CONFLICT (provider, model) DO UPDATE SET fingerprint = "
                           "excluded.fingerprint, recorded_at = excluded.recorded_at");
        !s)
      return s;
    q.bind(1, std::string_view(provider));
    q.bind(2, std::string_view(model));
    q.bind(3, std::string_view(fingerprint));
    return q.run("recording the input definition");
  }

  Result<SearchResult> search(const std::string& provider, const std::string& model,
                              std::span<const float> query, std::size_t k) override {
    auto hits = sqlite::search(*db_, source_, provider, model, query, k, scanners_);
    if (!hits) return std::unexpected(hits.error());
    return SearchResult{std::move(*hits), "exact scan"};
  }

  Result<VerifyPage> verify_page(const std::string& provider, const std::string& model, PendingCursor& cursor,
                                 std::size_t max_items) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return sqlite::verify_page(*db_, source_, provider, model, cursor, max_items);
  }

  Result<Orphans> orphans(const std::string& provider, const std::string& model,
                          std::size_t max_ids) override {
    if (!source_ok_) return std::unexpected(source_ok_.error());
    return sqlite::read_orphans(*db_, source_, provider, model, max_ids);
  }

  Result<IdSample> wrong_dimensions(const std::string& provider, const std::string& model,
                                    std::int64_t dimensions, std::size_t max_ids) override {
    return sqlite::wrong_dimensions(*db_, provider, model, dimensions, max_ids);
  }

  Result<std::optional<std::vector<float>>> read_vector(const std::string& provider, const std::string& model,
                                                        const std::string& user_message_id) override {
    return sqlite::read_vector(*db_, provider, model, user_message_id);
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
  // search's read-only connections, opened by the first search and kept: a later search
  // finds the file already mapped (reports.h).
  std::vector<std::unique_ptr<sqlite::Database>> scanners_;
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
