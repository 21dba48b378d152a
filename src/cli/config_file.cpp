// lens-embed.toml → FileValues. The tables below are the one list of known keys.
#include "cli/config_file.h"

#include <fmt/core.h>
#include <toml++/toml.h>
#include <string_view>

namespace lens::cli {
namespace {

struct TopKey {
  std::string_view section, key;
  Sourced FileValues::*field;
};
constexpr TopKey k_top_keys[] = {
    {"database", "url", &FileValues::database},
    {"defaults", "provider", &FileValues::provider},
    {"defaults", "model", &FileValues::model},
    {"defaults", "batch_size", &FileValues::batch_size},
    {"defaults", "concurrency", &FileValues::concurrency},
    {"defaults", "max_attempts", &FileValues::max_attempts},
    {"defaults", "dimensions", &FileValues::dimensions},
    {"defaults", "long_input", &FileValues::long_input},
    {"defaults", "encoding_format", &FileValues::encoding_format},
    {"defaults", "timeout_seconds", &FileValues::timeout_seconds},
};

struct ProviderKey {
  std::string_view key;
  Sourced ProviderSection::*field;
};
constexpr ProviderKey k_provider_keys[] = {
    {"kind", &ProviderSection::kind},
    {"base_url", &ProviderSection::base_url},
    {"api_key_env", &ProviderSection::api_key_env},
    {"model", &ProviderSection::model},
    {"rpm", &ProviderSection::rpm},
    {"tpm", &ProviderSection::tpm},
    {"max_batch", &ProviderSection::max_batch},
    {"ca_cert", &ProviderSection::ca_cert},
};

// A scalar as the text phase two will parse; value_exact, because value<long long>() of a
// float would be a cast with undefined behaviour (found by the fuzzer).
Sourced from_node(const toml::node* node, const std::string& file) {
  if (!node) return {};
  std::string value;
  if (auto s = node->value_exact<std::string>())
    value = *s;
  else if (auto i = node->value_exact<long long>())
    value = std::to_string(*i);
  else if (auto d = node->value_exact<double>())
    value = fmt::format("{}", *d);
  else if (auto b = node->value_exact<bool>())
    value = *b ? "true" : "false";
  else
    return {};
  return {value, fmt::format("{}:{}", file, node->source().begin.line)};
}

ModelOverride model_override(const toml::table& t) {
  ModelOverride m;
  if (auto v = t["encoding"].value_exact<std::string>()) m.encoding = *v;
  if (auto v = t["max_input_tokens"].value_exact<long long>()) m.max_input_tokens = *v;
  if (auto v = t["dimensions"].value_exact<long long>()) m.dimensions = *v;
  // value<double>: an integer price (`= 1`) is a price too.
  if (auto v = t["usd_per_million_tokens"].value<double>()) m.usd_per_million_tokens = *v;
  return m;
}

}  // namespace

util::Result<FileValues> read_config_file(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return util::fail(util::ErrorCode::invalid_argument,
                      fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
  FileValues out;
  for (const auto& k : k_top_keys)
    out.*k.field = from_node(root[k.section][k.key].node(), path);
  if (auto* providers = root["providers"].as_table()) {
    for (auto& [name, node] : *providers) {
      auto* t = node.as_table();
      if (!t) {
        return util::fail(
            util::ErrorCode::invalid_argument,
            fmt::format("{}:{}: [providers.{}] must be a table", path, node.source().begin.line, name.str()));
      }
      ProviderSection p;
      p.name = std::string(name.str());
      for (const auto& k : k_provider_keys)
        p.*k.field = from_node(t->get(k.key), path);
      out.providers[p.name] = std::move(p);
    }
  }
  if (auto* models = root["models"].as_table()) {
    for (auto& [name, node] : *models) {
      if (auto* t = node.as_table()) out.models[std::string(name.str())] = model_override(*t);
    }
  }
  return out;
}

}  // namespace lens::cli
