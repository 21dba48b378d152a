// prepare: input text, exact tokens, truncation or chunks, sha256 and the route.
#include "pipeline/prepare.h"

#include <algorithm>

#include "core/input_text.h"
#include "util/utf8.h"

namespace lens::pipeline {

PreparedInput prepare(core::Exchange exchange, const RunOptions& options,
                      const tokenizer::Tokenizer& tokenizer) {
  PreparedInput in;
  // Blank by Unicode's White_Space but not by SQL's trim(): recorded once, so the store
  // stops offering it until it is edited.
  const bool blank = util::is_blank(exchange.user_content);
  if (!blank) in.text = core::build_input_text(exchange, options.mapping);  // before the ids are moved out
  in.user_message_id = std::move(exchange.user_message_id);
  in.assistant_message_id = std::move(exchange.assistant_message_id);
  in.source_version = std::move(exchange.source_version);
  in.had_row = exchange.stored_sha256.has_value();
  if (blank) {
    in.route = Route::empty_input;
    return in;
  }

  const auto max_tokens = static_cast<std::size_t>(std::max(1, options.model.max_input_tokens));
  // truncate returns the whole text with its count when it fits, and its cost follows the
  // kept prefix: one call both measures a normal input and cuts a huge one.
  const tokenizer::Truncated cut = tokenizer.truncate(in.text, max_tokens);
  std::size_t count = cut.tokens;
  if (cut.text.size() < in.text.size()) {
    if (options.long_input == LongInput::chunk) {
      in.chunked = true;
      count = tokenizer.count(in.text);  // the row records the whole input's tokens
    } else {
      in.truncated = true;
      in.text.resize(cut.text.size());
    }
  }
  in.token_count = static_cast<std::int32_t>(count);
  in.sha256 = util::sha256(in.text);

  if (!options.scope.force && exchange.stored_sha256 && *exchange.stored_sha256 == in.sha256) {
    in.route = Route::unchanged;
    return in;
  }
  in.route = Route::work;
  if (in.chunked) {
    const std::size_t overlap = std::min(options.chunk_overlap_tokens, max_tokens / 2);
    const std::string_view text = in.text;
    for (std::string_view piece : tokenizer.chunk(text, max_tokens, overlap)) {
      in.pieces.push_back({static_cast<std::size_t>(piece.data() - text.data()), piece.size(),
                           static_cast<std::int64_t>(tokenizer.count(piece))});
    }
  } else {
    in.pieces.push_back({0, in.text.size(), static_cast<std::int64_t>(count)});
  }
  return in;
}

core::EmbeddingRow make_row(const PreparedInput& input, std::vector<float> embedding) {
  core::EmbeddingRow row;
  row.user_message_id = input.user_message_id;
  row.assistant_message_id = input.assistant_message_id;
  row.content_sha256 = input.sha256;
  row.token_count = input.token_count;
  row.truncated = input.truncated;
  row.source_version = input.source_version;
  row.embedding = std::move(embedding);
  return row;
}

core::RowTouch make_touch(const PreparedInput& input) {
  return core::RowTouch{input.user_message_id, input.assistant_message_id, input.source_version,
                        input.sha256};
}

core::Failure make_failure(const PreparedInput& input, core::FailureReason reason, std::string detail) {
  return core::Failure{input.user_message_id, reason, std::move(detail), input.source_version};
}

}  // namespace lens::pipeline
