// The breaker's rule with made-up times: both conditions (a streak and a duration) are
// needed, any answer ends the streak, and an answer after a request was sent makes its
// unavailable outcome about the request, not the provider.
#include "pipeline/circuit_breaker.h"

#include <gtest/gtest.h>

namespace lens::pipeline {
namespace {

using namespace std::chrono_literals;
using Clock = CircuitBreaker::Clock;

provider::EmbedFailure refused() {
  provider::EmbedFailure f;
  f.error = util::Error{util::ErrorCode::transient, "cannot connect: Connection refused"};
  return f;
}
provider::EmbedFailure http(int status, util::ErrorCode code) {
  provider::EmbedFailure f;
  f.http_status = status;
  f.error = util::Error{code, "HTTP " + std::to_string(status)};
  return f;
}

TEST(CircuitBreaker, ClassifiesNoAnswerAndServerErrorsAsUnavailable) {
  EXPECT_TRUE(is_unavailable(refused()));
  EXPECT_TRUE(is_unavailable(http(503, util::ErrorCode::transient)));
  EXPECT_TRUE(is_unavailable(http(500, util::ErrorCode::transient)));
  EXPECT_FALSE(is_unavailable(http(429, util::ErrorCode::rate_limited)));
  EXPECT_FALSE(is_unavailable(http(408, util::ErrorCode::transient)));  // an answer
  EXPECT_FALSE(is_unavailable(http(400, util::ErrorCode::bad_input)));
  EXPECT_FALSE(is_unavailable(http(200, util::ErrorCode::invalid_response)));
  provider::EmbedFailure tls;
  tls.error = util::Error{util::ErrorCode::fatal, "TLS verification failed"};
  EXPECT_FALSE(is_unavailable(tls));  // a setting to fix, not an outage
  provider::EmbedFailure timeout;
  timeout.error = util::Error{util::ErrorCode::transient, "timeout: 120 s"};
  EXPECT_EQ(unavailable_kind(timeout), UnavailableKind::timeout);
  EXPECT_EQ(unavailable_kind(refused()), UnavailableKind::no_answer);
  EXPECT_EQ(unavailable_kind(http(502, util::ErrorCode::transient)), UnavailableKind::server_error);
}

TEST(CircuitBreaker, OpensOnlyAfterTheStreakAndTheDuration) {
  CircuitBreaker b(30s);
  const auto t0 = Clock::time_point{} + 1000s;
  b.on_unavailable(t0, refused());
  b.on_unavailable(t0 + 1s, refused());
  EXPECT_FALSE(b.open(t0 + 60s)) << "two outcomes are not enough, however long";
  b.on_unavailable(t0 + 2s, refused());
  EXPECT_FALSE(b.open(t0 + 29s)) << "three fast refusals are not 30 s without an answer";
  EXPECT_TRUE(b.open(t0 + 30s));
  EXPECT_EQ(b.streak(), 3);
  EXPECT_EQ(b.down_for(t0 + 30s), 30s);
}

TEST(CircuitBreaker, AnyAnswerEndsTheStreak) {
  CircuitBreaker b(10s);
  const auto t0 = Clock::time_point{} + 1000s;
  for (int i = 0; i < 5; ++i)
    b.on_unavailable(t0 + std::chrono::seconds(i), refused());
  b.on_answer(t0 + 6s);
  EXPECT_FALSE(b.open(t0 + 100s));
  EXPECT_EQ(b.streak(), 0);
  // A new streak counts from the last answer, not from when its first request was sent.
  b.on_unavailable(t0 + 1s, refused());
  b.on_unavailable(t0 + 7s, refused());
  b.on_unavailable(t0 + 8s, refused());
  EXPECT_FALSE(b.open(t0 + 15s));
  EXPECT_TRUE(b.open(t0 + 16s));
}

TEST(CircuitBreaker, TimeoutsCountFromWhenTheRequestWasSent) {
  // Requests that hang until --timeout: the provider has been silent since they were sent.
  CircuitBreaker b(30s);
  const auto t0 = Clock::time_point{} + 1000s;
  for (int i = 0; i < 3; ++i)
    b.on_unavailable(t0, refused());
  EXPECT_TRUE(b.open(t0 + 30s));
}

TEST(CircuitBreaker, AnUnavailableOutcomeIsAboutTheRequestWhenOthersWereAnswered) {
  CircuitBreaker b(30s);
  const auto t0 = Clock::time_point{} + 1000s;
  EXPECT_FALSE(b.answered_since(t0));
  b.on_answer(t0 + 5s);
  EXPECT_TRUE(b.answered_since(t0));
  EXPECT_FALSE(b.answered_since(t0 + 5s));
  EXPECT_FALSE(b.answered_since(t0 + 6s));
}

}  // namespace
}  // namespace lens::pipeline
