// The embedding run: reader → dispatcher → writer, joined by bounded queues.
//
//   reader thread   keyset pages from the Store, input text, exact tokens, truncation
//                   or chunking, sha256; unchanged inputs become touches
//   dispatcher      (the calling thread) packs requests, admits them through the
//                   RateController, polls the Provider, retries, bisects bad inputs
//   writer thread   one transaction per group of results: rows, touches, failures and
//                   the run's counters; nothing is counted done before it is committed
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "pipeline/options.h"
#include "pipeline/progress.h"
#include "provider/provider.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"

namespace lens::pipeline {

// Signal state shared with the cli: 0 run, 1 stop taking new work and finish.
using StopFlag = std::atomic<int>;

struct DryRunReport {
  std::int64_t exchanges = 0;   // would be embedded (new + stale + forced)
  std::int64_t new_rows = 0;    // no row yet
  std::int64_t stale_rows = 0;  // row exists, input changed
  std::int64_t unchanged = 0;   // row exists, input hash equal (only markers refreshed)
  std::int64_t blank = 0;       // would be recorded as empty_input
  std::int64_t tokens = 0;      // exact tokens that would be sent
  std::int64_t truncated = 0;   // inputs over the model's limit
  std::int64_t chunked = 0;     // with --long-input chunk
  double usd = 0;               // at the model table's price
};

struct RunOutcome {
  std::int64_t run_id = 0;  // 0 for a dry run
  core::RunStats stats;
  std::optional<DryRunReport> dry_run;
  bool interrupted = false;
  std::optional<util::Error> fatal;  // the run stopped because of this
  double seconds = 0;
};

struct RunDeps {
  store::Store& reader;  // used only by the reader thread
  store::Store& writer;  // used only by the writer thread (and to open/close the run)
  provider::Provider& provider;
  const tokenizer::Tokenizer& tokenizer;
  ProgressListener* progress = nullptr;
  const StopFlag* stop = nullptr;
  std::string run_arguments;  // JSON for embedding_runs.arguments, secrets masked
  std::string worker;         // host:pid
};

// Runs to completion, interruption or a fatal error. Never throws.
[[nodiscard]] RunOutcome run_pipeline(const RunOptions& options, RunDeps& deps);

}  // namespace lens::pipeline
