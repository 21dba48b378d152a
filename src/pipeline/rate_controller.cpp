// Token buckets + AIMD window.
#include "pipeline/rate_controller.h"

#include <algorithm>
#include <cmath>

namespace lens::pipeline {

RateController::RateController(const RateLimits& limits, int max_concurrency)
    : requests_(limits.requests_per_minute, 1.0),
      tokens_(limits.tokens_per_minute, 1.0),
      configured_rpm_(limits.requests_per_minute),
      configured_tpm_(limits.tokens_per_minute),
      max_concurrency_(std::max(1, max_concurrency)),
      window_(max_concurrency_) {}

bool RateController::try_admit(std::int64_t tokens, Clock::time_point now) {
  if (now < paused_until_) return false;
  if (in_flight_ >= static_cast<int>(window_)) return false;
  if (probing_first_answer()) return false;
  // Check both before taking from either, so a refusal costs nothing.
  if (requests_.wait_time(1, now) > Clock::duration::zero()) return false;
  if (tokens_.wait_time(static_cast<double>(tokens), now) > Clock::duration::zero()) return false;
  if (server_shortfall(static_cast<double>(tokens), now) > 0) return false;
  (void)requests_.try_take(1, now);
  (void)tokens_.try_take(static_cast<double>(tokens), now);
  ++in_flight_;
  admitted_tokens_ += static_cast<double>(tokens);
  if (server_tokens_.known) {
    // Charged at 1/share: the requests admitted between two answers spend at most that
    // share of the room the last answer left, however many of them fit.
    server_tokens_.level = server_room(now) - static_cast<double>(tokens) / k_server_remaining_share;
    server_tokens_.at = std::max(server_tokens_.at, now);
  }
  return true;
}

double RateController::server_room(Clock::time_point now) const {
  const ServerBudget& b = server_tokens_;
  const double secs = std::max(0.0, std::chrono::duration<double>(now - b.at).count());
  return std::min(b.limit, b.level + secs * b.refill_per_second);
}

double RateController::server_shortfall(double tokens, Clock::time_point now) const {
  if (!server_tokens_.known) return 0;
  // A request larger than the share of the whole budget could never fit: it goes when the
  // budget is whole (the server lets such a request through a full bucket, or refuses it
  // with a clear error that the caller handles).
  const double need = std::min(tokens, k_server_remaining_share * server_tokens_.limit);
  const double short_by = need / k_server_remaining_share - server_room(now);
  return short_by > 1e-6 ? short_by : 0;
}

RateController::Clock::duration RateController::wait_hint(std::int64_t tokens, Clock::time_point now) {
  Clock::duration wait = Clock::duration::zero();
  if (now < paused_until_) wait = paused_until_ - now;
  // Only an answer ends it: look again at the dispatcher's poll interval (a poll returns
  // as soon as the answer is there).
  if (probing_first_answer()) wait = std::max<Clock::duration>(wait, std::chrono::milliseconds(50));
  wait = std::max(wait, requests_.wait_time(1, now));
  wait = std::max(wait, tokens_.wait_time(static_cast<double>(tokens), now));
  if (const double short_by = server_shortfall(static_cast<double>(tokens), now); short_by > 0) {
    const double rate = server_tokens_.refill_per_second;
    // No refill known: look again soon (the next answer corrects the estimate).
    const auto until =
        rate > 0 ? std::chrono::duration<double>(short_by / rate) : std::chrono::duration<double>(0.05);
    wait = std::max(wait, std::chrono::duration_cast<Clock::duration>(until));
  }
  return wait;
}

void RateController::on_complete(const provider::RateLimitInfo& info, bool rate_limited,
                                 std::optional<std::chrono::milliseconds> retry_after, Clock::time_point now,
                                 std::optional<double> admitted_after) {
  if (in_flight_ > 0) --in_flight_;
  answered_ = true;
  if (info.limit_tokens && info.remaining_tokens && *info.limit_tokens > 0) {
    ServerBudget& b = server_tokens_;
    b.known = true;
    b.limit = *info.limit_tokens;
    b.at = now;
    // What was admitted after the reporting request may not be in its remaining yet.
    b.level = *info.remaining_tokens - (admitted_tokens_ - admitted_after.value_or(admitted_tokens_));
    // A per-minute limit refills at most limit / 60 a second. (limit - remaining) / reset
    // says the same of a bucket that holds the whole minute, as OpenAI's does, but 60 times
    // more of one that holds a second (its reset is short while limit - remaining stays
    // large): the room estimated from it let bursts through that drew 429s (issue 14's
    // tier-5 run: 13 of 92 requests). The slower of the two is the safe one.
    const double reset_s =
        std::chrono::duration<double>(info.reset_tokens.value_or(std::chrono::milliseconds(0))).count();
    const double missing = b.limit - *info.remaining_tokens;
    b.refill_per_second =
        reset_s > 0 && missing > 0 ? std::min(missing / reset_s, b.limit / 60.0) : b.limit / 60.0;
  }
  if (info.limit_requests) adopt_server_limit(requests_, configured_rpm_, *info.limit_requests, now);
  if (info.limit_tokens) {
    adopt_server_limit(tokens_, configured_tpm_, *info.limit_tokens, now);
    tpm_from_server_ = tpm_from_server_ || configured_tpm_ <= 0 ||
                       configured_tpm_ > *info.limit_tokens * k_server_limit_share;
  }
  if (info.remaining_requests) {
    requests_.clamp_to_server(*info.remaining_requests,
                              info.reset_requests.value_or(std::chrono::milliseconds(0)), now);
  }
  if (info.remaining_tokens) {
    tokens_.clamp_to_server(*info.remaining_tokens, info.reset_tokens.value_or(std::chrono::milliseconds(0)),
                            now);
  }
  if (rate_limited) {
    // One decrease per round trip: the 429s of one window are one congestion signal.
    if (now - last_decrease_ > std::chrono::seconds(1)) {
      window_ = std::max(1.0, window_ / 2);
      last_decrease_ = now;
    }
    tokens_.drain(now);
    requests_.drain(now);
    if (retry_after) paused_until_ = std::max(paused_until_, now + *retry_after);
  } else {
    window_ = std::min<double>(max_concurrency_, window_ + 1.0 / window_);
  }
}

void RateController::adopt_server_limit(util::TokenBucket& bucket, double configured, double server_limit,
                                        Clock::time_point now) {
  if (server_limit <= 0) return;
  const double target = server_limit * k_server_limit_share;
  if (configured > 0 && configured <= target) return;
  if (std::abs(bucket.rate_per_minute() - target) <= target * 1e-6) return;  // already adopted
  // A new bucket with the smaller burst, holding no more than the old one did.
  const double level = bucket.available(now);
  bucket = util::TokenBucket(target, k_server_limit_burst_seconds);
  bucket.clamp_to_server(std::max(level, 1e-9), Clock::duration::zero(), now);
}

}  // namespace lens::pipeline
