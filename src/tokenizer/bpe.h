// Byte-pair merge of one pre-tokenized piece, exactly as tiktoken's _byte_pair_merge:
// repeatedly merge the adjacent pair with the lowest rank, leftmost first on ties.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/rank_table.h"

namespace lens::tokenizer {

// Pieces longer than this take the heap-based merge: tiktoken's linear rescan is
// O(n^2) and a 100k-letter "word" would take seconds. Below it the rescan of a small
// array is faster than any heap (the same trade-off tiktoken documents).
inline constexpr std::size_t k_long_piece = 256;

// Heap-based merge for long pieces; same result as the linear one. Appends ranks.
void byte_pair_merge_long(const RankTable& ranks, std::string_view piece, std::vector<std::uint32_t>& out);

// Calls emit(rank) for each token of `piece` in order.
template <typename Emit>
void byte_pair_encode(const RankTable& ranks, std::string_view piece, Emit&& emit) {
  const std::size_t n = piece.size();
  if (n == 1) {
    emit(ranks.byte_rank(static_cast<std::uint8_t>(piece[0])));
    return;
  }
  if (const std::uint32_t whole = ranks.find(piece); whole != k_no_rank) {
    emit(whole);
    return;
  }
  if (n > k_long_piece) {
    thread_local std::vector<std::uint32_t> long_out;
    long_out.clear();
    byte_pair_merge_long(ranks, piece, long_out);
    for (std::uint32_t r : long_out)
      emit(r);
    return;
  }
  struct Part {
    std::uint32_t start;
    std::uint32_t rank;  // rank of merging this part with the next one
  };
  Part parts[k_long_piece + 1];
  const char* p = piece.data();
  std::size_t m = n + 1;
  std::uint32_t min_rank = k_no_rank;
  std::size_t min_i = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const std::uint32_t r = ranks.find(p + i, 2);
    parts[i] = {static_cast<std::uint32_t>(i), r};
    if (r < min_rank) {
      min_rank = r;
      min_i = i;
    }
  }
  parts[n - 1] = {static_cast<std::uint32_t>(n - 1), k_no_rank};
  parts[n] = {static_cast<std::uint32_t>(n), k_no_rank};
  // Rank of parts[i] merged with the two parts after it, i.e. after the pending merge.
  auto rank_after = [&](std::size_t i) {
    if (i + 3 < m) return ranks.find(p + parts[i].start, parts[i + 3].start - parts[i].start);
    return k_no_rank;
  };
  while (min_rank != k_no_rank) {
    const std::size_t i = min_i;
    if (i > 0) parts[i - 1].rank = rank_after(i - 1);
    parts[i].rank = rank_after(i);
    for (std::size_t j = i + 1; j + 1 < m; ++j)
      parts[j] = parts[j + 1];
    --m;
    min_rank = k_no_rank;
    for (std::size_t j = 0; j + 1 < m; ++j) {
      if (parts[j].rank < min_rank) {
        min_rank = parts[j].rank;
        min_i = j;
      }
    }
  }
  for (std::size_t j = 0; j + 1 < m; ++j) {
    emit(ranks.find(p + parts[j].start, parts[j + 1].start - parts[j].start));
  }
}

}  // namespace lens::tokenizer
