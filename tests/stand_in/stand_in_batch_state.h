// The stand-in Batch API's state, internal to the stand-in: stored files and batches,
// the lazy state machine that moves batches through their statuses, and the counters.
// Shared by stand_in_batch.cpp (state, control) and stand_in_batch_routes.cpp (HTTP).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "stand_in_batch.h"
#include "stand_in_batch_files.h"

namespace lens::stand_in {

using BatchClock = std::chrono::steady_clock;

struct FileRec {
  std::string id;
  std::string filename;
  std::string purpose;      // "batch" (uploads) or "batch_output" (generated)
  std::int64_t bytes = -1;  // -1: a generated file whose size is not counted yet
  std::int64_t created_at = 0;
  std::uint64_t seq = 0;
  bool deleted = false;
  std::string path;                            // uploads: where it is on disk
  std::shared_ptr<const InputIndex> index;     // uploads: made by the first batch that uses it
  std::shared_ptr<const ResultsSpec> results;  // generated files
  bool error_file = false;                     // generated files: the error file
};

struct BatchRec {
  std::string id;
  std::string input_file_id;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::uint64_t seq = 0;
  std::uint64_t seed = 0;
  std::string status = "validating";
  BatchClock::time_point created;
  std::int64_t created_unix = 0;
  // Milliseconds after `created` at which each status began (absent: not reached).
  std::optional<double> in_progress_ms, finalizing_ms, completed_ms, failed_ms, expired_ms, cancelling_ms,
      cancelled_ms;
  std::shared_ptr<const InputIndex> input;
  bool inject_failure = false;
  std::vector<ValidationError> errors;
  std::vector<std::uint32_t> processing;  // the order requests are processed in
  std::vector<Outcome> if_processed;      // per request (file order): ok, context_400 or error_500
  std::size_t processed = 0;              // requests processed when the batch ended
  bool force_complete = false;
  std::optional<double> force_expire_fraction;
  std::string output_file_id, error_file_id;
};

struct BatchService::Impl {
  BatchHost host;
  mutable std::mutex mu;  // everything below
  std::string files_dir;  // "" until the first upload (uploads_dir())
  bool own_files_dir = false;
  BatchOptions o;
  std::mt19937_64 rng;
  std::uint64_t next_seq = 1;
  std::map<std::string, FileRec> files;
  std::map<std::string, BatchRec> batches;
  std::map<std::string, std::int64_t> counters;
  bool stopping = false;

  void bump(const std::string& name, std::int64_t by = 1) { counters[name] += by; }
  bool fire(BatchFault& f);  // with mu held
  std::string new_id(std::string_view prefix);
  std::string uploads_dir();  // with mu held; "" when it cannot be made

  // The state machine (with mu held): brings every batch up to `now`, oldest first, so
  // the enqueued-token limit sees earlier batches first.
  void advance_all(BatchClock::time_point now);
  void advance(BatchRec& b, BatchClock::time_point now);
  [[nodiscard]] double enqueued_tokens() const;
  [[nodiscard]] std::size_t progress(const BatchRec& b, double at_ms) const;
  void start(BatchRec& b, double at_ms);
  void fail(BatchRec& b, double at_ms, std::vector<ValidationError> errors);
  void finish(BatchRec& b, double at_ms, std::size_t processed, const std::string& final_status);
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> counts(const BatchRec& b) const;  // completed, failed

  [[nodiscard]] std::string batch_json(const BatchRec& b) const;
  [[nodiscard]] std::string file_json(const FileRec& f) const;
};

}  // namespace lens::stand_in
