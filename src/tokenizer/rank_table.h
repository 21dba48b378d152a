// Byte-string -> rank table parsed from a .tiktoken file (base64 token, space, rank per line),
// with a flat open-addressing index so the BPE inner loop does no allocation and no rehash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace lens::tokenizer {

inline constexpr std::uint32_t k_no_rank = 0xFFFFFFFFu;

struct HashedBytes {
  std::uint64_t hash;
  std::uint64_t head;  // the first min(n, 8) bytes, little-endian, zero-padded
};

// Hash of a short byte string; reads 8 bytes at a time because tokens average ~4-8 bytes.
// Also returns the first 8 bytes so short keys compare without a memcmp call.
[[nodiscard]] inline HashedBytes hash_bytes(const char* p, std::size_t n) {
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  std::uint64_t head = 0;
  const bool short_key = n < 8;
  if (!short_key) std::memcpy(&head, p, 8);
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
    for (std::size_t i = 0; i < n; ++i)
      v |= std::uint64_t(std::uint8_t(p[i])) << (8 * i);
    if (short_key) head = v;
    h = (h ^ v) * 0x94D049BB133111EBull;
  }
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return {h, head};
}

class RankTable {
 public:
  // Parses the whole .tiktoken file. On failure: permanent (corrupt line, duplicate rank).
  [[nodiscard]] static util::Result<RankTable> parse(std::string_view file);

  // Rank of exactly these bytes, or k_no_rank.
  [[nodiscard]] std::uint32_t find(const char* p, std::size_t n) const {
    if (n == 2) return pair_ranks_[pair_index(p)];
    const HashedBytes hb = hash_bytes(p, n);
    std::size_t i = static_cast<std::size_t>(hb.hash) & mask_;
    const Slot* slots = slots_;
    for (;;) {
      const Slot& s = slots[i];
      if (s.len == 0) return k_no_rank;
      // The slot holds the first 8 bytes itself: one cache line decides most lookups.
      if (s.head == hb.head && s.len == n &&
          (n <= 8 || std::memcmp(arena_.get() + offsets_[s.rank] + 8, p + 8, n - 8) == 0)) {
        return s.rank;
      }
      i = (i + 1) & mask_;
    }
  }
  [[nodiscard]] std::uint32_t find(std::string_view s) const { return find(s.data(), s.size()); }

  // Bytes of `rank`; empty if the rank is not in the table.
  [[nodiscard]] std::string_view bytes_of(std::uint32_t rank) const {
    if (rank + 1 >= offsets_.size()) return {};
    return {arena_.get() + offsets_[rank], offsets_[rank + 1] - offsets_[rank]};
  }
  [[nodiscard]] bool has_rank(std::uint32_t rank) const {
    return rank + 1 < offsets_.size() && offsets_[rank + 1] > offsets_[rank];
  }
  [[nodiscard]] std::size_t size() const { return count_; }
  // Length of the longest token: n tokens never cover more than n * this many bytes.
  [[nodiscard]] std::size_t max_token_bytes() const { return max_token_bytes_; }
  // Rank of each single byte (every byte is a token in these encodings).
  [[nodiscard]] std::uint32_t byte_rank(std::uint8_t b) const { return byte_ranks_[b]; }

 private:
  struct Slot {
    std::uint64_t head;  // first min(len, 8) bytes, zero-padded
    std::uint32_t rank;
    std::uint32_t len;  // 0 marks an empty slot (no token is empty)
  };
  [[nodiscard]] static std::size_t pair_index(const char* p) {
    return (std::size_t(std::uint8_t(p[0])) << 8) | std::uint8_t(p[1]);
  }
  // Zeroed anonymous memory for the slot array, asking for transparent huge pages: the
  // 4-8 MB index then costs a few page faults to load instead of thousands, and far fewer
  // TLB misses per lookup. Move-only.
  class ZeroedPages {
   public:
    ZeroedPages() = default;
    explicit ZeroedPages(std::size_t bytes);
    ZeroedPages(ZeroedPages&& o) noexcept : p_(o.p_), size_(o.size_) { o.p_ = nullptr; }
    ZeroedPages& operator=(ZeroedPages&& o) noexcept;
    ZeroedPages(const ZeroedPages&) = delete;
    ZeroedPages& operator=(const ZeroedPages&) = delete;
    ~ZeroedPages();
    [[nodiscard]] void* get() const { return p_; }

   private:
    void* p_ = nullptr;
    std::size_t size_ = 0;
  };
  std::unique_ptr<char[]> arena_;       // all token bytes in rank order, + 8 spare bytes
  std::vector<std::uint32_t> offsets_;  // rank -> arena offset; size max_rank + 2
  ZeroedPages slot_pages_;
  Slot* slots_ = nullptr;  // points into slot_pages_
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
  std::size_t max_token_bytes_ = 0;
  std::uint32_t byte_ranks_[256] = {};
  // Every 2-byte string's rank, directly indexed (256 KB): the merge looks up all adjacent
  // byte pairs of a piece first, and this skips hashing for them.
  std::vector<std::uint32_t> pair_ranks_;
};

}  // namespace lens::tokenizer
