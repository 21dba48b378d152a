// Full-jitter backoff.
#include "util/backoff.h"

#include <algorithm>

namespace lens::util {

std::chrono::milliseconds full_jitter(const BackoffPolicy& policy, int attempt, std::mt19937_64& rng) {
  const int shift = std::clamp(attempt - 1, 0, 30);
  const std::int64_t grown = policy.base.count() << shift;
  const std::int64_t ceiling = std::min<std::int64_t>(policy.cap.count(), grown);
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(ceiling, 0));
  return std::chrono::milliseconds(pick(rng));
}

}  // namespace lens::util
