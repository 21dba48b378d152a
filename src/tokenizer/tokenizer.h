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

// Any thread. On success the encoding named `name` ("cl100k_base", "o200k_base"); on
// failure invalid_argument naming the accepted words.
[[nodiscard]] util::Result<Encoding> parse_encoding(std::string_view name);
// Any thread. The stable name of `encoding`; the view points at static storage.
[[nodiscard]] std::string_view to_string(Encoding encoding);

// What truncate() kept: a prefix of its argument and that prefix's exact token count, so a
// caller never counts the kept text again.
struct Truncated {
  std::string_view text;   // a view into truncate()'s argument: valid while that text lives
  std::size_t tokens = 0;  // == count(text), computed while truncating
};

// Thread safety: every method is const and may be called from several threads at once on
// one shared instance (per-thread match state lives inside). No method fails: the interface
// has no error channel because every byte string has a tokenization.
// Exactness: for valid UTF-8, count/encode/decode equal tiktoken's encode_ordinary. Invalid
// bytes never crash; each byte of an invalid sequence is a token piece of its own (tiktoken
// has no defined answer for them).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Any thread. Loads (once per process, then shared) the rank table of `encoding` and
  // checks its pinned sha256. Search order: $LENS_DATA_DIR/tokenizer, the install data dir,
  // <exe>/../share/lens-embed/tokenizer, the source tree's data/tokenizer.
  // On success: a tokenizer shared by every caller of the same encoding; the caller holds
  // one reference and may keep it as long as it likes.
  // On failure: not_found (no file in any directory, each tried path named) or permanent
  // (hash mismatch, corrupt file). Failures are not cached: a later call tries again.
  [[nodiscard]] static util::Result<std::shared_ptr<const Tokenizer>> load(Encoding encoding);

  // The number of tokens of `text`; equal to encode(text).size() without building it.
  [[nodiscard]] virtual std::size_t count(std::string_view text) const = 0;
  // The token ids of `text`, owned by the caller.
  [[nodiscard]] virtual std::vector<std::uint32_t> encode(std::string_view text) const = 0;
  // The bytes of `ids`, owned by the caller; decode(encode(s)) == s (invalid UTF-8 too: its
  // bytes are single-byte tokens). Special-token ids decode to their marker text; ids the
  // encoding does not know are dropped.
  [[nodiscard]] virtual std::string decode(std::span<const std::uint32_t> ids) const = 0;
  // The longest prefix of `text` that is valid UTF-8 at its end (never splits a code
  // point) and whose count() is <= max_tokens, with that count. The whole of `text` (and
  // count(text)) when it fits; an empty view when not even its first code point fits.
  // The cost follows the kept prefix, not the text: a 10 MB text cut to 8k tokens is not
  // encoded in full. Returns a view into `text`: the caller keeps `text` alive.
  [[nodiscard]] virtual Truncated truncate(std::string_view text, std::size_t max_tokens) const = 0;
  // Consecutive pieces of at most max_tokens tokens each, covering `text` in order; each
  // piece after the first starts with the last `overlap` tokens of the one before. A single
  // code point that alone needs more than max_tokens tokens becomes a piece of its own
  // (the only piece that may exceed the budget). Empty for an empty `text`.
  // Views into `text`: the caller keeps `text` alive.
  // REQUIRES: overlap < max_tokens (a larger overlap is clamped to max_tokens - 1; a
  // max_tokens of 0 is taken as 1).
  [[nodiscard]] virtual std::vector<std::string_view> chunk(std::string_view text, std::size_t max_tokens,
                                                            std::size_t overlap) const = 0;
  [[nodiscard]] virtual Encoding encoding() const = 0;
};

}  // namespace lens::tokenizer
