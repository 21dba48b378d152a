// Exact cosine scoring and top-k selection for stores without a vector index.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <queue>
#include <span>
#include <utility>
#include <vector>

namespace lens::store {

[[nodiscard]] inline float l2_norm(std::span<const float> v) {
  float sum = 0;
  for (float x : v) sum += x * x;
  return std::sqrt(sum);
}

// Cosine of `query` (norm given) and a stored little-endian float32 vector of the same
// length at `bytes`. Copies through small aligned blocks so the loop vectorizes.
[[nodiscard]] inline double cosine_from_bytes(std::span<const float> query, float query_norm,
                                              const std::uint8_t* bytes) {
  constexpr std::size_t k_block = 256;
  alignas(64) float block[k_block];
  float dot = 0, norm = 0;
  for (std::size_t start = 0; start < query.size(); start += k_block) {
    const std::size_t n = std::min(k_block, query.size() - start);
    std::memcpy(block, bytes + start * sizeof(float), n * sizeof(float));
    for (std::size_t i = 0; i < n; ++i) {
      dot += query[start + i] * block[i];
      norm += block[i] * block[i];
    }
  }
  if (norm <= 0 || query_norm <= 0) return 0;
  return dot / (std::sqrt(norm) * query_norm);
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
