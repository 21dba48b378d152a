// prepare: one exchange as read from the store → the input to send and what to do with
// it. A pure function (no I/O, no threads, no clock), so the batch and streaming drivers
// share it and it is tested without either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"
#include "pipeline/options.h"
#include "tokenizer/tokenizer.h"
#include "util/sha256.h"

namespace lens::pipeline {

// What the run does with a prepared exchange.
enum class Route {
  empty_input,  // blank by Unicode's White_Space: record an empty_input failure, send nothing
  unchanged,    // the stored row's hash equals this input's: refresh its markers, send nothing
  work,         // embed: new, stale (input changed) or forced
};

// One exchange's input, owned by value (safe to move between threads and queues).
struct PreparedInput {
  // A piece of `text` sent as one provider input: the whole text, or one chunk of it with
  // --long-input chunk. Offsets, not views, so moving the PreparedInput keeps them valid.
  struct Piece {
    std::size_t offset = 0;
    std::size_t size = 0;
    std::int64_t tokens = 0;  // exact count of this piece
  };

  Route route = Route::work;
  std::string user_message_id;
  std::optional<std::string> assistant_message_id;
  std::string source_version;
  bool had_row = false;  // the store holds a row for it (work: stale or forced, not new)

  // Empty for empty_input; otherwise the input as sent (after truncation) and hashed.
  std::string text;
  util::Sha256 sha256{};
  std::int32_t token_count = 0;  // exact tokens of `text` (all of it, also when chunked)
  bool truncated = false;        // cut to the model's limit (LongInput::truncate)
  bool chunked = false;          // over the limit and split (LongInput::chunk)
  std::vector<Piece> pieces;     // route == work only; in order, together covering `text`

  [[nodiscard]] std::string_view piece_text(std::size_t i) const {
    return std::string_view(text).substr(pieces[i].offset, pieces[i].size);
  }
};

// Builds the input of `exchange` (core::build_input_text with options.mapping's templates:
// UTF-8 repaired), fits it to
// options.model.max_input_tokens (truncate, or chunk with options.chunk_overlap_tokens),
// hashes it and routes it: blank user content → empty_input; stored hash equal (and not
// options.scope.force) → unchanged; else work. The hash is of the input as sent, so a
// truncated input is unchanged when the same truncation was stored.
// Any thread; never fails (every text has a tokenization). Uses only the `model`,
// `mapping`, `long_input`, `chunk_overlap_tokens` and `scope.force` fields of `options`.
[[nodiscard]] PreparedInput prepare(core::Exchange exchange, const RunOptions& options,
                                    const tokenizer::Tokenizer& tokenizer);

// The records the writer stores for a prepared input, copying its ids and markers.
[[nodiscard]] core::EmbeddingRow make_row(const PreparedInput& input, std::vector<float> embedding);
[[nodiscard]] core::RowTouch make_touch(const PreparedInput& input);
// `detail` is stored as given: the caller redacts what came from outside.
[[nodiscard]] core::Failure make_failure(const PreparedInput& input, core::FailureReason reason,
                                         std::string detail);

}  // namespace lens::pipeline
