// The store retry layer: what it retries, what it returns at once, and its time budget.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace lens::pipeline
