// The circuit breaker: tells from the classified outcomes of provider requests when the
// provider counts as unavailable (down for everything), so that a run stops taking work
// instead of turning its backlog into retries_exhausted rows (issue 11).
#pragma once

#include <chrono>
#include <string>

#include "provider/provider.h"

namespace lens::pipeline {

// An outcome that says nothing about the inputs, only that the provider could not be
// reached or could not serve: no HTTP answer at all (connection refused or reset, DNS,
// TLS handshake, timeout) or an HTTP 5xx. Certificate verification and bad URLs are not
// here: the provider classifies them as errors no retry can fix.
[[nodiscard]] bool is_unavailable(const provider::EmbedFailure& failure);

// What kind of unavailability, for the setting the user should check.
enum class UnavailableKind { no_answer, timeout, server_error };
[[nodiscard]] UnavailableKind unavailable_kind(const provider::EmbedFailure& failure);

// The rule: the breaker opens when at least `min_in_a_row` unavailable outcomes came in a
// row (nothing else in between) AND the provider has not answered for `unavailable_after`,
// counted from the later of the last answer and the send time of the first request of
// that streak. An answer is any outcome that is not unavailable (a success, a 400, a 429:
// the provider is there). Both conditions, so that neither a burst of fast refusals in the
// first second nor one slow timeout trips it.
//
// Not thread-safe: the dispatcher's thread alone uses it. Times are passed in, so the
// policy is tested without a clock.
class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;

  explicit CircuitBreaker(std::chrono::milliseconds unavailable_after, int min_in_a_row = 3)
      : unavailable_after_(unavailable_after), min_in_a_row_(min_in_a_row) {}

  // A request ended with an answer at `now`: the streak is over.
  void on_answer(Clock::time_point now);
  // A request sent at `sent_at` ended unavailable; `failure` is kept as the cause.
  void on_unavailable(Clock::time_point sent_at, const provider::EmbedFailure& failure);

  // Whether the rule above holds at `now` (it can start to hold with no new outcome, as
  // time passes).
  [[nodiscard]] bool open(Clock::time_point now) const;
  // Whether the provider answered anything after `t`: an unavailable outcome of a request
  // sent at `t` is then about that request, not about the provider, and counts against
  // its attempts (a 5xx for one input while others succeed must not loop forever).
  [[nodiscard]] bool answered_since(Clock::time_point t) const { return answered_ && last_answer_ > t; }

  // Unavailable outcomes in a row so far.
  [[nodiscard]] int streak() const { return streak_; }
  // How long the provider has not answered at `now` (zero without a streak).
  [[nodiscard]] Clock::duration down_for(Clock::time_point now) const;
  // The last unavailable outcome (meaningful when streak() > 0).
  [[nodiscard]] const provider::EmbedFailure& last_failure() const { return last_failure_; }
  [[nodiscard]] std::chrono::milliseconds unavailable_after() const { return unavailable_after_; }

 private:
  std::chrono::milliseconds unavailable_after_;
  int min_in_a_row_;
  int streak_ = 0;
  bool answered_ = false;
  Clock::time_point last_answer_{};
  Clock::time_point streak_since_{};
  provider::EmbedFailure last_failure_;
};

}  // namespace lens::pipeline
