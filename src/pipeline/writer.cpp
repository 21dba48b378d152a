// The writer loop: group results, commit each group with the counters it brings.
#include "pipeline/writer.h"

#include "pipeline/store_retry.h"
#include "util/log.h"

namespace lens::pipeline {

using Clock = std::chrono::steady_clock;

Writer::Writer(const RunOptions& options, store::Store& store, std::int64_t run_id, RunState& state,
               ResultQueue& results)
    : options_(options), store_(store), state_(state), results_(results) {
  batch_.run_id = run_id;
  batch_.provider = options.scope.provider;
  batch_.model = options.scope.model;
}

void Writer::run() {
  auto size = [&] { return batch_.rows.size() + batch_.touches.size() + batch_.failures.size(); };
  auto first_at = Clock::now();
  while (true) {
    auto message = results_.pop_for(std::chrono::milliseconds(50));
    if (message) {
      if (size() == 0) first_at = Clock::now();
      if (auto* row = std::get_if<core::EmbeddingRow>(&*message)) {
        batch_tokens_ += row->token_count;
        batch_.rows.push_back(std::move(*row));
      } else if (auto* touch = std::get_if<core::RowTouch>(&*message)) {
        batch_.touches.push_back(std::move(*touch));
      } else {
        batch_.failures.push_back(std::move(std::get<core::Failure>(*message)));
      }
    }
    const bool closed = !message && results_.closed_and_empty();
    if (size() >= options_.rows_per_transaction || (size() > 0 && Clock::now() - first_at > k_flush_after) ||
        closed) {
      if (!flush()) break;
    }
    if (closed) break;
  }
  // After a fatal write error nothing more can be committed; let producers finish.
  while (results_.pop()) {
  }
}

bool Writer::flush() {
  const auto rows = static_cast<std::int64_t>(batch_.rows.size());
  const auto touches = static_cast<std::int64_t>(batch_.touches.size());
  const auto failures = static_cast<std::int64_t>(batch_.failures.size());
  if (rows + touches + failures == 0) return true;
  // Counters as they will be once this commits: the runs table never runs ahead.
  RunCounters& counters = state_.counters;
  batch_.progress = counters.snapshot();
  batch_.progress.embedded += rows;
  batch_.progress.tokens += batch_tokens_;
  batch_.progress.unchanged += touches;
  batch_.progress.failed += failures;
  const auto write_started = Clock::now();
  auto report = with_store_retries([&] { return store_.write_batch(batch_); }, "writing a batch",
                                   observed_by(state_.observer()));
  util::log_debug("wrote {} rows, {} touches, {} failures in {:.1f} ms", rows, touches, failures,
                  std::chrono::duration<double, std::milli>(Clock::now() - write_started).count());
  if (!report) {
    state_.set_fatal(report.error());
    return false;
  }
  counters.embedded += rows - report->fenced_rows;
  counters.tokens += batch_tokens_;
  counters.unchanged += touches - report->fenced_touches;
  counters.failed += failures - report->fenced_failures;
  counters.fenced += report->fenced();
  if (report->fenced() > 0 && !fence_logged_) {
    // Once per run: a paused or cut-off worker may fence a whole backlog.
    fence_logged_ = true;
    util::log_warn(
        "late writes fenced: {} results of this worker were not written because another worker "
        "took the exchanges over or a newer version is already stored; they are left to it "
        "(the run's `fenced` counter has the total)",
        report->fenced());
  }
  state_.outstanding -= rows + touches + failures;
  state_.observer().on_commit(
      {rows - report->fenced_rows, touches - report->fenced_touches, batch_tokens_, batch_.failures});
  batch_.rows.clear();
  batch_.touches.clear();
  batch_.failures.clear();
  batch_tokens_ = 0;
  return true;
}

}  // namespace lens::pipeline
