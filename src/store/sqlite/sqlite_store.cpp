// SQLite Store: the Store interface on the sections of store/sqlite/ (database,
// migrations, pending, writes, reports). WAL mode, prepared statements, one transaction
// per batch.
#include "store/sqlite/sqlite_store.h"

#include "store/sqlite/database.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/pending.h"
#include "store/sqlite/reports.h"
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
  explicit SqliteStore(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}

  Status migrate() override { return sqlite::migrate(*db_); }

  Result<PendingPage> next_pending(const WorkScope& scope, PendingCursor& cursor,
                                   std::size_t max_items) override {
    return sqlite::next_pending(*db_, scope, cursor, max_items);
  }

  Status write_batch(const WriteBatch& batch) override {
    return write_isolating_refused_rows(batch, "sqlite",
                                        [&](const WriteBatch& b) { return sqlite::write_once(*db_, b); });
  }

  Result<std::int64_t> begin_run(const RunRecord& run) override { return sqlite::begin_run(*db_, run); }

  Status finish_run(std::int64_t run_id, core::RunStatus status, const core::RunStats& stats) override {
    return sqlite::finish_run(*db_, run_id, status, stats);
  }

  Result<std::int64_t> count_pending(const WorkScope& scope) override {
    return sqlite::count_pending(*db_, scope);
  }

  Result<StatusReport> status(std::size_t recent_runs) override {
    return sqlite::read_status(*db_, recent_runs);
  }

  Result<std::vector<FailureRecord>> failures(const std::string& provider,
                                              const std::string& model) override {
    return sqlite::read_failures(*db_, provider, model);
  }

  Result<std::vector<SearchHit>> search(const std::string& provider, const std::string& model,
                                        std::span<const float> query, std::size_t k) override {
    return sqlite::search(*db_, provider, model, query, k);
  }

 private:
  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  auto db = sqlite::Database::open(path, sqlite::Database::Mode::read_write);
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(*db)));
}

}  // namespace lens::store
