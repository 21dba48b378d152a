// RateController: concurrency window, buckets, 429 backoff and header corrections.
#include <gtest/gtest.h>

#include "pipeline/rate_controller.h"

namespace lens::pipeline {
namespace {

using namespace std::chrono;
using Clock = RateController::Clock;

TEST(RateController, WindowLimitsInFlight) {
  RateController rc({0, 0}, 3);
  const auto now = Clock::now();
  EXPECT_TRUE(rc.try_admit(10, now));
  EXPECT_TRUE(rc.try_admit(10, now));
  EXPECT_TRUE(rc.try_admit(10, now));
  EXPECT_FALSE(rc.try_admit(10, now));
  rc.on_complete({}, false, std::nullopt, now);
  EXPECT_TRUE(rc.try_admit(10, now));
}

TEST(RateController, HalvesOnRateLimitOncePerSecondAndPauses) {
  RateController rc({0, 0}, 16);
  auto now = Clock::now();
  for (int i = 0; i < 16; ++i)
    ASSERT_TRUE(rc.try_admit(1, now));
  rc.on_complete({}, true, milliseconds(500), now);
  EXPECT_EQ(rc.concurrency_limit(), 8);
  rc.on_complete({}, true, std::nullopt, now + milliseconds(10));  // same burst
  EXPECT_EQ(rc.concurrency_limit(), 8);
  for (int i = 0; i < 14; ++i)
    rc.on_complete({}, false, std::nullopt, now);
  EXPECT_FALSE(rc.try_admit(1, now + milliseconds(100)));  // paused by retry-after
  EXPECT_GE(rc.wait_hint(1, now + milliseconds(100)), milliseconds(350));
  EXPECT_TRUE(rc.try_admit(1, now + milliseconds(600)));
}

TEST(RateController, TokenBucketHoldsTpm) {
  RateController rc({0, 60'000}, 100);  // 1000 tokens/s, burst 1 s
  const auto now = Clock::now();
  EXPECT_TRUE(rc.try_admit(1000, now));
  rc.on_complete({}, false, std::nullopt, now);
  EXPECT_FALSE(rc.try_admit(500, now));
  EXPECT_TRUE(rc.try_admit(500, now + milliseconds(510)));
}

TEST(RateController, ServerRemainingClampsBucket) {
  RateController rc({0, 60'000}, 100);
  const auto now = Clock::now();
  provider::RateLimitInfo info;
  info.remaining_tokens = 0;
  info.reset_tokens = milliseconds(2000);
  ASSERT_TRUE(rc.try_admit(1, now));
  rc.on_complete(info, false, std::nullopt, now);
  EXPECT_FALSE(rc.try_admit(1, now + milliseconds(1500)));
  EXPECT_TRUE(rc.try_admit(1, now + milliseconds(2100)));
}

TEST(RateController, TpmLimitIsTheOneInForce) {
  const auto now = Clock::now();
  provider::RateLimitInfo info;
  info.limit_tokens = 1'000'000;
  const double adopted = 1'000'000 * RateController::k_server_limit_share;
  // Configured above the server's limit: the server's (with the margin) replaces it.
  RateController high({0, 2'000'000}, 4);
  EXPECT_DOUBLE_EQ(high.tpm_limit(), 2e6);
  ASSERT_TRUE(high.try_admit(1, now));
  high.on_complete(info, false, std::nullopt, now);
  EXPECT_NEAR(high.tpm_limit(), adopted, 1e-6 * adopted);
  // Configured below it: the configured one stays.
  RateController low({0, 500'000}, 4);
  ASSERT_TRUE(low.try_admit(1, now));
  low.on_complete(info, false, std::nullopt, now);
  EXPECT_DOUBLE_EQ(low.tpm_limit(), 5e5);
  // None configured: the server's is adopted.
  RateController none({0, 0}, 4);
  EXPECT_DOUBLE_EQ(none.tpm_limit(), 0);
  ASSERT_TRUE(none.try_admit(1, now));
  none.on_complete(info, false, std::nullopt, now);
  EXPECT_NEAR(none.tpm_limit(), adopted, 1e-6 * adopted);
}

}  // namespace
}  // namespace lens::pipeline
