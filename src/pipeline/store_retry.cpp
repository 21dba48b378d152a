// Store retries: capped full-jitter backoff within a time budget.
#include "pipeline/store_retry.h"

#include <algorithm>
#include <thread>

#include "util/log.h"

namespace lens::pipeline {

StoreRetry::StoreRetry(std::string_view what, const StoreRetryPolicy& policy)
    : what_(what),
      policy_(policy),
      give_up_at_(std::chrono::steady_clock::now() + policy.budget),
      rng_(std::random_device{}()) {}

StoreRetry::~StoreRetry() {
  if (attempt_ > 0 && policy_.observer != nullptr) policy_.observer->on_database_back();
}

bool StoreRetry::again(const util::Error& error) {
  using namespace std::chrono_literals;
  const auto given_up = [&] { return policy_.give_up_when && policy_.give_up_when(); };
  if (!error.is_retryable() || std::chrono::steady_clock::now() > give_up_at_ || given_up()) return false;
  if (++attempt_ == 1 && policy_.observer != nullptr) policy_.observer->on_database_lost();
  util::log_warn("{} failed ({}), retrying: {}", what_, util::to_string(error.code), error.message);
  const auto until = std::chrono::steady_clock::now() + util::full_jitter(policy_.backoff, attempt_, rng_);
  // In short slices when something may end the wait early.
  for (auto now = std::chrono::steady_clock::now(); now < until; now = std::chrono::steady_clock::now()) {
    if (given_up()) return false;
    std::this_thread::sleep_for(policy_.give_up_when ? std::min<std::chrono::nanoseconds>(until - now, 100ms)
                                                     : std::chrono::nanoseconds(until - now));
  }
  return true;
}

}  // namespace lens::pipeline
