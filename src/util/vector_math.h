// Dot product and squared norm over float32 vectors stored as raw little-endian bytes
// (SQLite BLOBs, PostgreSQL arrays), compiled for AVX2 and a portable fallback.
#pragma once

#include <cstddef>

namespace lens::util {

struct DotNorm {
  float dot = 0;
  float norm_squared = 0;  // of the stored vector
};

// `query` is n floats; `stored` is n little-endian float32 values at any alignment.
[[nodiscard]] DotNorm dot_and_norm(const float* query, const unsigned char* stored, std::size_t n);

}  // namespace lens::util
