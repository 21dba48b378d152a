// The Batch API ledger on SQLite (store/batch_ledger.h), on the store's connection.
#pragma once

#include "store/batch_ledger.h"
#include "store/source_sql.h"
#include "store/sqlite/database.h"

namespace lens::store::sqlite {

// Not thread-safe; lives inside the SqliteStore that owns `db` and `source`, which must
// outlive it.
class SqliteBatchLedger final : public BatchLedger {
 public:
  SqliteBatchLedger(Database& db, const SourceSql& source) : db_(db), source_(source) {}

  util::Status record_batch(const BatchRecord& batch, const std::vector<BatchItem>& items) override;
  util::Status update_batch(const BatchRecord& batch) override;
  util::Result<std::vector<BatchRecord>> list_batches(const std::string& provider, const std::string& model,
                                                      bool open_only) override;
  util::Result<std::vector<BatchExchange>> batch_exchanges(const std::string& key) override;
  util::Result<std::int64_t> held_items(const std::string& provider, const std::string& model) override;

 private:
  Database& db_;
  const SourceSql& source_;
};

}  // namespace lens::store::sqlite
