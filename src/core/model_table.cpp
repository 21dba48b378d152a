// Built-in model table. Prices are USD per 1M input tokens as published by OpenAI.
#include "core/model_table.h"

namespace lens::core {

const std::vector<ModelSpec>& builtin_models() {
  static const std::vector<ModelSpec> k_models = [] {
    std::vector<ModelSpec> m;
    m.push_back({"text-embedding-3-small", "cl100k_base", 8191, 1536, true, 0.02});
    m.push_back({"text-embedding-3-large", "cl100k_base", 8191, 3072, true, 0.13});
    m.push_back({"text-embedding-ada-002", "cl100k_base", 8191, 1536, false, 0.10});
    // The offline lexical hasher: counted with cl100k so truncation behaves as online.
    m.push_back({"local-hash-v1", "cl100k_base", 8191, 384, true, 0.0});
    return m;
  }();
  return k_models;
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
