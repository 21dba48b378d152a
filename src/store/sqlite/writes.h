// Writes of the SQLite store: one batch in one IMMEDIATE transaction (upserts, touches,
// failures, run progress) and the records of a run (begin, finish).
#pragma once

#include <cstdint>

#include "store/source_sql.h"
#include "store/sqlite/database.h"
#include "store/store.h"

namespace lens::store::sqlite {

// One attempt at committing all of `batch` in one transaction.
// On success: rows upserted, touches applied, failures upserted (attempts += 1) and the
// failures of everything written cleared, late writes fenced (store.h, "Fencing"; SQLite
// has no claims, so by version and hash alone), the run's progress stored without the
// fenced items; returns what was fenced. On failure: rolled back, nothing of it
// committed. Refused rows are NOT isolated here: see write_isolating_refused_rows.
[[nodiscard]] util::Result<WriteReport> write_once(Database& db, const SourceSql& source,
                                                   const WriteBatch& batch);

// Store::begin_run: inserts a run 'running' with `run.arguments` passed through
// util::redact. Returns its id.
[[nodiscard]] util::Result<std::int64_t> begin_run(Database& db, const RunRecord& run);

// Store::finish_run: status, finished_at and `cause` (redacted; NULL when empty), then the
// final counters, of run `run_id`.
[[nodiscard]] util::Status finish_run(Database& db, std::int64_t run_id, core::RunStatus status,
                                      const core::RunStats& stats, const std::string& cause);

}  // namespace lens::store::sqlite
