// Input templates rendered. Plain text without role labels by default: labels cost tokens on
// every input and the user's words come first anyway, so a truncated input keeps the question.
#include "core/input_text.h"

#include "util/utf8.h"

namespace lens::core {
namespace {

const std::string& column_value(const std::map<std::string, std::string>& columns, const std::string& name) {
  static const std::string k_missing;
  const auto it = columns.find(name);
  return it == columns.end() ? k_missing : it->second;
}

}  // namespace

std::string build_input_text(const Exchange& exchange, const SourceMapping& mapping) {
  const bool reply = exchange.assistant_message_id && !exchange.assistant_content.empty();
  const InputTemplate& t = reply ? mapping.reply_template().value : mapping.no_reply_template().value;
  std::string text;
  text.reserve(exchange.user_content.size() + (reply ? exchange.assistant_content.size() : 0) + 16);
  for (const auto& part : t.parts()) {
    if (!part.side) {
      text += part.literal;
    } else if (*part.side == Side::user) {
      text += part.column.empty() ? exchange.user_content : column_value(exchange.user_columns, part.column);
    } else {
      text += part.column.empty() ? exchange.assistant_content
                                  : column_value(exchange.assistant_columns, part.column);
    }
  }
  if (!util::is_valid_utf8(text)) text = util::repair_utf8(text);
  return text;
}

std::string build_input_text(const Exchange& exchange) {
  static const SourceMapping k_default;
  return build_input_text(exchange, k_default);
}

}  // namespace lens::core
