// Exact cosine scoring and top-k selection for stores without a vector index.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <queue>
#include <span>
#include <utility>
#include <vector>

#include "util/vector_math.h"

namespace lens::store {

[[nodiscard]] inline float l2_norm(std::span<const float> v) {
  float sum = 0;
  for (float x : v)
    sum += x * x;
  return std::sqrt(sum);
}

// Cosine of `query` (norm given) and a stored little-endian float32 vector of the same
// length at `bytes` (any alignment).
[[nodiscard]] inline double cosine_from_bytes(std::span<const float> query, float query_norm,
                                              const std::uint8_t* bytes) {
  const util::DotNorm r = util::dot_and_norm(query.data(), bytes, query.size());
  if (r.norm_squared <= 0 || query_norm <= 0) return 0;
  return r.dot / (std::sqrt(r.norm_squared) * query_norm);
}

// Keeps the k best (key, score) pairs seen.
class TopK {
 public:
  explicit TopK(std::size_t k) : k_(k) {}
  void offer(std::int64_t key, double score) {
    if (k_ == 0) return;
    if (heap_.size() < k_) {
      heap_.emplace(score, key);
    } else if (score > heap_.top().first) {
      heap_.pop();
      heap_.emplace(score, key);
    }
  }
  // Best first.
  [[nodiscard]] std::vector<std::pair<std::int64_t, double>> sorted() {
    std::vector<std::pair<std::int64_t, double>> out;
    while (!heap_.empty()) {
      out.emplace_back(heap_.top().second, heap_.top().first);
      heap_.pop();
    }
    return {out.rbegin(), out.rend()};
  }

 private:
  using Entry = std::pair<double, std::int64_t>;
  std::size_t k_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
};

}  // namespace lens::store
