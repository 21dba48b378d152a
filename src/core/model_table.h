// What lens-embed knows about each embedding model: tokenizer, limits, size, price.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lens::core {

struct ModelSpec {
  std::string name;
  std::string encoding = "cl100k_base";  // tokenizer used to count and truncate
  int max_input_tokens = 8191;
  int default_dimensions = 1536;
  bool dimensions_adjustable = false;  // accepts the `dimensions` parameter
  double usd_per_million_tokens = 0.0;
  int max_inputs_per_request = 2048;
  // OpenAI counts a request's tokens as UTF-8 bytes / 4 for this cap.
  long max_request_tokens = 300'000;
};

// Built-in specs (OpenAI's published figures); nullopt for models we do not know.
[[nodiscard]] std::optional<ModelSpec> builtin_model(std::string_view name);
[[nodiscard]] const std::vector<ModelSpec>& builtin_models();

// The spec to use for `name`: the built-in one, or a generic one (cl100k_base,
// 8191 tokens, price unknown = 0) that the configuration may then override.
[[nodiscard]] ModelSpec model_or_default(std::string_view name);

}  // namespace lens::core
