// The fingerprint of what defines input texts; see input_definition.h.
#include "core/input_definition.h"

#include <fmt/core.h>

#include "util/sha256.h"

namespace lens::core {

std::string input_definition_fingerprint(const SourceMapping& m) {
  std::string in = "lens-embed input definition v1\n";
  // Name and length per field, so no two different definitions serialise alike.
  const auto field = [&](std::string_view name, std::string_view value) {
    in += fmt::format("{}={}:{}\n", name, value.size(), value);
  };
  field("texts", m.fingerprint());
  field("schema", m.messages().value.schema);
  field("relation", m.messages().value.name);
  field("id", m.id().value);
  field("conversation_id", m.conversation_id().value);
  field("role", m.role().value);
  field("content", m.content().value);
  field("created_at", m.created_at().value);
  return util::to_hex(util::sha256(in)).substr(0, 16);
}

}  // namespace lens::core
