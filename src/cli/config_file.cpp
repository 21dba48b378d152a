// lens-embed.toml → FileValues. The tables below are the one list of known keys.
#include "cli/config_file.h"

#include <fmt/core.h>
#include <toml++/toml.h>
#include <algorithm>
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

// A value of [source] or [output]: text, a list of texts, or what else it is (named in the
// mapping's error).
core::MappingValue mapping_value(const toml::node& node) {
  if (auto s = node.value_exact<std::string>()) return *s;
  if (const auto* array = node.as_array()) {
    std::vector<std::string> items;
    for (const auto& item : *array) {
      auto s = item.value_exact<std::string>();
      if (!s) return core::NotText{"a list holding something other than strings"};
      items.push_back(*s);
    }
    return items;
  }
  if (node.is_table()) return core::NotText{"a table"};
  if (node.is_integer()) return core::NotText{"an integer"};
  if (node.is_floating_point()) return core::NotText{"a number"};
  if (node.is_boolean()) return core::NotText{"a boolean"};
  return core::NotText{"a date or time"};
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
  for (std::string_view section : {"source", "output"}) {
    const toml::node* node = root.get(section);
    if (!node) continue;
    const auto* table = node->as_table();
    if (!table) {
      return util::fail(util::ErrorCode::invalid_argument,
                        fmt::format("{}:{}: {} must be a table ([{}] followed by its keys)", path,
                                    node->source().begin.line, section, section));
    }
    // In the file's order (a toml::table is sorted by key), so errors read top to bottom.
    std::vector<std::pair<std::uint32_t, core::MappingEntry>> entries;
    for (const auto& [key, value] : *table) {
      entries.push_back({value.source().begin.line,
                         {fmt::format("{}.{}", section, key.str()), mapping_value(value),
                          fmt::format("{}:{}", path, value.source().begin.line)}});
    }
    std::stable_sort(entries.begin(), entries.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& e : entries)
      out.mapping.push_back(std::move(e.second));
  }
  if (auto* models = root["models"].as_table()) {
    for (auto& [name, node] : *models) {
      if (auto* t = node.as_table()) out.models[std::string(name.str())] = model_override(*t);
    }
  }
  return out;
}

}  // namespace lens::cli
