// Edit distance by the two-row dynamic programme: the words are keys and command names.
#include "cli/suggest.h"

#include <algorithm>

#include "util/edit_distance.h"

namespace lens::cli {

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = 0;
  for (const auto& c : candidates) {
    const auto d = util::edit_distance(word, c);
    if (best.empty() || d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace lens::cli
