// local-hash: an offline, deterministic, LEXICAL (not semantic) embedding by feature
// hashing. Texts that share words and spellings score close; paraphrases do not.
#pragma once

#include <deque>
#include <span>
#include <string_view>
#include <vector>

#include "provider/provider.h"

namespace lens::provider {

inline constexpr int k_local_hash_default_dimensions = 384;
// The model table's range for local-hash-v1 (core/model_table.cpp): beyond this the
// buckets of one text stay almost all empty and cost memory for nothing.
inline constexpr int k_local_hash_max_dimensions = 65536;

// The vector local-hash gives `text`: lower-cased word unigrams (weight 1) and bigrams
// (weight 0.5) plus character 3-grams of each word with boundary marks (weight 0.25),
// each hashed (FNV-1a 64) to a bucket and a sign, then L2-normalized. A text without
// word characters ("?", "", "...") has none of those features; it gets the one feature
// of its whole bytes instead, so its vector is still a deterministic unit vector (never
// all-zero, which cosine similarity cannot rank) and equal texts stay equal.
// REQUIRES: out is not empty.
void local_hash_embed(std::string_view text, std::span<float> out);

// Whether `text` has word features (letters or digits; any non-ASCII byte counts as a
// letter). search uses it to say that a query like "?" can match nothing by words.
[[nodiscard]] bool local_hash_has_features(std::string_view text);

class LocalHashProvider final : public Provider {
 public:
  explicit LocalHashProvider(int default_dimensions = k_local_hash_default_dimensions)
      : default_dimensions_(default_dimensions) {}

  void submit(EmbedRequest request) override;
  [[nodiscard]] std::vector<Completion> poll(std::chrono::milliseconds timeout) override;
  [[nodiscard]] std::size_t in_flight() const override { return done_.size(); }
  void cancel_all() override { done_.clear(); }

 private:
  int default_dimensions_;
  std::deque<Completion> done_;
};

}  // namespace lens::provider
