// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): spreads retries of many clients so they do not return in lock-step.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace lens::util {

struct BackoffPolicy {
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds cap{30'000};
};

// Delay before retry number `attempt` (1 = first retry): uniform in [0, min(cap, base*2^(attempt-1))].
[[nodiscard]] std::chrono::milliseconds full_jitter(const BackoffPolicy& policy, int attempt,
                                                    std::mt19937_64& rng);

}  // namespace lens::util
