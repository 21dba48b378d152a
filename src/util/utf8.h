// UTF-8 validation and repair: text from SQLite may hold any bytes, but JSON, the
// tokenizer and the provider need valid UTF-8.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lens::util {

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view text);

// Copy of `text` with every ill-formed sequence replaced by U+FFFD (the maximal-subpart
// rule of Unicode §3.9, as browsers and Python's "replace" do).
[[nodiscard]] std::string repair_utf8(std::string_view text);

// Length of the longest prefix of `text` (at most `max_bytes`) that ends on a code point
// boundary. REQUIRES: text is valid UTF-8.
[[nodiscard]] std::size_t utf8_floor(std::string_view text, std::size_t max_bytes);

// True when `text` holds nothing but white space: ASCII space, \t \n \v \f \r, and the
// Unicode White_Space code points (NBSP, U+2000..U+200A, U+2028/9, U+3000, ...).
[[nodiscard]] bool is_blank(std::string_view text);

}  // namespace lens::util
