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
  // The sizes the model can return (`dimensions` parameter); min == max: fixed, the
  // parameter is not accepted. 0..0 for a model we know nothing about: any size is
  // passed on, and the provider is the judge.
  int min_dimensions = 0;
  int max_dimensions = 0;
  double usd_per_million_tokens = 0.0;
  int max_inputs_per_request = 2048;
  // OpenAI counts a request's tokens as UTF-8 bytes / 4 for this cap.
  long max_request_tokens = 300'000;
};

// Whether `spec` is known to accept `dimensions`: always for a model of unknown range.
[[nodiscard]] bool accepts_dimensions(const ModelSpec& spec, int dimensions);
// "1..3072", or "only 1536" for a fixed size; "any" for an unknown range.
[[nodiscard]] std::string dimensions_range_text(const ModelSpec& spec);

// Built-in specs (OpenAI's published figures); nullopt for models we do not know.
[[nodiscard]] std::optional<ModelSpec> builtin_model(std::string_view name);
[[nodiscard]] const std::vector<ModelSpec>& builtin_models();

// The spec to use for `name`: the built-in one, or a generic one (cl100k_base,
// 8191 tokens, price unknown = 0) that the configuration may then override.
[[nodiscard]] ModelSpec model_or_default(std::string_view name);

}  // namespace lens::core
