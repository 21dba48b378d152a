// Exact tiktoken-compatible byte-level BPE (cl100k_base, o200k_base): count, encode,
// decode, truncate and chunk. Special-token strings in user text are ordinary text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace lens::tokenizer {

enum class Encoding { cl100k_base, o200k_base };

[[nodiscard]] util::Result<Encoding> parse_encoding(std::string_view name);
[[nodiscard]] std::string_view to_string(Encoding encoding);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads (once per process, then shared) the rank table of `encoding` and checks its
  // pinned sha256. Search order: $LENS_DATA_DIR/tokenizer, the install data dir,
  // <exe>/../share/lens-embed/tokenizer, the source tree's data/tokenizer.
  // On failure: not_found (no file) or permanent (hash mismatch, corrupt file).
  [[nodiscard]] static util::Result<std::shared_ptr<const Tokenizer>> load(Encoding encoding);

  // All methods are const and safe to call from several threads at once.
  // REQUIRES for exact parity: `text` is valid UTF-8 (invalid bytes never crash, but
  // tiktoken itself has no defined answer for them).
  [[nodiscard]] virtual std::size_t count(std::string_view text) const = 0;
  [[nodiscard]] virtual std::vector<std::uint32_t> encode(std::string_view text) const = 0;
  [[nodiscard]] virtual std::string decode(std::span<const std::uint32_t> ids) const = 0;
  // The longest prefix of `text` that is valid UTF-8 (never splits a code point) and
  // whose count() is <= max_tokens. Returns a view into `text`.
  [[nodiscard]] virtual std::string_view truncate(std::string_view text, std::size_t max_tokens) const = 0;
  // Consecutive pieces of at most max_tokens tokens each, covering `text`; each piece
  // after the first starts with the last `overlap` tokens of the one before.
  // REQUIRES: overlap < max_tokens.
  [[nodiscard]] virtual std::vector<std::string_view> chunk(std::string_view text, std::size_t max_tokens,
                                                            std::size_t overlap) const = 0;
  [[nodiscard]] virtual Encoding encoding() const = 0;
};

}  // namespace lens::tokenizer
