// The breaker's rule, kept apart from the dispatch loop so it can be tested with made-up times.
#include "pipeline/circuit_breaker.h"

#include <algorithm>

namespace lens::pipeline {

bool is_unavailable(const provider::EmbedFailure& f) {
  if (f.http_status >= 500) return true;
  // No HTTP answer: the provider classifies refused, reset, DNS, TLS handshake and
  // timeouts as transient; a certificate or URL problem is fatal and never gets here.
  return f.http_status == 0 && f.error.code == util::ErrorCode::transient;
}

UnavailableKind unavailable_kind(const provider::EmbedFailure& f) {
  if (f.http_status >= 500) return UnavailableKind::server_error;
  if (f.error.message.starts_with("timeout")) return UnavailableKind::timeout;
  return UnavailableKind::no_answer;
}

void CircuitBreaker::on_answer(Clock::time_point now) {
  streak_ = 0;
  answered_ = true;
  last_answer_ = std::max(last_answer_, now);
}

void CircuitBreaker::on_unavailable(Clock::time_point sent_at, const provider::EmbedFailure& failure) {
  if (streak_ == 0) {
    // A request sent before the provider last answered says nothing about how long it
    // has been away.
    streak_since_ = answered_ ? std::max(sent_at, last_answer_) : sent_at;
  }
  ++streak_;
  last_failure_ = failure;
}

bool CircuitBreaker::open(Clock::time_point now) const {
  return streak_ >= min_in_a_row_ && now - streak_since_ >= unavailable_after_;
}

CircuitBreaker::Clock::duration CircuitBreaker::down_for(Clock::time_point now) const {
  if (streak_ == 0) return Clock::duration::zero();
  return now - streak_since_;
}

}  // namespace lens::pipeline
