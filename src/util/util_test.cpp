// Unit tests of util: UTF-8 repair, redaction, backoff bounds, token bucket, sha256, vector math.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "util/backoff.h"
#include "util/redact.h"
#include "util/sha256.h"
#include "util/token_bucket.h"
#include "util/utf8.h"
#include "util/vector_math.h"

namespace lens::util {
namespace {

TEST(Utf8, ValidatesAndRepairs) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // lone surrogate (CESU)
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));      // overlong
  EXPECT_EQ(repair_utf8("a\xFF"
                        "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(repair_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(is_valid_utf8(repair_utf8("\xF0\x9F\x98")));
}

TEST(Utf8, Floor) {
  const std::string s = "a\xC3\xA9z";  // a é z
  EXPECT_EQ(utf8_floor(s, 2), 1u);
  EXPECT_EQ(utf8_floor(s, 3), 3u);
  EXPECT_EQ(utf8_floor(s, 99), s.size());
}

TEST(Utf8, Blank) {
  EXPECT_TRUE(is_blank(""));
  EXPECT_TRUE(is_blank(" \t\r\n\v\f"));
  EXPECT_TRUE(is_blank("\xC2\xA0\xE3\x80\x80"));  // NBSP, ideographic space
  EXPECT_FALSE(is_blank(" x "));
  EXPECT_FALSE(is_blank("\xFF"));
}

TEST(Redact, MasksRegisteredSecretsBearerAndPasswords) {
  register_secret("sk-test-SECRET-123");
  EXPECT_EQ(redact("key sk-test-SECRET-123 used"), "key *** used");
  EXPECT_EQ(redact("Authorization: Bearer abc.def-ghi"), "Authorization: Bearer ***");
  EXPECT_EQ(redact("postgresql://lens:hunter2@db:5432/lens"), "postgresql://lens:***@db:5432/lens");
  EXPECT_EQ(redact("host=db password=hunter2 user=x"), "host=db password=*** user=x");
  EXPECT_EQ(redact("nothing here"), "nothing here");
}

TEST(Backoff, FullJitterStaysWithinCap) {
  std::mt19937_64 rng(42);
  BackoffPolicy p{std::chrono::milliseconds(100), std::chrono::milliseconds(1000)};
  for (int attempt = 1; attempt < 40; ++attempt) {
    const auto d = full_jitter(p, attempt, rng);
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d.count(), std::min<long>(1000, 100L << std::min(attempt - 1, 30)));
  }
}

TEST(TokenBucket, RefillsAtRate) {
  using namespace std::chrono;
  TokenBucket b(6000, 1.0);  // 100/s, capacity 100
  const auto t0 = TokenBucket::Clock::now();
  EXPECT_TRUE(b.try_take(100, t0));
  EXPECT_FALSE(b.try_take(10, t0));
  EXPECT_GT(b.wait_time(10, t0), milliseconds(90));
  EXPECT_TRUE(b.try_take(10, t0 + milliseconds(110)));
  b.clamp_to_server(0, seconds(2), t0 + milliseconds(200));
  EXPECT_FALSE(b.try_take(1, t0 + seconds(1)));
  EXPECT_TRUE(b.try_take(1, t0 + milliseconds(2300)));
}

// The time a server's reset blocked the bucket earns no tokens: after a 429 at t0 with
// 200 ms to reset, 10 tokens at 25/s take until t0 + 200 ms + 400 ms.
TEST(TokenBucket, BlockedTimeEarnsNoTokens) {
  using namespace std::chrono;
  TokenBucket b(1500, 1.0);  // 25/s, capacity 25
  const auto t0 = TokenBucket::Clock::now();
  EXPECT_TRUE(b.try_take(25, t0));
  b.clamp_to_server(0, milliseconds(200), t0);
  EXPECT_FALSE(b.try_take(1, t0 + milliseconds(10)));
  EXPECT_FALSE(b.try_take(10, t0 + milliseconds(450)));  // 0.44 s since the last look, 0.25 s unblocked
  EXPECT_TRUE(b.try_take(10, t0 + milliseconds(601)));
}

TEST(Sha256, KnownVector) {
  EXPECT_EQ(to_hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace lens::util

namespace lens::util {
namespace {

TEST(VectorMath, DotAndNormMatchScalarAtAnyLengthAndAlignment) {
  for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 384u, 3072u, 3073u}) {
    std::vector<float> q(n), v(n);
    for (std::size_t i = 0; i < n; ++i) {
      q[i] = static_cast<float>(i % 7) - 3.0f;
      v[i] = static_cast<float>(i % 5) * 0.5f;
    }
    std::vector<unsigned char> bytes(n * 4 + 1);
    if (n > 0)
      std::memcpy(bytes.data() + 1, v.data(), n * 4);  // deliberately misaligned; v.data() may be null
    double dot = 0, norm = 0;
    for (std::size_t i = 0; i < n; ++i) {
      dot += q[i] * v[i];
      norm += v[i] * v[i];
    }
    const auto r = dot_and_norm(q.data(), bytes.data() + 1, n);
    EXPECT_NEAR(r.dot, dot, 1e-3 * (1 + std::abs(dot))) << n;
    EXPECT_NEAR(r.norm_squared, norm, 1e-3 * (1 + norm)) << n;
  }
}

TEST(VectorMath, TokenWeightedMeanIsNormalizedWeightedSum) {
  // Two chunks of 3 and 1 tokens: the mean leans three to one toward the first.
  const std::vector<float> a{1, 0, 0}, b{0, 1, 0};
  std::vector<float> sum(3, 0.0f);
  add_weighted(sum, a, 3.0f);
  add_weighted(sum, b, 1.0f);
  EXPECT_EQ(sum, (std::vector<float>{3, 1, 0}));
  normalize(sum);
  EXPECT_NEAR(sum[0], 3 / std::sqrt(10.0), 1e-6);
  EXPECT_NEAR(sum[1], 1 / std::sqrt(10.0), 1e-6);
  EXPECT_EQ(sum[2], 0.0f);
  double length = 0;
  for (float x : sum)
    length += static_cast<double>(x) * x;
  EXPECT_NEAR(length, 1.0, 1e-6);
  // The order in which chunks arrive does not matter beyond rounding.
  std::vector<float> reversed(3, 0.0f);
  add_weighted(reversed, b, 1.0f);
  add_weighted(reversed, a, 3.0f);
  normalize(reversed);
  for (std::size_t d = 0; d < 3; ++d)
    EXPECT_NEAR(reversed[d], sum[d], 1e-7);
}

TEST(VectorMath, NormalizeLeavesAZeroVectorAlone) {
  std::vector<float> zero(4, 0.0f);
  normalize(zero);
  EXPECT_EQ(zero, std::vector<float>(4, 0.0f));
  std::vector<float> v{3, 4};
  normalize(v);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
}

}  // namespace
}  // namespace lens::util
