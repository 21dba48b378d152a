// The reader: pending exchanges from the store, prepared and routed. Inputs to embed go
// to the dispatcher; touches and empty_input failures go straight to the writer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "pipeline/dispatcher.h"
#include "pipeline/options.h"
#include "pipeline/pipeline.h"
#include "pipeline/run_state.h"
#include "pipeline/store_retry.h"
#include "pipeline/writer.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"

namespace lens::pipeline {

class Reader {
 public:
  // All references are owned by the caller and outlive the Reader. `store` is used by the
  // reader's thread alone while run() runs. With options.dry_run nothing is pushed
  // anywhere: the reader only tallies.
  Reader(const RunOptions& options, store::Store& store, const tokenizer::Tokenizer& tokenizer,
         RunState& state, WorkQueue& work, ResultQueue& results);

  // The reader thread's body: pages through the store's pending work (next_pending through
  // with_store_retries) until it is exhausted, options.limit inputs were routed to work,
  // a stop is requested or state.has_fatal(). With options.follow, reaching the end starts
  // another pass instead, once everything handed on so far is committed
  // (state.outstanding == 0) and a change was notified or options.follow_poll passed
  // (store.wait_for_changes). A page that still fails after the retries sets the fatal
  // error. Always closes `work` before it returns (never `results`, which the dispatcher
  // also feeds). Counts state.counters.truncated for inputs sent to work, and
  // state.outstanding for everything it hands on.
  void run();

  // After run() returned: whether it read to the end of the pending work or the limit
  // (false when a stop or a fatal error cut it short). With options.follow: whether the
  // stop found it idle, its last pass read to the end. Any thread.
  [[nodiscard]] bool finished() const { return finished_.load(); }
  // After run() returned: whether it stopped at options.limit.
  [[nodiscard]] bool limit_reached() const { return limit_reached_.load(); }
  // Whether options.record_input_definition was recorded (with --follow, once the first
  // pass's work was committed). Any thread.
  [[nodiscard]] bool recorded_input_definition() const { return recorded_.load(); }
  // scope.changes: the mark of the change-queue entries the last pass took and has not
  // dropped yet (Store::take_changes), "" for none, or also "" when that pass recorded a
  // failure (a failed exchange would otherwise never be read again: the entries stay).
  // Only after run() returned: the caller drops them once that pass's work is committed.
  [[nodiscard]] std::string change_pass() const;
  // The tally of what was read. Only after run() returned (the reader thread joined).
  [[nodiscard]] const DryRunReport& tally() const { return tally_; }

 private:
  // `policy`, ending its retries at a stop request: what the reader waits for would not be
  // embedded any more.
  [[nodiscard]] StoreRetryPolicy until_stopped(StoreRetryPolicy policy) const;
  // Returns true when `exchange` was routed to work (it counts toward options.limit).
  bool route(core::Exchange&& exchange);
  // One pass over the keyset from the start. Returns true when it read to the end (or
  // the limit: then *limit_reached), false when a stop or a fatal error cut it short.
  bool pass(std::int64_t& accepted, bool& limit_reached);
  // --follow, between passes: until what was handed on is committed and then a change
  // arrives or options.follow_poll passes. False when a stop or a fatal error came first.
  bool wait_for_next_pass();
  // --follow, once the first pass's work is committed: records the input definition (best
  // effort: a failure is logged, and the next run hashes every input again) and reads as
  // options.scope says from then on.
  void first_pass_committed();
  // scope.changes: takes the queued changes for the pass about to start; drops those of the
  // pass whose work is committed. Best effort: what is not dropped is hashed again later.
  void take_changes();
  void drop_changes();
  // --follow with scope.changes, once a pass's work is committed: the next pass reads only
  // what the change queue names (WorkScope::changes_only), unless the last pass over the
  // whole keyset started options.follow_sweep ago or more.
  void choose_next_pass();

  const RunOptions& options_;
  store::Store& store_;
  const tokenizer::Tokenizer& tokenizer_;
  RunState& state_;
  WorkQueue& work_;
  ResultQueue& results_;
  DryRunReport tally_;
  // The oldest change among the exchanges found to embed since the run last caught up.
  std::optional<std::chrono::system_clock::time_point> oldest_pending_;
  std::atomic<bool> finished_{false};
  std::atomic<bool> limit_reached_{false};
  std::atomic<bool> recorded_{false};
  // options.scope, with rehash for the first pass when options.rehash_first_pass.
  store::WorkScope scope_;
  int passes_committed_ = 0;                            // --follow: passes whose work was committed
  std::chrono::steady_clock::time_point pass_started_;  // of the pass being read
  std::chrono::steady_clock::time_point last_sweep_;    // start of the last whole-keyset pass
  std::string change_pass_;
  int change_passes_ = 0;
  std::int64_t failed_at_take_ = 0;  // state.counters.failed when the pass took its changes
};

}  // namespace lens::pipeline
