// "Did you mean": the known word nearest to a misspelt one, for unknown commands and
// unknown keys of lens-embed.toml.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lens::cli {

// The Levenshtein distance of two (short) words.
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` (the first of equals); "" when there are none.
[[nodiscard]] std::string nearest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace lens::cli
