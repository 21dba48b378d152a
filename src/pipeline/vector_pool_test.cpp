// VectorPool: buffers come back and are written again, never more than the bound kept.
#include "pipeline/vector_pool.h"

#include <gtest/gtest.h>

namespace lens::pipeline {
namespace {

TEST(VectorPool, ACopyLandsInABufferGivenBack) {
  VectorPool pool(2);
  const std::vector<float> a{1, 2, 3}, b{4, 5, 6};
  std::vector<float> first = pool.copy_of(a);  // nothing pooled yet: a new buffer
  EXPECT_EQ(first, a);
  const float* buffer = first.data();
  pool.give(std::move(first));
  EXPECT_EQ(pool.kept(), 1u);
  std::vector<float> second = pool.copy_of(b);
  EXPECT_EQ(second, b);
  EXPECT_EQ(second.data(), buffer);  // the same memory, rewritten
  EXPECT_EQ(pool.kept(), 0u);
}

TEST(VectorPool, KeepsNoMoreThanItsBound) {
  VectorPool pool(2);
  for (int i = 0; i < 5; ++i)
    pool.give(std::vector<float>(8, 1.0f));
  pool.give(std::vector<float>());  // no buffer: nothing to keep
  EXPECT_EQ(pool.kept(), 2u);
}

}  // namespace
}  // namespace lens::pipeline
