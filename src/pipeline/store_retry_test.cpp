// The store retry layer: what it retries, what it returns at once, and its time budget.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "pipeline/store_retry.h"

namespace lens::pipeline {
namespace {

using namespace std::chrono_literals;

StoreRetryPolicy quick(std::chrono::milliseconds budget) {
  StoreRetryPolicy p;
  p.backoff = {1ms, 2ms};
  p.budget = budget;
  return p;
}

TEST(StoreRetry, RetriesTransientErrorsUntilTheCallSucceeds) {
  int calls = 0;
  auto r = with_store_retries(
      [&]() -> util::Result<int> {
        if (++calls < 3) return util::fail(util::ErrorCode::transient, "connection lost");
        return 42;
      },
      "test call", quick(10s));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(calls, 3);
}

TEST(StoreRetry, ReturnsAnErrorThatIsNotRetryableAtOnce) {
  int calls = 0;
  auto s = with_store_retries(
      [&]() -> util::Status {
        ++calls;
        return util::fail(util::ErrorCode::configuration, "permission denied");
      },
      "test call", quick(10s));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, util::ErrorCode::configuration);
  EXPECT_EQ(calls, 1);
}

TEST(StoreRetry, GivesUpWithTheLastErrorOnceTheBudgetIsSpent) {
  int calls = 0;
  const auto started = std::chrono::steady_clock::now();
  auto s = with_store_retries(
      [&]() -> util::Status {
        ++calls;
        return util::fail(util::ErrorCode::transient, "attempt " + std::to_string(calls));
      },
      "test call", quick(30ms));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, util::ErrorCode::transient);
  EXPECT_EQ(s.error().message, "attempt " + std::to_string(calls));
  EXPECT_GT(calls, 1);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 30ms);
}

// A stop request (give_up_when) ends a long backoff wait and the retries with the last
// error: a stopped reader does not wait out the budget for a database that is gone.
TEST(StoreRetry, GiveUpWhenEndsTheWaitAndTheRetries) {
  std::atomic<bool> stop{false};
  StoreRetryPolicy policy;
  policy.backoff = {10s, 10s};
  policy.give_up_when = [&] { return stop.load(); };
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    stop = true;
  });
  int calls = 0;
  auto s = with_store_retries(
      [&]() -> util::Status {
        ++calls;
        return util::fail(util::ErrorCode::transient, "connection refused");
      },
      "test call", policy);
  stopper.join();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "connection refused");
  EXPECT_EQ(calls, 1) << "retried after the stop request";

  calls = 0;
  auto again = with_store_retries(
      [&]() -> util::Status {
        ++calls;
        return util::fail(util::ErrorCode::transient, "connection refused");
      },
      "test call", policy);
  EXPECT_FALSE(again);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace lens::pipeline
