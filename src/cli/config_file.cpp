// lens-embed.toml → FileValues. The tables below are the one list of known keys: a key or
// table the file has and they lack is an error naming it, its file:line and the nearest
// known key.
#include "cli/config_file.h"

#include <fmt/core.h>
#include <fmt/format.h>
#include <toml++/toml.h>
#include <algorithm>
#include <string_view>
#include <vector>

#include "cli/suggest.h"

namespace lens::cli {
namespace {

using util::ErrorCode;

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
    {"defaults", "unavailable_after", &FileValues::unavailable_after},
    {"defaults", "sweep_every", &FileValues::sweep_every},
    {"defaults", "metrics_addr", &FileValues::metrics_addr},
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
    {"batch", &ProviderSection::batch},
    {"batch_queue_tokens", &ProviderSection::batch_queue_tokens},
};

struct ModelKey {
  std::string_view key;
  Sourced ModelOverride::*field;
};
constexpr ModelKey k_model_keys[] = {
    {"model", &ModelOverride::model},
    {"encoding", &ModelOverride::encoding},
    {"max_input_tokens", &ModelOverride::max_input_tokens},
    {"dimensions", &ModelOverride::dimensions},
    {"usd_per_million_tokens", &ModelOverride::usd_per_million_tokens},
};

// Tables whose keys another reader checks (the source mapping of issue 12).
constexpr std::string_view k_tables_read_elsewhere[] = {"source", "output"};

// Tables made of one table per name: [providers.NAME], [models."NAME"].
constexpr std::string_view k_named_tables[] = {"providers", "models"};

util::Error at(const std::string& file, const toml::node& node, const std::string& what) {
  return {ErrorCode::invalid_argument, fmt::format("{}:{}: {}", file, node.source().begin.line, what)};
}

// "unknown key "bach_size" in [defaults]; the nearest known key is "batch_size"".
util::Error unknown(const std::string& file, const toml::node& node, std::string_view key,
                    std::string_view where, const std::vector<std::string>& known) {
  return at(file, node,
            fmt::format("unknown {} \"{}\"{}; the nearest known one is \"{}\" (known: {})",
                        where.empty() ? "table or key" : "key", key,
                        where.empty() ? "" : fmt::format(" in [{}]", where), nearest(key, known),
                        fmt::join(known, ", ")));
}

// A scalar as the text phase two will parse; value_exact, because value<long long>() of a
// float would be a cast with undefined behaviour (found by the fuzzer). An array or a
// table where a value belongs is an error.
util::Result<Sourced> from_node(const toml::node* node, const std::string& file, std::string_view name) {
  if (!node) return Sourced{};
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
    return std::unexpected(at(file, *node, fmt::format("{} must be a string, a number or true/false", name)));
  return Sourced{value, fmt::format("{}:{}", file, node->source().begin.line)};
}

// Every key of `table` must be one of `known`.
util::Status only_known(const toml::table& table, const std::string& file, std::string_view where,
                        const std::vector<std::string>& known) {
  for (const auto& [key, node] : table) {
    if (std::find(known.begin(), known.end(), key.str()) == known.end())
      return std::unexpected(unknown(file, node, key.str(), where, known));
  }
  return {};
}

std::vector<std::string> section_keys(std::string_view section) {
  std::vector<std::string> keys;
  for (const auto& k : k_top_keys) {
    if (k.section == section) keys.emplace_back(k.key);
  }
  return keys;
}

template <typename Keys>
std::vector<std::string> names_of(const Keys& keys) {
  std::vector<std::string> out;
  for (const auto& k : keys)
    out.emplace_back(k.key);
  return out;
}

// The tables and keys of the whole file against the lists above.
util::Status check_known(const toml::table& root, const std::string& file) {
  std::vector<std::string> top;
  for (const auto& k : k_top_keys) {
    if (std::find(top.begin(), top.end(), k.section) == top.end()) top.emplace_back(k.section);
  }
  for (auto t : k_named_tables)
    top.emplace_back(t);
  for (auto t : k_tables_read_elsewhere)
    top.emplace_back(t);
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    if (std::find(top.begin(), top.end(), name) == top.end())
      return std::unexpected(unknown(file, node, name, "", top));
    if (std::find(std::begin(k_tables_read_elsewhere), std::end(k_tables_read_elsewhere), name) !=
        std::end(k_tables_read_elsewhere))
      continue;
    const auto* table = node.as_table();
    if (!table) return std::unexpected(at(file, node, fmt::format("[{}] must be a table", name)));
    if (name == "providers" || name == "models") {
      const auto known = name == "providers" ? names_of(k_provider_keys) : names_of(k_model_keys);
      for (const auto& [entry, entry_node] : *table) {
        const std::string where = fmt::format("{}.{}", name, entry.str());
        const auto* t = entry_node.as_table();
        if (!t) return std::unexpected(at(file, entry_node, fmt::format("[{}] must be a table", where)));
        if (auto s = only_known(*t, file, where, known); !s) return s;
      }
      continue;
    }
    if (auto s = only_known(*table, file, name, section_keys(name)); !s) return s;
  }
  return {};
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
    return util::fail(ErrorCode::invalid_argument,
                      fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
  if (auto s = check_known(root, path); !s) return std::unexpected(s.error());
  FileValues out;
  for (const auto& k : k_top_keys) {
    auto v = from_node(root[k.section][k.key].node(), path, fmt::format("[{}] {}", k.section, k.key));
    if (!v) return std::unexpected(v.error());
    out.*k.field = std::move(*v);
  }
  if (auto* providers = root["providers"].as_table()) {
    for (auto& [name, node] : *providers) {
      const auto& t = *node.as_table();  // check_known made sure
      ProviderSection p;
      p.name = std::string(name.str());
      for (const auto& k : k_provider_keys) {
        auto v = from_node(t.get(k.key), path, fmt::format("[providers.{}] {}", p.name, k.key));
        if (!v) return std::unexpected(v.error());
        p.*k.field = std::move(*v);
      }
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
      const auto& t = *node.as_table();
      ModelOverride m;
      for (const auto& k : k_model_keys) {
        auto v = from_node(t.get(k.key), path, fmt::format("[models.\"{}\"] {}", name.str(), k.key));
        if (!v) return std::unexpected(v.error());
        m.*k.field = std::move(*v);
      }
      out.models[std::string(name.str())] = std::move(m);
    }
  }
  return out;
}

}  // namespace lens::cli
