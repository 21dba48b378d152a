// The internals of run_batch_api (batch_run.h): one Driver per call, with the collect
// side (collect.cpp) and the submit side (submit.cpp). Not thread-safe: one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batch/batch_run.h"

namespace lens::batch {

// The metadata key under which a batch carries its local key.
inline constexpr const char* k_metadata_key = "lens_embed_batch";

class Driver {
 public:
  Driver(const BatchRunOptions& options, const BatchRunDeps& deps, BatchRunOutcome& out)
      : o_(options), d_(deps), out_(out) {}

  // Polls every unfinished batch of the pair and applies the finished ones. Returns how
  // many batches it finished (done). On failure: the error that must stop the run
  // (transient provider errors while polling are not: the batch is polled next pass).
  [[nodiscard]] util::Result<std::int64_t> collect();

  // Packs pending exchanges into new batches within the file limits and the token budget
  // and submits them. Returns the items submitted. On failure: as collect().
  [[nodiscard]] util::Result<std::int64_t> submit();

  // The run's writes: rows, touches and failures, committed rows_per_transaction at a time.
  [[nodiscard]] util::Status flush(bool force);

  [[nodiscard]] bool stopping() const { return d_.stop && d_.stop->load() != 0; }

  std::int64_t run_id = 0;

 private:
  // One recorded batch: adopt or release it (never created), poll it, apply it when final.
  [[nodiscard]] util::Result<bool> advance(store::BatchRecord& batch);
  [[nodiscard]] util::Status apply(store::BatchRecord& batch);
  [[nodiscard]] util::Status release(store::BatchRecord& batch, const std::string& why);

  const BatchRunOptions& o_;
  const BatchRunDeps& d_;
  BatchRunOutcome& out_;
  store::WriteBatch pending_write_;  // rows, touches and failures not committed yet
};

// A fresh local key: "lensb-" + 16 random hex digits (unique across hosts and restores).
[[nodiscard]] std::string new_batch_key();

}  // namespace lens::batch
