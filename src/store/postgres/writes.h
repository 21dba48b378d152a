// Writes of the PostgreSQL store: one batch in one transaction (binary COPY into a
// per-session staging table, one upsert, touches, failures, claims, run progress), and
// the records of a run (begin, finish). docs/POSTGRES.md, "Bulk writes".
#pragma once

#include <cstdint>
#include <string>

#include "store/postgres/claims.h"
#include "store/postgres/connection.h"
#include "store/store.h"

namespace lens::store::postgres {

// Writes batches on one connection. Keeps per-session state (the staging table exists
// on the current session). Not thread-safe.
class BatchWriter {
 public:
  // `use_copy`: stage rows with binary COPY, else with multi-row INSERTs (PGlite).
  // `claims`: the worker's claims to drop as items commit; null without claims. Not owned;
  // must outlive this object.
  // `source` (the mapping; its key type types the ids) must outlive the writer.
  BatchWriter(bool use_copy, Claims* claims, const SourceSql& source)
      : use_copy_(use_copy), claims_(claims), source_(source) {}

  // One attempt at committing all of `batch` in one transaction; `embedding_type` is the
  // column's type (a pgvector type adds a cast; ignored without rows).
  // On success: rows upserted, touches applied, failures upserted (attempts += 1) and the
  // failures of everything written cleared, late writes fenced (store.h, "Fencing"; with
  // claims, "another worker" is a claim under another name than claims->worker()), the
  // claims of every item dropped, the run's progress stored without the fenced items;
  // returns what was fenced. On failure: nothing of it committed (or, when the COMMIT
  // itself failed, the outcome is unknown: transient, and redoing is safe because every
  // statement is an upsert). Refused rows are NOT isolated here: see
  // write_isolating_refused_rows.
  [[nodiscard]] util::Result<WriteReport> write_once(Connection& conn, const WriteBatch& batch,
                                                     const std::string& embedding_type);

 private:
  [[nodiscard]] util::Status ensure_stage(Connection& conn);
  [[nodiscard]] util::Result<WriteReport> write_in_transaction(Connection& conn, const WriteBatch& batch,
                                                               const std::string& embedding_type);

  bool use_copy_;
  Claims* claims_;
  const SourceSql& source_;
  std::uint64_t stage_generation_ = 0;
};

// Store::begin_run: inserts a run 'running' with `run.arguments` passed through
// util::redact. Returns its id.
[[nodiscard]] util::Result<std::int64_t> begin_run(Connection& conn, const RunRecord& run);

// Store::finish_run: the final counters, status, finished_at and `cause` (redacted; NULL
// when empty) of run `run_id`.
[[nodiscard]] util::Status finish_run(Connection& conn, std::int64_t run_id, core::RunStatus status,
                                      const core::RunStats& stats, const std::string& cause);

}  // namespace lens::store::postgres
