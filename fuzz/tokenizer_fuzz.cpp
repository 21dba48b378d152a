// libFuzzer target: the cl100k_base tokenizer on arbitrary bytes. Checks the promises of
// tokenizer.h: count == encode().size(), decode(encode(x)) == x for valid UTF-8, and
// truncate/chunk stay within their token limits and return prefixes/pieces of the text,
// and truncate's count is the kept prefix's exact count.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "util/utf8.h"

namespace {
const lens::tokenizer::Tokenizer& tok() {
  static const std::shared_ptr<const lens::tokenizer::Tokenizer> t = [] {
    auto r = lens::tokenizer::Tokenizer::load(lens::tokenizer::Encoding::cl100k_base);
    if (!r) std::abort();  // LENS_DATA_DIR must point at data/ (fuzz/run.sh sets it)
    return *r;
  }();
  return *t;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t limit = 1 + data[0] % 64;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto& t = tok();
  const auto ids = t.encode(text);
  if (t.count(text) != ids.size()) std::abort();
  if (lens::util::is_valid_utf8(text) && t.decode(ids) != text) std::abort();
  const auto truncated = t.truncate(text, limit);
  const std::string_view cut = truncated.text;
  if (cut.data() != text.data() || cut.size() > text.size() || t.count(cut) > limit) std::abort();
  if (truncated.tokens != t.count(cut)) std::abort();
  if (!lens::util::is_valid_utf8(text)) return 0;  // chunk's parity promise needs valid UTF-8
  for (std::string_view piece : t.chunk(text, limit, limit / 4)) {
    if (piece.data() < text.data() || piece.data() + piece.size() > text.data() + text.size()) std::abort();
    // Only a code point that alone needs more tokens than the limit may exceed it (tokenizer.h).
    if (t.count(piece) > limit && !t.truncate(piece, limit).text.empty()) std::abort();
  }
  return 0;
}
