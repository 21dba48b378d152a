// Heap-based byte-pair merge for long pieces: O(n log n) instead of tiktoken's O(n^2),
// with the same (rank, leftmost position) order so the result is identical.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <queue>

namespace lens::tokenizer {

void byte_pair_merge_long(const RankTable& ranks, std::string_view piece, std::vector<std::uint32_t>& out) {
  const std::size_t n = piece.size();
  const char* p = piece.data();
  // Parts are identified by their start offset; next_/prev_ form a linked list over them.
  std::vector<std::uint32_t> next(n + 1), prev(n + 1), rank(n + 1, k_no_rank);
  std::vector<bool> alive(n + 1, true);
  for (std::size_t i = 0; i <= n; ++i) {
    next[i] = static_cast<std::uint32_t>(i + 1);
    prev[i] = static_cast<std::uint32_t>(i == 0 ? 0 : i - 1);
  }
  // Min-heap on (rank << 32 | start): lowest rank first, then leftmost, as tiktoken.
  std::vector<std::uint64_t> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<std::uint64_t, std::vector<std::uint64_t>, std::greater<>> heap(
      std::greater<>{}, std::move(heap_storage));
  auto pair_rank = [&](std::uint32_t i) -> std::uint32_t {
    const std::uint32_t j = next[i];
    if (j >= n) return k_no_rank;
    const std::uint32_t k = next[j];
    return ranks.find(p + i, k - i);
  };
  for (std::uint32_t i = 0; i + 1 < n; ++i) {
    rank[i] = pair_rank(i);
    if (rank[i] != k_no_rank) heap.push((std::uint64_t(rank[i]) << 32) | i);
  }
  while (!heap.empty()) {
    const std::uint64_t top = heap.top();
    heap.pop();
    const std::uint32_t i = static_cast<std::uint32_t>(top);
    const std::uint32_t r = static_cast<std::uint32_t>(top >> 32);
    if (!alive[i] || rank[i] != r) continue;  // stale entry
    const std::uint32_t j = next[i];
    const std::uint32_t k = next[j];
    alive[j] = false;
    next[i] = k;
    if (k <= n) prev[k] = i;
    rank[i] = pair_rank(i);
    if (rank[i] != k_no_rank) heap.push((std::uint64_t(rank[i]) << 32) | i);
    if (i > 0) {
      const std::uint32_t h = prev[i];
      rank[h] = pair_rank(h);
      if (rank[h] != k_no_rank) heap.push((std::uint64_t(rank[h]) << 32) | h);
    }
  }
  for (std::uint32_t i = 0; i < n; i = next[i])
    out.push_back(ranks.find(p + i, next[i] - i));
}

}  // namespace lens::tokenizer
