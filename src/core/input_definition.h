// What defines the input texts of a mapping, as one value a store records per (provider,
// model): a run that finds it changed since the last complete pass re-reads and hashes every
// input once (as `run --rehash`), so a changed template is noticed without the flag.
#pragma once

#include <string>

#include "core/source_mapping.h"

namespace lens::core {

// 16 hex digits over SourceMapping::fingerprint() (templates, reply rule, filter, role
// lists) and the names that decide which rows are read and how they pair: the relation, and
// the id, conversation_id, role, content and created_at columns (content is the text;
// role, conversation_id, created_at and id decide which assistant message is a user
// message's reply, and which of several). Left out, because no input text depends on them:
// updated_at (it only says when to look), id_type, [output] schema.
// A rename of a column in both the database and the mapping changes this although no text
// changes: the cost is one read and hash of every input, never a provider call, which is
// cheaper than missing a `content` now mapped to another column.
// Versioned: a change of this serialisation makes every database re-read once.
[[nodiscard]] std::string input_definition_fingerprint(const SourceMapping& mapping);

}  // namespace lens::core
