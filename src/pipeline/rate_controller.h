// Admission control for provider requests: request and token buckets from the
// configured RPM/TPM, corrected by the provider's x-ratelimit-* headers, a model of what
// the server has left (its last `remaining`, refilled towards its limit by its `reset`, less
// what was sent since), and an AIMD concurrency window so a burst of 429s shrinks the load
// instead of multiplying retries.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "pipeline/options.h"
#include "provider/provider.h"
#include "util/token_bucket.h"

namespace lens::pipeline {

// Not thread-safe: the dispatcher owns it. Time is passed in (`now`), never read, so the
// tests drive it with a fake clock. No method fails.
class RateController {
 public:
  using Clock = std::chrono::steady_clock;

  // `limits` of 0 mean unlimited; max_concurrency is at least 1.
  RateController(const RateLimits& limits, int max_concurrency);

  // True (and the request is counted as in flight, its cost taken from the buckets)
  // when a request of `tokens` may start now; false (nothing taken) when the window is
  // full, a retry-after pause runs, a bucket is short, the server's last word leaves no
  // room for it (k_server_remaining_share of its remaining, less what is reserved for the
  // requests sent since), or no TPM limit is configured and the first request is still out
  // (until an answer says what the server allows, one request goes alone: a first wave of
  // max_concurrency large requests can exceed the server's whole budget).
  bool try_admit(std::int64_t tokens, Clock::time_point now);
  // Tokens admitted so far (monotonic). The dispatcher keeps the value right after a
  // request's admission and passes it back with the answer: what was admitted after that
  // request is what the answer's x-ratelimit-remaining-tokens may not count yet.
  [[nodiscard]] double admitted_tokens() const { return admitted_tokens_; }
  // How long until a request of `tokens` could be admitted (zero when it could be now
  // and only the concurrency window holds it).
  [[nodiscard]] Clock::duration wait_hint(std::int64_t tokens, Clock::time_point now);

  // A request admitted earlier finished. `info` corrects the buckets (limits, remaining,
  // reset); `rate_limited` for 429 halves the window and drains the buckets;
  // `retry_after` when the server advised a pause. `admitted_after` is admitted_tokens()
  // read right after that request's admission (none: nothing is reserved).
  void on_complete(const provider::RateLimitInfo& info, bool rate_limited,
                   std::optional<std::chrono::milliseconds> retry_after, Clock::time_point now,
                   std::optional<double> admitted_after = std::nullopt);
  // A request admitted earlier was abandoned without an answer.
  void on_abandon() {
    if (in_flight_ > 0) --in_flight_;
  }

  [[nodiscard]] int in_flight() const { return in_flight_; }
  [[nodiscard]] int concurrency_limit() const { return static_cast<int>(window_); }
  // Tokens per minute admitted now: the configured limit, or k_server_limit_share of the
  // server's x-ratelimit-limit-tokens once that was adopted; 0 = unlimited. Shown on the
  // progress line, so it shows the limit that actually paces the run.
  [[nodiscard]] double tpm_limit() const { return tokens_.rate_per_minute(); }
  // Whether tpm_limit() is the one adopted from the server's x-ratelimit-limit-tokens.
  [[nodiscard]] bool tpm_limit_from_server() const { return tpm_from_server_; }
  // Requests per minute admitted now, likewise.
  [[nodiscard]] double rpm_limit() const { return requests_.rate_per_minute(); }

  // Share of the server's advertised limit we aim for: the margin absorbs arrival
  // jitter at the server, so the limit is used without tripping 429s.
  static constexpr double k_server_limit_share = 0.98;
  // Burst of a bucket that follows a server limit, in seconds of refill: half of the
  // one second OpenAI-style limiters hold, so a send delayed at our side (a busy poll
  // loop, a descheduled thread) cannot land on a server bucket we think is fuller.
  static constexpr double k_server_limit_burst_seconds = 0.5;
  // Share of the server's estimated remaining tokens (less reservations) that the requests
  // admitted between two answers may use together: each is charged tokens / share against
  // that estimate, so the headers of one answer cannot release a burst the server refuses.
  static constexpr double k_server_remaining_share = 0.95;

 private:
  // x-ratelimit-limit-*: a server limit below the configured one (or any, when none is
  // configured) replaces it, so a too-high --tpm cannot turn into a stream of 429s.
  static void adopt_server_limit(util::TokenBucket& bucket, double configured, double server_limit,
                                 Clock::time_point now);

  // The server's token budget as its last answer described it: `level` at `at` (its
  // remaining, less the tokens admitted after the reporting request and since), refilled
  // linearly up to `limit` at the rate its reset implies (OpenAI's reset is the time until
  // the budget is whole again), never faster than limit / 60 a second.
  struct ServerBudget {
    bool known = false;
    double limit = 0;
    double level = 0;
    double refill_per_second = 0;
    Clock::time_point at{};
  };
  // Tokens the server has room for now by that account (may be negative).
  [[nodiscard]] double server_room(Clock::time_point now) const;
  // Tokens the server's budget lacks for a request of `tokens` (0: it fits, or no budget
  // is known).
  [[nodiscard]] double server_shortfall(double tokens, Clock::time_point now) const;
  // No TPM limit configured, no answer yet and a request out: wait for its headers.
  [[nodiscard]] bool probing_first_answer() const {
    return !answered_ && in_flight_ > 0 && configured_tpm_ <= 0;
  }

  util::TokenBucket requests_;
  util::TokenBucket tokens_;
  double configured_rpm_;
  double configured_tpm_;
  int max_concurrency_;
  double window_;
  int in_flight_ = 0;
  bool answered_ = false;  // on_complete() was called at least once
  bool tpm_from_server_ = false;
  double admitted_tokens_ = 0;
  ServerBudget server_tokens_;
  Clock::time_point paused_until_{};
  Clock::time_point last_decrease_{};
};

}  // namespace lens::pipeline
