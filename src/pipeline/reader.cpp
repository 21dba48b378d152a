// The reader loop: keyset pages → prepare → the work queue or the writer.
#include "pipeline/reader.h"

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "pipeline/prepare.h"
#include "pipeline/store_retry.h"
#include "util/log.h"
#include "util/timestamp.h"

namespace lens::pipeline {

Reader::Reader(const RunOptions& options, store::Store& store, const tokenizer::Tokenizer& tokenizer,
               RunState& state, WorkQueue& work, ResultQueue& results)
    : options_(options),
      store_(store),
      tokenizer_(tokenizer),
      state_(state),
      work_(work),
      results_(results),
      scope_(options.scope) {
  scope_.rehash = scope_.rehash || options.rehash_first_pass;
}

void Reader::run() {
  std::int64_t accepted = 0;
  int passes = 0;
  while (true) {
    bool limit_reached = false;
    const std::int64_t before = accepted;
    if (!pass(accepted, limit_reached)) break;
    ++passes;
    if (limit_reached || !options_.follow) {
      limit_reached_ = limit_reached;
      finished_ = true;
      break;
    }
    util::log_debug("follow: pass {} read to the end, {} exchanges to embed", passes, accepted - before);
    if (!wait_for_next_pass()) break;
  }
  work_.close();
}

bool Reader::pass(std::int64_t& accepted, bool& limit_reached) {
  store::PendingCursor cursor;
  pass_started_ = std::chrono::steady_clock::now();
  take_changes();
  if (state_.observer().wants_pending_count()) {
    auto pending =
        with_store_retries([&] { return store_.count_pending(scope_); }, "counting pending work",
                           until_stopped(observed_by(state_.observer(), StoreRetryPolicy::best_effort())));
    if (pending) state_.observer().on_pending_count(*pending);
  }
  while (!state_.stopping() && !state_.has_fatal()) {
    auto page = with_store_retries(
        [&]() -> util::Result<store::PendingPage> {
          // Each attempt starts from the last good position: a failed call may have moved it.
          store::PendingCursor attempt = cursor;
          auto p = store_.next_pending(scope_, attempt, options_.page_size);
          if (p) cursor = std::move(attempt);
          return p;
        },
        "reading pending work", until_stopped(observed_by(state_.observer())));
    if (!page) {
      // A stop request ended the retries: the run is interrupted, not failed.
      if (!state_.stopping()) state_.set_fatal(page.error());
      return false;
    }
    for (auto& exchange : page->items) {
      if (state_.stopping() || state_.has_fatal()) return false;
      if (options_.limit && accepted >= *options_.limit) {
        limit_reached = true;
        return true;
      }
      const auto changed_at = util::parse_timestamp(exchange.source_version);
      if (!route(std::move(exchange))) continue;
      ++accepted;
      if (changed_at && (!oldest_pending_ || *changed_at < *oldest_pending_)) {
        oldest_pending_ = changed_at;
        state_.observer().on_oldest_pending(oldest_pending_);
      }
    }
    if (page->exhausted) return !state_.stopping() && !state_.has_fatal();
  }
  return false;
}

StoreRetryPolicy Reader::until_stopped(StoreRetryPolicy policy) const {
  policy.give_up_when = [this] { return state_.stopping(); };
  return policy;
}

bool Reader::wait_for_next_pass() {
  using namespace std::chrono_literals;
  // A new pass must not offer what is still on its way to the database: it would be
  // sent a second time. (An open breaker holds such work, so no pass runs meanwhile.)
  while (state_.outstanding.load() > 0) {
    if (state_.stopping() || state_.has_fatal()) return false;
    std::this_thread::sleep_for(20ms);
  }
  // Caught up: everything found so far is committed.
  drop_changes();
  if (passes_committed_++ == 0) first_pass_committed();
  choose_next_pass();
  if (oldest_pending_) {
    oldest_pending_.reset();
    state_.observer().on_oldest_pending(std::nullopt);
  }
  // Idle here: a stop now ends the session with nothing left undone.
  const auto until = std::chrono::steady_clock::now() + options_.follow_poll;
  while (std::chrono::steady_clock::now() < until) {
    if (state_.stopping()) {
      finished_ = true;
      return false;
    }
    if (state_.has_fatal()) return false;
    // In short slices, so a stop request is seen at once.
    auto changed = store_.wait_for_changes(100ms);
    if (changed && *changed) break;
  }
  if (state_.stopping()) {
    finished_ = true;
    return false;
  }
  return !state_.has_fatal();
}

void Reader::take_changes() {
  if (!scope_.changes || options_.dry_run) return;
  const std::string mark = std::to_string(::getpid()) + "." +
                           std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "." +
                           std::to_string(change_passes_++);
  auto taken = with_store_retries([&] { return store_.take_changes(mark); }, "taking queued changes",
                                  observed_by(state_.observer(), StoreRetryPolicy::best_effort()));
  if (taken) {
    change_pass_ = mark;
    failed_at_take_ = state_.counters.failed.load();
  } else {
    util::log_warn("taking queued changes: {} (they are read, and dropped by a later pass)",
                   taken.error().message);
  }
}

std::string Reader::change_pass() const {
  return state_.counters.failed.load() == failed_at_take_ ? change_pass_ : std::string();
}

void Reader::drop_changes() {
  const std::string pass = change_pass();
  change_pass_.clear();
  if (pass.empty()) return;
  auto dropped = with_store_retries([&] { return store_.drop_changes(pass); }, "dropping queued changes",
                                    observed_by(state_.observer(), StoreRetryPolicy::best_effort()));
  if (!dropped)
    util::log_warn("dropping queued changes: {} (the next pass hashes them again)", dropped.error().message);
}

void Reader::choose_next_pass() {
  if (!scope_.changes) return;
  if (!scope_.changes_only) last_sweep_ = pass_started_;
  const bool was = scope_.changes_only;
  scope_.changes_only = std::chrono::steady_clock::now() - last_sweep_ < options_.follow_sweep;
  if (was != scope_.changes_only)
    util::log_debug("follow: the next passes read {}",
                    scope_.changes_only ? "only what the change queue names" : "the whole keyset (a sweep)");
}

void Reader::first_pass_committed() {
  scope_.rehash = options_.scope.rehash;
  if (options_.record_input_definition.empty() || options_.dry_run) return;
  auto recorded = with_store_retries(
      [&] {
        return store_.record_input_definition(options_.scope.provider, options_.scope.model,
                                              options_.record_input_definition);
      },
      "recording the input definition", observed_by(state_.observer(), StoreRetryPolicy::best_effort()));
  if (recorded) {
    recorded_ = true;
  } else {
    util::log_warn("recording the input definition: {} (the next run hashes every input again)",
                   recorded.error().message);
  }
}

bool Reader::route(core::Exchange&& exchange) {
  PreparedInput input = prepare(std::move(exchange), options_, tokenizer_);
  if (input.route == Route::empty_input) {
    ++tally_.blank;
    if (!options_.dry_run) {
      ++state_.outstanding;
      results_.push(
          make_failure(input, core::FailureReason::empty_input, "user message content is only white space"));
    }
    return false;
  }
  if (input.chunked) ++tally_.chunked;
  if (input.truncated) ++tally_.truncated;
  if (input.route == Route::unchanged) {
    ++tally_.unchanged;
    if (!options_.dry_run) {
      ++state_.outstanding;
      results_.push(make_touch(input));
    }
    return false;
  }
  ++tally_.exchanges;
  ++(input.had_row ? tally_.stale_rows : tally_.new_rows);
  tally_.tokens += input.token_count;
  if (options_.dry_run) return true;
  if (input.truncated) ++state_.counters.truncated;
  ++state_.outstanding;
  if (work_.push(std::move(input))) return true;
  --state_.outstanding;  // the queue was closed: the run is ending, nothing was handed on
  return false;
}

}  // namespace lens::pipeline
