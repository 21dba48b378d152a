// The input template: what string is embedded for an exchange.
#pragma once

#include <string>

#include "core/types.h"

namespace lens::core {

// The user's content, then, when the exchange has an answer, a blank line and the
// answer's content. Invalid UTF-8 is repaired (U+FFFD) so the text can be sent as JSON
// and tokenized. Truncation happens after this, so a cut keeps the user's beginning.
[[nodiscard]] std::string build_input_text(const Exchange& exchange);

}  // namespace lens::core
