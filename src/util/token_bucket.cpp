// Token bucket arithmetic.
#include "util/token_bucket.h"

#include <algorithm>

namespace lens::util {

TokenBucket::TokenBucket(double per_minute, double burst_seconds)
    : rate_per_sec_(per_minute / 60.0),
      capacity_(std::max(1.0, rate_per_sec_ * burst_seconds)),
      burst_seconds_(burst_seconds),
      level_(capacity_),
      last_(Clock::now()) {}

void TokenBucket::set_rate_per_minute(double per_minute) {
  rate_per_sec_ = per_minute / 60.0;
  capacity_ = std::max(1.0, rate_per_sec_ * burst_seconds_);
  level_ = std::min(level_, capacity_);
}

void TokenBucket::refill(Clock::time_point now) {
  // Time spent blocked by the server (a 429's reset) earns nothing: the server's bucket
  // was empty until then, and crediting that gap sent requests ~50 ms early.
  const auto from = std::max(last_, blocked_until_);
  last_ = std::max(last_, now);
  if (now <= from) return;
  const double secs = std::chrono::duration<double>(now - from).count();
  level_ = std::min(capacity_, level_ + secs * rate_per_sec_);
}

bool TokenBucket::try_take(double amount, Clock::time_point now) {
  if (unlimited()) return true;
  refill(now);
  if (now < blocked_until_) return false;
  // A request larger than the whole bucket may go when the bucket is full.
  const double need = std::min(amount, capacity_);
  if (level_ < need) return false;
  level_ -= amount;
  return true;
}

TokenBucket::Clock::duration TokenBucket::wait_time(double amount, Clock::time_point now) {
  if (unlimited()) return Clock::duration::zero();
  refill(now);
  Clock::duration extra = Clock::duration::zero();
  if (now < blocked_until_) extra = blocked_until_ - now;
  const double need = std::min(amount, capacity_) - level_;
  if (need <= 0) return extra;
  return extra +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(need / rate_per_sec_));
}

void TokenBucket::clamp_to_server(double remaining, Clock::duration reset_in, Clock::time_point now) {
  if (unlimited()) return;
  refill(now);
  level_ = std::min(level_, std::max(0.0, remaining));
  if (remaining <= 0 && reset_in > Clock::duration::zero()) {
    blocked_until_ = std::max(blocked_until_, now + reset_in);
  }
}

void TokenBucket::drain(Clock::time_point now) {
  refill(now);
  level_ = std::min(level_, 0.0);
}

double TokenBucket::available(Clock::time_point now) {
  refill(now);
  return level_;
}

}  // namespace lens::util
