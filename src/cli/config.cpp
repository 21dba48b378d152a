// Configuration resolution. toml++ stays inside this file.
#include "cli/config.h"

#include <fmt/core.h>
#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "util/redact.h"

namespace lens::cli {
namespace {

using util::ErrorCode;

std::optional<std::string> env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::string upper(std::string s) {
  for (char& c : s)
    c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Sets `target` from the first of: flag, env vars, config node, default.
void pick(Sourced& target, const std::optional<std::string>& flag, std::string_view flag_name,
          std::initializer_list<std::string> env_names, const Sourced& from_file, std::string fallback) {
  if (flag) {
    target = {*flag, fmt::format("flag --{}", flag_name)};
    return;
  }
  for (const auto& name : env_names) {
    if (auto v = env(name)) {
      target = {*v, fmt::format("env {}", name)};
      return;
    }
  }
  if (from_file.is_set()) {
    target = from_file;
    return;
  }
  target = {std::move(fallback), "default"};
}

std::optional<std::string> num_flag(const std::optional<long long>& v) {
  if (!v) return std::nullopt;
  return std::to_string(*v);
}

struct FileValues {
  Sourced database, provider, model, batch_size, concurrency, max_attempts, dimensions, long_input,
      encoding_format, timeout_seconds;
  std::map<std::string, ProviderConfig> providers;
  std::map<std::string, ModelOverride> models;
};

Sourced from_node(const toml::node* node, const std::string& file) {
  if (!node) return {};
  const auto line = node->source().begin.line;
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
  return {value, fmt::format("{}:{}", file, line)};
}

util::Result<FileValues> read_file(const std::string& path) {
  FileValues out;
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return util::fail(ErrorCode::invalid_argument,
                      fmt::format("{}:{}: {}", path, e.source().begin.line, e.description()));
  }
  auto get = [&](std::string_view section, std::string_view key) -> Sourced {
    return from_node(root[section][key].node(), path);
  };
  out.database = get("database", "url");
  out.provider = get("defaults", "provider");
  out.model = get("defaults", "model");
  out.batch_size = get("defaults", "batch_size");
  out.concurrency = get("defaults", "concurrency");
  out.max_attempts = get("defaults", "max_attempts");
  out.dimensions = get("defaults", "dimensions");
  out.long_input = get("defaults", "long_input");
  out.encoding_format = get("defaults", "encoding_format");
  out.timeout_seconds = get("defaults", "timeout_seconds");
  if (auto* providers = root["providers"].as_table()) {
    for (auto& [name, node] : *providers) {
      auto* t = node.as_table();
      if (!t) {
        return util::fail(
            ErrorCode::invalid_argument,
            fmt::format("{}:{}: [providers.{}] must be a table", path, node.source().begin.line, name.str()));
      }
      ProviderConfig p;
      p.name = std::string(name.str());
      p.kind = from_node(t->get("kind"), path).value;
      p.base_url = from_node(t->get("base_url"), path);
      p.api_key_env = from_node(t->get("api_key_env"), path);
      p.model = from_node(t->get("model"), path);
      p.rpm = from_node(t->get("rpm"), path);
      p.tpm = from_node(t->get("tpm"), path);
      p.max_batch = from_node(t->get("max_batch"), path);
      out.providers[p.name] = std::move(p);
    }
  }
  if (auto* models = root["models"].as_table()) {
    for (auto& [name, node] : *models) {
      auto* t = node.as_table();
      if (!t) continue;
      ModelOverride m;
      if (auto v = (*t)["encoding"].value_exact<std::string>()) m.encoding = *v;
      if (auto v = (*t)["max_input_tokens"].value_exact<long long>()) m.max_input_tokens = *v;
      if (auto v = (*t)["dimensions"].value_exact<long long>()) m.dimensions = *v;
      if (auto v = (*t)["usd_per_million_tokens"].value<double>()) m.usd_per_million_tokens = *v;
      out.models[std::string(name.str())] = m;
    }
  }
  return out;
}

// The Lens compose setup's variables, when no URL is given.
std::optional<Sourced> compose_database() {
  const auto host = env("POSTGRES_HOST");
  const auto db = env("POSTGRES_DB");
  if (!host && !db) return std::nullopt;
  std::string conninfo;
  auto add = [&](const char* key, const std::optional<std::string>& v) {
    if (!v) return;
    std::string escaped;
    for (char c : *v) {
      if (c == '\'' || c == '\\') escaped.push_back('\\');
      escaped.push_back(c);
    }
    if (!conninfo.empty()) conninfo.push_back(' ');
    conninfo += fmt::format("{}='{}'", key, escaped);
  };
  add("host", host);
  add("port", env("POSTGRES_PORT"));
  add("user", env("POSTGRES_USER"));
  add("password", env("POSTGRES_PASSWORD"));
  add("dbname", db);
  if (auto pw = env("POSTGRES_PASSWORD")) util::register_secret(*pw);
  return Sourced{conninfo, "env POSTGRES_HOST/PORT/USER/PASSWORD/DB"};
}

}  // namespace

util::Result<Config> resolve_config(const Flags& flags) {
  Config c;
  FileValues file;
  std::string path;
  if (flags.config_path) {
    path = *flags.config_path;
    if (!std::filesystem::exists(path)) {
      return util::fail(ErrorCode::invalid_argument,
                        fmt::format("--config {}: no such file; create it or drop the flag", path));
    }
  } else if (auto p = env("LENS_CONFIG")) {
    path = *p;
  } else if (std::filesystem::exists("lens-embed.toml")) {
    path = "lens-embed.toml";
  }
  if (!path.empty()) {
    auto values = read_file(path);
    if (!values) return std::unexpected(values.error());
    file = std::move(*values);
    c.config_file = path;
  }
  c.models = file.models;

  pick(c.database, flags.db, "db", {"LENS_DATABASE_URL", "DATABASE_URL"}, file.database, "");
  if (!c.database.is_set()) {
    if (auto compose = compose_database())
      c.database = *compose;
    else
      c.database = {"sqlite:lens.db", "default"};
  }
  pick(c.provider, flags.provider, "provider", {"LENS_PROVIDER"}, file.provider, "local-hash");

  // The provider's own section: configured, or built in.
  const std::string& name = c.provider.value;
  ProviderConfig p;
  if (auto it = file.providers.find(name); it != file.providers.end()) p = it->second;
  p.name = name;
  if (p.kind.empty()) p.kind = name == "local-hash" ? "local-hash" : "openai";
  if (p.kind != "local-hash" && p.kind != "openai") {
    return util::fail(
        ErrorCode::invalid_argument,
        fmt::format("provider {}: kind must be \"openai\" or \"local-hash\", not \"{}\"", name, p.kind));
  }
  if (p.kind == "openai" && name != "openai" && name != "supermind" &&
      file.providers.find(name) == file.providers.end()) {
    return util::fail(ErrorCode::invalid_argument,
                      fmt::format("--provider {}: unknown provider; use local-hash, supermind, openai, "
                                  "or add [providers.{}] to lens-embed.toml",
                                  name, name));
  }
  const std::string prefix = upper(name);
  Sourced default_base = p.base_url;
  if (!default_base.is_set() && name == "openai") default_base = {"https://api.openai.com/v1", "default"};
  pick(p.base_url, flags.base_url, "base-url", {prefix + "_BASE_URL"}, default_base, "");
  if (!p.api_key_env.is_set()) p.api_key_env = {prefix + "_API_KEY", "default"};
  c.provider_config = p;

  const std::string default_model = p.kind == "local-hash" ? "local-hash-v1"
                                    : name == "openai"     ? "text-embedding-3-small"
                                                           : "text-embedding-3-large";
  Sourced file_model = p.model.is_set() ? p.model : file.model;
  pick(c.model, flags.model, "model", {"LENS_MODEL"}, file_model, default_model);

  if (auto key = env(p.api_key_env.value)) {
    c.api_key = {*key, "env " + p.api_key_env.value};
    util::register_secret(*key);
  }

  const bool remote = p.kind == "openai";
  pick(c.batch_size, num_flag(flags.batch_size), "batch-size", {"LENS_BATCH_SIZE"},
       p.max_batch.is_set() ? p.max_batch : file.batch_size, remote ? "256" : "512");
  pick(c.concurrency, num_flag(flags.concurrency), "concurrency", {"LENS_CONCURRENCY"}, file.concurrency,
       remote ? "16" : "1");
  // Tier-1 limits of text-embedding-3-large as a safe default for remote providers; the
  // provider's x-ratelimit-* headers then correct the buckets downward when needed.
  pick(c.rpm, num_flag(flags.rpm), "rpm", {prefix + "_RPM", "LENS_RPM"}, p.rpm, remote ? "3000" : "0");
  pick(c.tpm, num_flag(flags.tpm), "tpm", {prefix + "_TPM", "LENS_TPM"}, p.tpm, remote ? "1000000" : "0");
  pick(c.max_attempts, num_flag(flags.max_attempts), "max-attempts", {"LENS_MAX_ATTEMPTS"}, file.max_attempts,
       "6");
  pick(c.dimensions, num_flag(flags.dimensions), "dimensions", {"LENS_DIMENSIONS"}, file.dimensions, "");
  pick(c.long_input, flags.long_input, "long-input", {"LENS_LONG_INPUT"}, file.long_input, "truncate");
  pick(c.encoding_format, flags.encoding_format, "encoding-format", {"LENS_ENCODING_FORMAT"},
       file.encoding_format, "base64");
  pick(c.timeout_seconds, num_flag(flags.timeout_seconds), "timeout", {"LENS_TIMEOUT_SECONDS"},
       file.timeout_seconds, "120");
  c.insecure = flags.insecure ? Sourced{"true", "flag --insecure"} : Sourced{"false", "default"};
  if (auto v = env("LENS_INSECURE"); v && !flags.insecure) c.insecure = {*v, "env LENS_INSECURE"};

  // Registered early: whatever error or log line follows can never show these.
  if (auto u = env("PGPASSWORD")) util::register_secret(*u);
  return c;
}

std::string mask_database_url(const std::string& url) {
  return util::redact(url);
}

std::vector<std::pair<std::string, Sourced>> describe(const Config& c) {
  std::vector<std::pair<std::string, Sourced>> out;
  out.emplace_back("database", Sourced{mask_database_url(c.database.value), c.database.source});
  out.emplace_back("provider", c.provider);
  out.emplace_back("provider.kind", Sourced{c.provider_config.kind, "built in"});
  out.emplace_back("provider.base_url", c.provider_config.base_url);
  out.emplace_back("provider.api_key_env", c.provider_config.api_key_env);
  out.emplace_back("provider.api_key",
                   c.api_key.is_set() ? Sourced{"***", c.api_key.source} : Sourced{"(not set)", "default"});
  out.emplace_back("model", c.model);
  out.emplace_back("batch_size", c.batch_size);
  out.emplace_back("concurrency", c.concurrency);
  out.emplace_back("rpm", c.rpm);
  out.emplace_back("tpm", c.tpm);
  out.emplace_back("max_attempts", c.max_attempts);
  out.emplace_back("dimensions",
                   c.dimensions.is_set() ? c.dimensions : Sourced{"(model default)", "default"});
  out.emplace_back("long_input", c.long_input);
  out.emplace_back("encoding_format", c.encoding_format);
  out.emplace_back("timeout_seconds", c.timeout_seconds);
  out.emplace_back("insecure", c.insecure);
  out.emplace_back("config_file", Sourced{c.config_file.empty() ? "(none)" : c.config_file, "search"});
  return out;
}

}  // namespace lens::cli
