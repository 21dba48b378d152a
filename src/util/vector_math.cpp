// Scoring kernel and chunk averaging. Sixteen independent accumulators let GCC vectorize the loop without
// -ffast-math (a single running sum is a reduction it may not reorder); target_clones
// picks the AVX2 build at load time on CPUs that have it.
#include "util/vector_math.h"

#include <cmath>
#include <cstring>

namespace lens::util {

// Under ThreadSanitizer the ifunc resolver that target_clones generates is instrumented
// and runs during relocation, before the TSan runtime exists: every binary crashes at load.
#if defined(__SANITIZE_THREAD__)
#define LENS_TARGET_CLONES
#else
#define LENS_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#endif

LENS_TARGET_CLONES DotNorm dot_and_norm(const float* query, const unsigned char* stored, std::size_t n) {
  constexpr std::size_t k_lanes = 16;
  float dot[k_lanes] = {};
  float norm[k_lanes] = {};
  std::size_t i = 0;
  for (; i + k_lanes <= n; i += k_lanes) {
    float v[k_lanes];
    std::memcpy(v, stored + i * sizeof(float), sizeof v);  // unaligned load
    for (std::size_t j = 0; j < k_lanes; ++j) {
      dot[j] += query[i + j] * v[j];
      norm[j] += v[j] * v[j];
    }
  }
  DotNorm out;
  for (; i < n; ++i) {
    float v;
    std::memcpy(&v, stored + i * sizeof(float), sizeof v);
    out.dot += query[i] * v;
    out.norm_squared += v * v;
  }
  for (std::size_t j = 0; j < k_lanes; ++j) {
    out.dot += dot[j];
    out.norm_squared += norm[j];
  }
  return out;
}

void add_weighted(std::span<float> sum, std::span<const float> vector, float weight) {
  for (std::size_t d = 0; d < sum.size() && d < vector.size(); ++d)
    sum[d] += weight * vector[d];
}

void normalize(std::span<float> vector) {
  double norm = 0;
  for (float x : vector)
    norm += static_cast<double>(x) * x;
  if (norm <= 0) return;
  const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : vector)
    x *= inv;
}

}  // namespace lens::util
