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
// `timeout` for the answer. Called from one thread; `provider` must have nothing else in
// flight. On success: the vector as the provider returned it. On failure: the provider's
// classified error (configuration for 401/403/404, transient when it did not answer in time).
[[nodiscard]] util::Result<std::vector<float>> embed_one(provider::Provider& provider,
                                                         const tokenizer::Tokenizer& tokenizer,
                                                         const core::ModelSpec& model,
                                                         std::optional<int> dimensions, std::string_view text,
                                                         std::chrono::milliseconds timeout);

}  // namespace lens::pipeline
