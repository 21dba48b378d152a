// What the stand-in would have charged, per input text: how many times each text (by its
// SHA-256, the digest lens-embed stores as content_sha256 when the text is the whole
// input) was embedded and paid for, synchronously or in a batch. Lets a test assert that
// every item was paid exactly once. Thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/sha256.h"

namespace lens::stand_in {

class Billing {
 public:
  // A usable synchronous answer (no injected fault) for these inputs.
  void add_sync(std::span<const std::string_view> inputs);
  // One input of a batch request that completed with status 200.
  void add_batch(std::string_view input, std::int64_t tokens);

  struct Totals {
    std::int64_t sync_inputs = 0;
    std::int64_t batch_inputs = 0;
    std::int64_t batch_tokens = 0;
    std::int64_t distinct_inputs = 0;        // texts billed at least once
    std::int64_t billed_more_than_once = 0;  // texts billed twice or more (sync and batch together)
  };
  [[nodiscard]] Totals totals() const;
  // {"<sha256 hex>":{"sync":n,"batch":m},...} (GET /stats/billed).
  [[nodiscard]] std::string json() const;
  void clear();

 private:
  struct Count {
    std::int32_t sync = 0;
    std::int32_t batch = 0;
  };
  struct DigestHash {
    std::size_t operator()(const util::Sha256& d) const noexcept {
      std::size_t h;
      static_assert(sizeof h <= sizeof d);
      std::copy_n(d.data(), sizeof h, reinterpret_cast<std::uint8_t*>(&h));
      return h;  // a digest's bytes are already uniform
    }
  };
  mutable std::mutex mu_;
  // The digest inline (no string allocation per text): a million texts take ~64 MB.
  std::unordered_map<util::Sha256, Count, DigestHash> by_digest_;
  std::int64_t batch_tokens_ = 0;
};

}  // namespace lens::stand_in
