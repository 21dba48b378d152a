// Effective configuration: flags > environment (incl. .env) > lens-embed.toml > defaults,
// with the source of every value kept for `lens-embed config`.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace lens::cli {

// Where a value came from, e.g. "flag --db", "env LENS_DATABASE_URL",
// "lens-embed.toml:12", "default".
struct Sourced {
  std::string value;
  std::string source = "default";
  [[nodiscard]] bool is_set() const { return !value.empty(); }
};

// What the command line said (phase one of parsing: raw values only).
struct Flags {
  std::optional<std::string> db, provider, model, base_url, config_path, long_input, encoding_format,
      log_format, log_file, index;
  std::optional<long long> batch_size, limit, concurrency, dimensions, max_attempts, rpm, tpm,
      timeout_seconds, k;
  bool force = false, dry_run = false, follow = false, json = false, quiet = false, insecure = false,
       retry = false, verbose = false, ids = false;
};

struct ProviderConfig {
  std::string name;
  std::string kind;  // "local-hash" or "openai" (any OpenAI-compatible endpoint)
  Sourced base_url;
  Sourced api_key_env;  // name of the variable holding the key
  Sourced model;
  Sourced rpm, tpm, max_batch;
};

struct ModelOverride {  // [models."name"] in the config file
  std::optional<std::string> encoding;
  std::optional<long long> max_input_tokens, dimensions;
  std::optional<double> usd_per_million_tokens;
};

struct Config {
  Sourced database;  // URL or conninfo; secrets inside are masked when printed
  Sourced provider;
  ProviderConfig provider_config;
  Sourced model;
  Sourced api_key;  // the value itself: never printed
  Sourced batch_size, concurrency, rpm, tpm, max_attempts, dimensions, long_input, encoding_format,
      timeout_seconds, insecure;
  std::map<std::string, ModelOverride> models;
  std::string config_file;  // the file that was read, or empty
};

// Resolves everything. `flags` are the command line; the environment is read with
// getenv (after .env was loaded). Errors: invalid_argument naming the file:line or the
// variable and the fix.
[[nodiscard]] util::Result<Config> resolve_config(const Flags& flags);

// Lines "key = value  (source)" with secrets masked, for `lens-embed config`.
[[nodiscard]] std::vector<std::pair<std::string, Sourced>> describe(const Config& config);

// The database URL with its password masked (for printing).
[[nodiscard]] std::string mask_database_url(const std::string& url);

}  // namespace lens::cli
