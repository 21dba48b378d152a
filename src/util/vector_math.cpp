// Scoring kernel and chunk averaging. Sixteen independent accumulators (two 8-float
// vectors) keep the loop in SIMD registers without -ffast-math (a single running sum is a
// reduction the compiler may not reorder); target_clones picks the AVX2 build at load
// time on CPUs that have it.
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

namespace {
// Eight floats in one register (AVX2) or two (SSE, the default clone). GCC's vector type
// gives registers at any -O level: the earlier plain 16-lane loop was only vectorized at
// -O3 and kept its accumulators on the stack at -O2.
using Float8 = float __attribute__((vector_size(32)));
}  // namespace

LENS_TARGET_CLONES DotNorm dot_and_norm(const float* query, const unsigned char* stored, std::size_t n) {
  // Lane j of dot_lo/dot_hi sums elements i + j (i a multiple of 16): the same 16 partial
  // sums, added up in the same order, as the scalar 16-lane loop this replaced.
  Float8 dot_lo{}, dot_hi{}, norm_lo{}, norm_hi{};
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    Float8 q_lo, q_hi, v_lo, v_hi;
    std::memcpy(&q_lo, query + i, sizeof q_lo);
    std::memcpy(&q_hi, query + i + 8, sizeof q_hi);
    std::memcpy(&v_lo, stored + i * sizeof(float), sizeof v_lo);  // unaligned loads
    std::memcpy(&v_hi, stored + (i + 8) * sizeof(float), sizeof v_hi);
    dot_lo += q_lo * v_lo;
    dot_hi += q_hi * v_hi;
    norm_lo += v_lo * v_lo;
    norm_hi += v_hi * v_hi;
  }
  DotNorm out;
  for (; i < n; ++i) {
    float v;
    std::memcpy(&v, stored + i * sizeof(float), sizeof v);
    out.dot += query[i] * v;
    out.norm_squared += v * v;
  }
  for (int j = 0; j < 8; ++j) {
    out.dot += dot_lo[j];
    out.norm_squared += norm_lo[j];
  }
  for (int j = 0; j < 8; ++j) {
    out.dot += dot_hi[j];
    out.norm_squared += norm_hi[j];
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
