// embed_one: a single synchronous request through the asynchronous Provider interface.
#include "pipeline/embed_one.h"

#include <algorithm>

namespace lens::pipeline {

util::Result<std::vector<float>> embed_one(provider::Provider& provider,
                                           const tokenizer::Tokenizer& tokenizer,
                                           const core::ModelSpec& model, std::optional<int> dimensions,
                                           std::string_view text, std::chrono::milliseconds timeout) {
  const auto max_tokens = static_cast<std::size_t>(std::max(1, model.max_input_tokens));
  provider::EmbedRequest request;
  request.ticket = 1;
  request.inputs.push_back(tokenizer.truncate(text, max_tokens).text);
  request.dimensions = dimensions;
  provider.submit(std::move(request));

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    for (auto& completion : provider.poll(std::chrono::milliseconds(100))) {
      if (!completion.result) return std::unexpected(completion.result.error().error);
      return std::move(completion.result->vectors);
    }
  }
  provider.cancel_all();
  return util::fail(util::ErrorCode::transient, "the provider did not answer in time");
}

}  // namespace lens::pipeline
