// The embedding run: reader → dispatcher → writer, joined by bounded queues.
//
//   reader thread   (reader.h) keyset pages from the Store, each prepared (prepare.h:
//                   input text, exact tokens, truncation or chunks, sha256, route);
//                   unchanged inputs become touches, blank ones empty_input failures
//   dispatcher      (dispatcher.h, on the calling thread) packs requests, admits them
//                   through the RateController, polls the Provider, retries, bisects
//   writer thread   (writer.h) one transaction per group of results: rows, touches,
//                   failures and the run's counters; nothing is counted done before it
//                   is committed
// Every store call goes through the one retry layer, store_retry.h. The circuit breaker
// (circuit_breaker.h) is the dispatcher's: it ends the run when the provider is
// unavailable, or with --follow pauses it until the provider answers again.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pipeline/observer.h"
#include "pipeline/options.h"
#include "pipeline/progress.h"
#include "pipeline/run_state.h"
#include "provider/provider.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"

namespace lens::pipeline {

// What a dry run would do (a real run tallies the same on the way, unreported).
struct DryRunReport {
  std::int64_t exchanges = 0;   // would be embedded (new + stale + forced)
  std::int64_t new_rows = 0;    // no row yet
  std::int64_t stale_rows = 0;  // row exists, input changed (or forced)
  std::int64_t unchanged = 0;   // row exists, input hash equal (only markers refreshed)
  std::int64_t blank = 0;       // would be recorded as empty_input
  std::int64_t tokens = 0;      // exact tokens that would be sent
  std::int64_t truncated = 0;   // inputs over the model's limit
  std::int64_t chunked = 0;     // with --long-input chunk
  double usd = 0;               // at the model table's price
};

struct RunOutcome {
  std::int64_t run_id = 0;              // 0 for a dry run, or when the run could not be recorded
  core::RunStats stats;                 // as committed (and counted by the dispatcher)
  std::optional<DryRunReport> dry_run;  // set exactly for a dry run
  bool interrupted = false;             // a stop request ended it with work left
  std::optional<util::Error> fatal;     // the run stopped because of this
  double seconds = 0;
};

// Everything the run uses and does not own; all of it outlives run_pipeline().
struct RunDeps {
  store::Store& reader;          // used only by the reader thread (and for the progress total)
  store::Store& writer;          // used only by the writer thread (and to open/close the run)
  provider::Provider& provider;  // used only by the calling thread
  const tokenizer::Tokenizer& tokenizer;
  ProgressListener* progress = nullptr;  // called on the calling thread; null: no reports
  const StopFlag* stop = nullptr;        // read by every thread; null: never stopped
  std::string run_arguments;             // JSON for embedding_runs.arguments, secrets masked
  std::string worker;                    // host:pid
  RunObserver* observer = nullptr;       // called on every thread (observer.h); null: nobody
};

// Runs to completion, interruption or a fatal error, on the calling thread plus a reader
// and a writer thread it starts and joins. Never throws. With options.follow it is one
// run (one embedding_runs row, its counters updated with every commit) that passes over
// the pending work again and again until a stop request; it is completed when, at the
// stop, everything it read is committed.
// Success: outcome.fatal empty; the run is recorded (embedding_runs) as completed, or
// interrupted when a stop request ended it with work left (outcome.interrupted).
// An unavailable provider (no --follow) is a failure: outcome.fatal is a transient error
// whose message names the cause and the setting to check; nothing is recorded for the
// exchanges that were not answered.
// Failure: outcome.fatal holds the first error that stopped it (a store call that still
// failed after the retries, or a provider error no retry can fix); what was committed
// stays committed, and the run is recorded as failed when the store still answers. When
// the run cannot even be recorded, nothing else is done and run_id is 0.
// Either way the claims this worker holds are handed back (best effort).
// With options.dry_run no row, failure or run is written and no provider is called; the
// result is outcome.dry_run.
[[nodiscard]] RunOutcome run_pipeline(const RunOptions& options, RunDeps& deps);

}  // namespace lens::pipeline
