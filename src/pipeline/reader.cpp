// The reader loop: keyset pages → prepare → the work queue or the writer.
#include "pipeline/reader.h"

#include "pipeline/prepare.h"
#include "pipeline/store_retry.h"

namespace lens::pipeline {

Reader::Reader(const RunOptions& options, store::Store& store, const tokenizer::Tokenizer& tokenizer,
               RunState& state, WorkQueue& work, ResultQueue& results)
    : options_(options),
      store_(store),
      tokenizer_(tokenizer),
      state_(state),
      work_(work),
      results_(results) {}

void Reader::run() {
  store::PendingCursor cursor;
  std::int64_t accepted = 0;
  bool done = false;
  while (!done && !state_.stopping() && !state_.has_fatal()) {
    auto page = with_store_retries(
        [&]() -> util::Result<store::PendingPage> {
          // Each attempt starts from the last good position: a failed call may have moved it.
          store::PendingCursor attempt = cursor;
          auto p = store_.next_pending(options_.scope, attempt, options_.page_size);
          if (p) cursor = std::move(attempt);
          return p;
        },
        "reading pending work");
    if (!page) {
      state_.set_fatal(page.error());
      break;
    }
    for (auto& exchange : page->items) {
      if (state_.stopping() || state_.has_fatal()) break;
      if (options_.limit && accepted >= *options_.limit) {
        done = true;
        break;
      }
      if (route(std::move(exchange))) ++accepted;
    }
    if (page->exhausted) done = true;
  }
  if (done && !state_.stopping() && !state_.has_fatal()) finished_ = true;
  work_.close();
}

bool Reader::route(core::Exchange&& exchange) {
  PreparedInput input = prepare(std::move(exchange), options_, tokenizer_);
  if (input.route == Route::empty_input) {
    ++tally_.blank;
    if (!options_.dry_run) {
      results_.push(
          make_failure(input, core::FailureReason::empty_input, "user message content is only white space"));
    }
    return false;
  }
  if (input.chunked) ++tally_.chunked;
  if (input.truncated) ++tally_.truncated;
  if (input.route == Route::unchanged) {
    ++tally_.unchanged;
    if (!options_.dry_run) results_.push(make_touch(input));
    return false;
  }
  ++tally_.exchanges;
  ++(input.had_row ? tally_.stale_rows : tally_.new_rows);
  tally_.tokens += input.token_count;
  if (options_.dry_run) return true;
  if (input.truncated) ++state_.counters.truncated;
  return work_.push(std::move(input));
}

}  // namespace lens::pipeline
