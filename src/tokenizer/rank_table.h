// Byte-string -> rank table parsed from a .tiktoken file (base64 token, space, rank per line),
// with a flat open-addressing index so the BPE inner loop does no allocation and no rehash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace lens::tokenizer {

inline constexpr std::uint32_t k_no_rank = 0xFFFFFFFFu;

// Hash of a short byte string; reads 8 bytes at a time because tokens average ~4-8 bytes.
[[nodiscard]] inline std::uint64_t hash_bytes(const char* p, std::size_t n) {
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t v = 0;
    // Byte-wise tail: n < 8, and a variable-length memcpy would be an out-of-line call.
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t(std::uint8_t(p[i])) << (8 * i);
    h = (h ^ v) * 0x94D049BB133111EBull;
  }
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

class RankTable {
 public:
  // Parses the whole .tiktoken file. On failure: permanent (corrupt line, duplicate rank).
  [[nodiscard]] static util::Result<RankTable> parse(std::string_view file);

  // Rank of exactly these bytes, or k_no_rank.
  [[nodiscard]] std::uint32_t find(const char* p, std::size_t n) const {
    const std::uint64_t h = hash_bytes(p, n);
    const std::uint32_t tag = static_cast<std::uint32_t>(h >> 32) | 1u;  // 0 marks empty
    std::size_t i = static_cast<std::size_t>(h) & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return k_no_rank;
      if (s.tag == tag) {
        const std::uint32_t b = offsets_[s.rank];
        if (offsets_[s.rank + 1] - b == n && std::memcmp(arena_.data() + b, p, n) == 0) {
          return s.rank;
        }
      }
      i = (i + 1) & mask_;
    }
  }
  [[nodiscard]] std::uint32_t find(std::string_view s) const { return find(s.data(), s.size()); }

  // Bytes of `rank`; empty if the rank is not in the table.
  [[nodiscard]] std::string_view bytes_of(std::uint32_t rank) const {
    if (rank + 1 >= offsets_.size()) return {};
    return {arena_.data() + offsets_[rank], offsets_[rank + 1] - offsets_[rank]};
  }
  [[nodiscard]] bool has_rank(std::uint32_t rank) const {
    return rank + 1 < offsets_.size() && offsets_[rank + 1] > offsets_[rank];
  }
  [[nodiscard]] std::size_t size() const { return count_; }
  // Rank of each single byte (every byte is a token in these encodings).
  [[nodiscard]] std::uint32_t byte_rank(std::uint8_t b) const { return byte_ranks_[b]; }

 private:
  struct Slot {
    std::uint32_t tag = 0;
    std::uint32_t rank = 0;
  };
  std::string arena_;                   // all token bytes, in rank order
  std::vector<std::uint32_t> offsets_;  // rank -> arena offset; size max_rank + 2
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
  std::uint32_t byte_ranks_[256] = {};
};

}  // namespace lens::tokenizer
