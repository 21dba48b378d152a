// local-hash: deterministic, unit-length, lexical similarity, batch order preserved.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "provider/local_hash.h"

namespace lens::provider {
namespace {

std::vector<float> embed(std::string_view text, int dims = 384) {
  std::vector<float> v(static_cast<std::size_t>(dims));
  local_hash_embed(text, v);
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

TEST(LocalHash, DeterministicAndUnitLength) {
  const auto a = embed("How do I integrate x^2?");
  const auto b = embed("How do I integrate x^2?");
  EXPECT_EQ(a, b);
  EXPECT_NEAR(dot(a, a), 1.0, 1e-5);
}

TEST(LocalHash, CaseInsensitiveAndLexical) {
  EXPECT_EQ(embed("Photosynthesis in plants"), embed("photosynthesis IN PLANTS"));
  const auto q = embed("photosynthesis in green plants");
  EXPECT_GT(dot(q, embed("how does photosynthesis work in plants")),
            dot(q, embed("solve the quadratic equation")));
}

TEST(LocalHash, NoWordsStillGivesADeterministicUnitVector) {
  for (std::string_view text : {"   ...!!! ", "?", ""}) {
    const auto v = embed(text);
    EXPECT_NEAR(dot(v, v), 1.0, 1e-6) << "\"" << text << "\"";
    EXPECT_EQ(v, embed(text));
    EXPECT_FALSE(local_hash_has_features(text));
  }
  EXPECT_NE(embed("?"), embed("!")) << "the bytes are the feature: different marks, different vectors";
  EXPECT_TRUE(local_hash_has_features("x?"));
  EXPECT_TRUE(local_hash_has_features("\xc3\xa9"));
}

TEST(LocalHash, ProviderKeepsInputOrderAndDimensions) {
  LocalHashProvider p;
  std::vector<std::string> texts = {"alpha beta", "gamma delta", "epsilon"};
  EmbedRequest req;
  req.ticket = 7;
  for (const auto& t : texts)
    req.inputs.emplace_back(t);
  req.dimensions = 64;
  p.submit(req);
  EXPECT_EQ(p.in_flight(), 1u);
  auto done = p.poll(std::chrono::milliseconds(0));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(p.in_flight(), 0u);
  ASSERT_TRUE(done[0].result.has_value());
  const auto& ok = *done[0].result;
  EXPECT_EQ(done[0].ticket, 7u);
  EXPECT_EQ(ok.dimensions, 64);
  ASSERT_EQ(ok.vectors.size(), 3u * 64);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto expected = embed(texts[i], 64);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), ok.vectors.begin() + static_cast<long>(i * 64)));
  }
}

}  // namespace
}  // namespace lens::provider
