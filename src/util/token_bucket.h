// A token bucket for rate limits (requests or tokens per minute). Not thread-safe: the
// pipeline's dispatcher owns its buckets.
#pragma once

#include <chrono>

namespace lens::util {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // `per_minute` <= 0 means unlimited. The bucket holds at most `burst_seconds` worth of
  // refill, so an idle pause does not turn into a burst the provider would reject.
  explicit TokenBucket(double per_minute, double burst_seconds = 1.0);

  [[nodiscard]] bool unlimited() const { return rate_per_sec_ <= 0; }
  [[nodiscard]] double rate_per_minute() const { return rate_per_sec_ * 60.0; }
  void set_rate_per_minute(double per_minute);

  // Takes `amount` if available now (may go negative for amounts larger than capacity,
  // so a single huge request is not blocked forever) and returns true; else false.
  bool try_take(double amount, Clock::time_point now);
  // How long until `amount` could be taken.
  [[nodiscard]] Clock::duration wait_time(double amount, Clock::time_point now);
  // Server says only `remaining` are left until `reset_in`: never believe we hold more.
  void clamp_to_server(double remaining, Clock::duration reset_in, Clock::time_point now);
  // Empty the bucket: after a 429 we have evidently used more than we thought.
  void drain(Clock::time_point now);

  [[nodiscard]] double available(Clock::time_point now);

 private:
  void refill(Clock::time_point now);

  double rate_per_sec_;
  double capacity_;
  double burst_seconds_;
  double level_;
  Clock::time_point last_;
  Clock::time_point blocked_until_{};
};

}  // namespace lens::util
