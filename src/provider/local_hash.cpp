// Feature-hashing embedder. Words are runs of letters/digits (any non-ASCII byte counts
// as a letter, so every script forms words); ASCII letters are lower-cased.
#include "provider/local_hash.h"

#include <cmath>
#include <cstdint>
#include <string>

namespace lens::provider {
namespace {

constexpr std::uint64_t k_fnv_offset = 14695981039346656037ULL;
constexpr std::uint64_t k_fnv_prime = 1099511628211ULL;

std::uint64_t fnv1a(std::string_view bytes, std::uint64_t seed) {
  std::uint64_t h = k_fnv_offset ^ seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= k_fnv_prime;
  }
  // FNV's low bits mix poorly; finish with a murmur-style avalanche.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

bool is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

void add_feature(std::span<float> out, std::string_view feature, std::uint64_t seed, float weight) {
  const std::uint64_t h = fnv1a(feature, seed);
  const std::size_t bucket = static_cast<std::size_t>(h % out.size());
  out[bucket] += (h >> 63) ? -weight : weight;
}

}  // namespace

void local_hash_embed(std::string_view text, std::span<float> out) {
  for (float& v : out)
    v = 0.0f;
  if (out.empty()) return;
  std::string word, previous, gram;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !is_word_byte(static_cast<unsigned char>(text[i])))
      ++i;
    word.clear();
    while (i < text.size() && is_word_byte(static_cast<unsigned char>(text[i]))) {
      char c = text[i++];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      word.push_back(c);
    }
    if (word.empty()) break;
    add_feature(out, word, 1, 1.0f);
    if (!previous.empty()) {
      gram = previous;
      gram.push_back(' ');
      gram += word;
      add_feature(out, gram, 2, 0.5f);
    }
    gram = "<" + word + ">";
    for (std::size_t k = 0; k + 3 <= gram.size(); ++k) {
      add_feature(out, std::string_view(gram).substr(k, 3), 3, 0.25f);
    }
    previous.swap(word);
  }
  double norm = 0;
  for (float v : out)
    norm += static_cast<double>(v) * v;
  if (norm <= 0) {
    // No features (or, rarely, features that cancelled out in one bucket): the whole
    // text is the feature, with its own seed so it cannot collide with a word's.
    add_feature(out, text, 4, 1.0f);
    norm = 1.0;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& v : out)
    v *= inv;
}

bool local_hash_has_features(std::string_view text) {
  for (unsigned char c : text) {
    if (is_word_byte(c)) return true;
  }
  return false;
}

void LocalHashProvider::submit(EmbedRequest request) {
  Completion c;
  c.ticket = request.ticket;
  EmbedSuccess ok;
  ok.dimensions = request.dimensions.value_or(default_dimensions_);
  if (ok.dimensions <= 0 || ok.dimensions > k_local_hash_max_dimensions) {
    c.result = std::unexpected(EmbedFailure{
        util::Error{util::ErrorCode::fatal,
                    "local-hash: dimensions must be 1.." + std::to_string(k_local_hash_max_dimensions)},
        0,
        {},
        false});
    done_.push_back(std::move(c));
    return;
  }
  const auto dims = static_cast<std::size_t>(ok.dimensions);
  ok.vectors.resize(request.inputs.size() * dims);
  for (std::size_t i = 0; i < request.inputs.size(); ++i) {
    local_hash_embed(request.inputs[i], std::span<float>(ok.vectors).subspan(i * dims, dims));
  }
  c.result = std::move(ok);
  done_.push_back(std::move(c));
}

std::vector<Completion> LocalHashProvider::poll(std::chrono::milliseconds) {
  std::vector<Completion> out(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
  done_.clear();
  return out;
}

}  // namespace lens::provider
