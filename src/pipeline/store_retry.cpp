// Store retries: capped full-jitter backoff within a time budget.
#include "pipeline/store_retry.h"

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
  if (!error.is_retryable() || std::chrono::steady_clock::now() > give_up_at_) return false;
  if (++attempt_ == 1 && policy_.observer != nullptr) policy_.observer->on_database_lost();
  util::log_warn("{} failed ({}), retrying: {}", what_, util::to_string(error.code), error.message);
  std::this_thread::sleep_for(util::full_jitter(policy_.backoff, attempt_, rng_));
  return true;
}

}  // namespace lens::pipeline
