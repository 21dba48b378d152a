// Splits text into the pieces tiktoken's pattern for an encoding would find; the BPE then
// runs inside each piece. PCRE2 stays inside pretokenizer.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace lens::tokenizer {

class Pretokenizer {
 public:
  // Compiles (with JIT) the exact pattern of `encoding`. On failure: internal.
  [[nodiscard]] static util::Result<std::unique_ptr<Pretokenizer>> create(Encoding encoding);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  struct Match {
    std::size_t begin;
    std::size_t end;  // begin == end == text.size() when there is no further match
  };
  // Leftmost match at or after `pos`. REQUIRES: `text` is valid UTF-8 and `pos` is on a
  // code point boundary (the caller validates once; PCRE2's own check would be O(n) per call).
  [[nodiscard]] Match next(std::string_view text, std::size_t pos) const;

  // The pattern as compiled, for tests and documentation.
  [[nodiscard]] static std::string_view pattern(Encoding encoding);

 private:
  Pretokenizer() = default;
  void* code_ = nullptr;  // pcre2_code_8*, opaque so callers never see <pcre2.h>
};

}  // namespace lens::tokenizer
