// The Levenshtein distance, for "did you mean": unknown commands, config keys and mapping
// keys name the known word nearest to the misspelt one.
#pragma once

#include <cstddef>
#include <string_view>

namespace lens::util {

// The number of single-character insertions, deletions and substitutions that turn `a` into
// `b`. O(|a|·|b|) time, O(|b|) memory: for short words.
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace lens::util
