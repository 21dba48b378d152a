// The input text: what string is embedded for an exchange, rendered from the mapping's
// templates (source_mapping.h).
#pragma once

#include <string>

#include "core/source_mapping.h"
#include "core/types.h"

namespace lens::core {

// The exchange rendered with mapping.reply_template() when it has a reply, else with
// mapping.no_reply_template(). A reply whose content is empty (or NULL) counts as none, as it
// always has. {user} and {assistant} are the messages' contents; {user.COLUMN} and
// {assistant.COLUMN} come from exchange.user_columns / assistant_columns ("" when absent:
// the store fills every column of mapping.user_columns() / assistant_columns(), NULL as "").
// Invalid UTF-8 is repaired (U+FFFD) so the text can be sent as JSON and tokenized.
// Truncation happens after this, so a cut keeps the beginning, where the user's words are.
[[nodiscard]] std::string build_input_text(const Exchange& exchange, const SourceMapping& mapping);

// With the default mapping: the user's content, then, when the exchange has a reply, a blank
// line and the reply's content ("{user}\n\n{assistant}", or "{user}").
[[nodiscard]] std::string build_input_text(const Exchange& exchange);

}  // namespace lens::core
