// UTF-8 helpers the tokenizer needs: strict validation (same rules as PCRE2's check, so
// PCRE2 can skip its own) and code point boundary stepping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lens::tokenizer::utf8 {

// Length of the longest valid UTF-8 prefix of text[pos..].
[[nodiscard]] inline std::size_t valid_run_end(std::string_view text, std::size_t pos) {
  const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = pos;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time: most chat text is mostly ASCII.
    if (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const std::uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlongs
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return n;
}

[[nodiscard]] inline bool is_continuation(char c) {
  return (static_cast<std::uint8_t>(c) & 0xC0) == 0x80;
}

// Largest code point boundary <= pos (a boundary is any byte that is not a continuation).
[[nodiscard]] inline std::size_t floor_boundary(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return text.size();
  std::size_t back = 0;
  while (pos > 0 && is_continuation(text[pos]) && back < 3) {
    --pos;
    ++back;
  }
  return pos;
}

// Smallest code point boundary > pos (text.size() at most).
[[nodiscard]] inline std::size_t next_boundary(std::string_view text, std::size_t pos) {
  if (pos >= text.size()) return text.size();
  ++pos;
  std::size_t fwd = 0;
  while (pos < text.size() && is_continuation(text[pos]) && fwd < 3) {
    ++pos;
    ++fwd;
  }
  return pos;
}

// Code point ending just before `end` (end > 0), or U+FFFD if it is malformed.
[[nodiscard]] inline char32_t last_code_point(std::string_view text, std::size_t end) {
  std::size_t b = end - 1;
  std::size_t back = 0;
  while (b > 0 && is_continuation(text[b]) && back < 3) {
    --b;
    ++back;
  }
  const std::size_t len = end - b;
  if (valid_run_end(text.substr(0, end), b) != end) return 0xFFFD;
  const auto* s = reinterpret_cast<const std::uint8_t*>(text.data() + b);
  switch (len) {
    case 1:
      return s[0];
    case 2:
      return ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    case 3:
      return ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    default:
      return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
  }
}

// Unicode White_Space, the set tiktoken's \s means.
[[nodiscard]] inline bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace lens::tokenizer::utf8
