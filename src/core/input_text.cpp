// Input template. Plain text without role labels: labels cost tokens on every input
// and the user's words come first anyway, so a truncated input keeps the question.
#include "core/input_text.h"

#include "util/utf8.h"

namespace lens::core {

std::string build_input_text(const Exchange& exchange) {
  std::string text;
  text.reserve(exchange.user_content.size() + exchange.assistant_content.size() + 2);
  text += exchange.user_content;
  if (exchange.assistant_message_id && !exchange.assistant_content.empty()) {
    text += "\n\n";
    text += exchange.assistant_content;
  }
  if (!util::is_valid_utf8(text)) text = util::repair_utf8(text);
  return text;
}

}  // namespace lens::core
