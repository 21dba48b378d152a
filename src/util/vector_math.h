// Float32 vector arithmetic: the scoring kernel over stored vectors (dot product and
// squared norm of raw little-endian bytes, AVX2 and a portable fallback) and the
// token-weighted mean that turns the vectors of an input's chunks into one.
#pragma once

#include <cstddef>
#include <span>

namespace lens::util {

struct DotNorm {
  float dot = 0;
  float norm_squared = 0;  // of the stored vector
};

// `query` is n floats; `stored` is n little-endian float32 values at any alignment.
[[nodiscard]] DotNorm dot_and_norm(const float* query, const unsigned char* stored, std::size_t n);

// The token-weighted mean of chunk vectors, in two steps because the chunks of one input
// come back in different responses: accumulate each as it arrives, normalize once at the
// end. The direction is the mean's; the length is 1, like the provider's own vectors.
// `sum` += `weight` * `vector`, element by element.
// REQUIRES: sum.size() == vector.size().
void add_weighted(std::span<float> sum, std::span<const float> vector, float weight);
// Scales `vector` to unit Euclidean length (the norm summed in double). A zero vector is
// left as it is: it has no direction to keep.
void normalize(std::span<float> vector);

}  // namespace lens::util
