// The Batch API ledger on PostgreSQL (store/batch_ledger.h), on the store's connection.
#pragma once

#include <string>

#include "store/batch_ledger.h"
#include "store/postgres/connection.h"
#include "store/source_sql.h"

namespace lens::store::postgres {

// Not thread-safe; lives inside the PostgresStore that owns `conn` and `source`, which
// must outlive it. `worker`: the store's claim name. Recording a batch drops this
// worker's claims on its items in the same transaction: the batch holds them from then
// on, so no other worker can take them in between (and no later run of ours is fenced
// by a claim left behind).
class PostgresBatchLedger final : public BatchLedger {
 public:
  PostgresBatchLedger(Connection& conn, const SourceSql& source, std::string worker)
      : conn_(conn), source_(source), worker_(std::move(worker)) {}

  util::Status record_batch(const BatchRecord& batch, const std::vector<BatchItem>& items) override;
  util::Status update_batch(const BatchRecord& batch) override;
  util::Result<std::vector<BatchRecord>> list_batches(const std::string& provider, const std::string& model,
                                                      bool open_only) override;
  util::Result<std::vector<BatchExchange>> batch_exchanges(const std::string& key) override;
  util::Result<std::int64_t> held_items(const std::string& provider, const std::string& model) override;

 private:
  Connection& conn_;
  const SourceSql& source_;
  std::string worker_;
};

}  // namespace lens::store::postgres
