// The stand-in provider's embedding of a text: a deterministic function of sha256(text)
// and the dimension count, so a verifier can recompute exactly what the stand-in sent.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "util/sha256.h"

namespace lens::stand_in {

// Unit-length vector with components from splitmix64 seeded by the text's digest. Each
// raw component is a 24-bit integer scaled into [-1, 1), exact in float32; the
// normalisation is plain IEEE arithmetic, so any build reproduces it bit for bit.
inline void stand_in_vector(std::string_view text, std::span<float> out) {
  const util::Sha256 digest = util::sha256(text);
  std::uint64_t words[4];
  std::memcpy(words, digest.data(), sizeof words);
  std::uint64_t state = words[0] ^ (words[1] * 0x9E3779B97F4A7C15ULL) ^ (words[2] >> 7) ^ (words[3] << 11) ^
                        (static_cast<std::uint64_t>(out.size()) * 0xD6E8FEB86659FD93ULL);
  double norm = 0;
  for (float& v : out) {
    state += 0x9E3779B97F4A7C15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    v = static_cast<float>(static_cast<double>(z >> 40) * (2.0 / 16777216.0) - 1.0);
    norm += static_cast<double>(v) * v;
  }
  if (norm <= 0) return;
  const double inv = 1.0 / std::sqrt(norm);
  for (float& v : out)
    v = static_cast<float>(v * inv);
}

}  // namespace lens::stand_in
