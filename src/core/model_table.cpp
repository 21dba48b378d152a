// Built-in model table. Prices are USD per 1M input tokens as published by OpenAI.
#include "core/model_table.h"

namespace lens::core {

const std::vector<ModelSpec>& builtin_models() {
  static const std::vector<ModelSpec> k_models = [] {
    std::vector<ModelSpec> m;
    // name, encoding, max input tokens, default, min and max dimensions, USD per 1M tokens
    m.push_back({"text-embedding-3-small", "cl100k_base", 8191, 1536, 1, 1536, 0.02});
    m.push_back({"text-embedding-3-large", "cl100k_base", 8191, 3072, 1, 3072, 0.13});
    m.push_back({"text-embedding-ada-002", "cl100k_base", 8191, 1536, 1536, 1536, 0.10});
    // The offline lexical hasher: counted with cl100k so truncation behaves as online.
    // Any size its hashing fills sensibly (provider/local_hash.h, k_local_hash_max_dimensions).
    m.push_back({"local-hash-v1", "cl100k_base", 8191, 384, 1, 65536, 0.0});
    return m;
  }();
  return k_models;
}

bool accepts_dimensions(const ModelSpec& spec, int dimensions) {
  if (spec.max_dimensions == 0) return dimensions > 0;
  return dimensions >= spec.min_dimensions && dimensions <= spec.max_dimensions;
}

std::string dimensions_range_text(const ModelSpec& spec) {
  if (spec.max_dimensions == 0) return "any";
  if (spec.min_dimensions == spec.max_dimensions) return "only " + std::to_string(spec.max_dimensions);
  return std::to_string(spec.min_dimensions) + ".." + std::to_string(spec.max_dimensions);
}

std::optional<ModelSpec> builtin_model(std::string_view name) {
  for (const auto& m : builtin_models()) {
    if (m.name == name) return m;
  }
  return std::nullopt;
}

ModelSpec model_or_default(std::string_view name) {
  if (auto m = builtin_model(name)) return *m;
  ModelSpec spec;
  spec.name = std::string(name);
  return spec;
}

}  // namespace lens::core
