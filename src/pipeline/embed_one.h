// One text in, one vector out: what `search` needs to embed its query with the same
// provider, model, tokenizer limit and dimensions as the stored rows.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include "core/model_table.h"
#include "provider/provider.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace lens::pipeline {

// Truncates `text` to the model's input limit, sends it as one request and waits up to
// `timeout` for the answer. Blocks the calling thread; `provider` is the caller's, used by
// this thread alone and with nothing else in flight.
// On success: the vector (`dimensions` values when set) as the provider returned it,
// owned by the caller. On failure: the provider's classified error (configuration for
// 401/403/404, ...), not retried; transient when it did not answer within `timeout`, in
// which case the request is cancelled (provider.cancel_all()).
[[nodiscard]] util::Result<std::vector<float>> embed_one(provider::Provider& provider,
                                                         const tokenizer::Tokenizer& tokenizer,
                                                         const core::ModelSpec& model,
                                                         std::optional<int> dimensions, std::string_view text,
                                                         std::chrono::milliseconds timeout);

}  // namespace lens::pipeline
