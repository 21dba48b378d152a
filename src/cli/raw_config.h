// Phase one of the configuration: every setting as raw text with the place it came from.
// Precedence, highest first: flags > environment (a variable set by .env is reported as
// `.env:LINE`) > lens-embed.toml > defaults. Nothing is typed here; settings.h is phase two.
// (ripgrep's flags/lowargs.rs and hiargs.rs are the model.)
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/dotenv.h"
#include "cli/flags.h"
#include "core/source_mapping.h"
#include "util/result.h"

namespace lens::cli {

// A raw value and where it came from: "flag --db", "env LENS_DATABASE_URL", ".env:3",
// "lens-embed.toml:12", "default". An empty value means "not set".
struct Sourced {
  std::string value;
  std::string source = "default";
  [[nodiscard]] bool is_set() const { return !value.empty(); }
};

// [providers.NAME] of the config file, or a built-in provider.
struct ProviderSection {
  std::string name;
  Sourced kind;  // "local-hash" or "openai" (any OpenAI-compatible endpoint)
  Sourced base_url;
  Sourced api_key_env;  // name of the variable holding the key
  Sourced model;
  Sourced rpm, tpm, max_batch;
  Sourced ca_cert;             // PEM file of the CAs to trust for base_url (TLS)
  Sourced batch;               // "true": runs go through the Batch API (as --batch-api)
  Sourced batch_queue_tokens;  // enqueued-token limit of its Batch API queue
};

// [models."NAME"] of the config file: facts about a model the built-in table lacks or
// gets wrong, or an alias: NAME is what lens-embed stores rows under, `model` what the
// provider is asked for (e.g. [models."text-embedding-3-large-256"] model =
// "text-embedding-3-large", dimensions = 256). Raw text; settings.h types and checks it.
struct ModelOverride {
  Sourced model, encoding, max_input_tokens, dimensions, usd_per_million_tokens;
};

struct RawConfig {
  Sourced database;  // URL or conninfo; may hold a password: print mask_database_url(value)
  Sourced provider;
  ProviderSection provider_section;  // of `provider`
  Sourced model;
  Sourced api_key;  // the key itself, registered as a secret: never printed
  Sourced batch_size, concurrency, rpm, tpm, max_attempts, dimensions, long_input, encoding_format,
      timeout_seconds, insecure, unavailable_after, sweep_every, metrics_addr;
  std::map<std::string, ModelOverride> models;
  std::vector<core::MappingEntry> mapping;  // [source] and [output] of the file (settings.h checks them)
  Sourced config_file;                      // the file that was read; empty when none
};

// Resolves every setting from `flags`, the process environment (read with getenv, after
// .env was loaded; `dotenv` only names the line of what .env set) and the config file
// (--config, $LENS_CONFIG, or ./lens-embed.toml when it exists). Registers the API key and
// database passwords it sees with util::register_secret before returning.
// On failure: invalid_argument naming the file:line, the flag or the variable, and the fix
// (unreadable or malformed config file, --config naming a missing file, unknown provider,
// bad provider kind). Numbers and words are not checked here: settings.h does that.
[[nodiscard]] util::Result<RawConfig> resolve_config(const Flags& flags, const DotenvOrigins& dotenv = {});

// Every setting as (key, value with source) for `lens-embed config`: the API key shown as
// "***" and passwords in the database URL masked.
[[nodiscard]] std::vector<std::pair<std::string, Sourced>> describe(const RawConfig& config);

// The database URL or conninfo with its password masked, for printing.
[[nodiscard]] std::string mask_database_url(const std::string& url);

}  // namespace lens::cli
