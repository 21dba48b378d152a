// The one retry layer for store calls: every call the run makes to a Store goes through
// with_store_retries. Stores report a lost connection or a busy database as a retryable
// error and do not retry on their own (store.h), so a call is never retried twice over.
#pragma once

#include <chrono>
#include <functional>
#include <random>
#include <string_view>

#include "pipeline/observer.h"
#include "util/backoff.h"
#include "util/result.h"

namespace lens::pipeline {

struct StoreRetryPolicy {
  util::BackoffPolicy backoff{std::chrono::milliseconds(200), std::chrono::milliseconds(10'000)};
  // No new attempt starts after this long: the error of the last one is returned.
  std::chrono::milliseconds budget{std::chrono::minutes(5)};
  // Told when a call starts retrying (the database is lost) and when it ends (null: nobody).
  RunObserver* observer = nullptr;
  // Asked before and while each wait: true ends the retries with the last error. For calls
  // whose answer a stop request makes useless (the reader's next page: nothing it would read
  // gets embedded), so that a stopped run does not wait out the budget for a lost database.
  std::function<bool()> give_up_when;

  // For the calls a run can do without (the progress total, handing claims back early):
  // a database that stays away a minute is not worth five more minutes of waiting there.
  [[nodiscard]] static StoreRetryPolicy best_effort() {
    StoreRetryPolicy p;
    p.budget = std::chrono::minutes(1);
    return p;
  }
};

// `base` whose calls tell `observer` when they start and stop retrying.
[[nodiscard]] inline StoreRetryPolicy observed_by(RunObserver& observer, StoreRetryPolicy base = {}) {
  base.observer = &observer;
  return base;
}

// The retry state of one call. Not shared between threads.
class StoreRetry {
 public:
  // `what` names the call in log lines ("writing a batch"); the caller keeps it alive.
  StoreRetry(std::string_view what, const StoreRetryPolicy& policy);
  // Ends the call: the observer hears on_database_back() if it heard on_database_lost().
  ~StoreRetry();
  StoreRetry(const StoreRetry&) = delete;
  StoreRetry& operator=(const StoreRetry&) = delete;

  // After a failed attempt: true, once the backoff delay has been slept, when the call
  // should be made again (the error is retryable and the budget not spent); false when
  // `error` is the answer. Logs each retry as a warning. A stop request does not cut the
  // wait short (what arrived must be committed, and the cli's second signal exits at once)
  // unless the policy's give_up_when says so.
  bool again(const util::Error& error);

 private:
  std::string_view what_;
  StoreRetryPolicy policy_;
  std::chrono::steady_clock::time_point give_up_at_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

// Calls `call` (returning a util::Result or util::Status) until it succeeds, fails with
// an error that is not retryable, or `policy.budget` has passed; returns the last result.
// Blocks the calling thread while it waits; any thread may call it for its own store.
// REQUIRES: redoing `call` after a retryable failure is safe (store.h promises this of
// every Store method: a failed write_batch left nothing visible).
template <typename F>
auto with_store_retries(F&& call, std::string_view what, const StoreRetryPolicy& policy = {})
    -> decltype(call()) {
  StoreRetry retry(what, policy);
  for (;;) {
    auto result = call();
    if (result || !retry.again(result.error())) return result;
  }
}

}  // namespace lens::pipeline
