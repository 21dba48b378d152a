// Phase two of the configuration: the raw values of raw_config.h typed and checked once,
// each error naming the value's source. Commands read settings, never raw text.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "cli/raw_config.h"
#include "core/model_table.h"
#include "core/source_mapping.h"
#include "metrics/listen_address.h"
#include "pipeline/options.h"
#include "util/result.h"

namespace lens::cli {

enum class ProviderKind { local_hash, openai };

// What a provider client needs (backends.h builds it).
struct ProviderSettings {
  std::string name;  // "local-hash", "supermind", or [providers.NAME]
  ProviderKind kind = ProviderKind::local_hash;
  std::string model;        // asked of the provider: Settings::model, or the model an alias names
  std::string base_url;     // may be empty: an openai-kind provider then refuses to start
  std::string api_key_env;  // the variable that holds (or should hold) the key
  std::string api_key;      // secret; may be empty (same as base_url)
  std::string encoding_format = "base64";
  std::chrono::seconds timeout{120};
  bool verify_tls = true;
  std::string ca_cert;  // PEM file of the CAs to trust; empty: the system's
  int concurrency = 1;  // requests in flight at most
  // Sent to the provider when set: --dimensions (any source), or an alias's size that
  // differs from its model's own.
  std::optional<int> dimensions;
};

// How a run paces and shapes its requests.
struct RunSettings {
  std::size_t batch_size = 512;
  pipeline::RateLimits rate;
  int max_attempts = 6;
  pipeline::LongInput long_input = pipeline::LongInput::truncate;
  std::chrono::milliseconds unavailable_after{30'000};
  std::chrono::milliseconds sweep_every{std::chrono::minutes(15)};  // --follow with change tracking
  std::optional<metrics::ListenAddress> metrics_addr;               // --metrics-addr; unset: no endpoint
};

// The parts of the configuration a command uses; only those are checked, so that a value a
// command ignores (LENS_BATCH_SIZE for `status`) cannot stop it.
struct Uses {
  bool provider = false;
  bool run = false;
  bool dimensions = false;  // --dimensions alone (init sizes a pgvector column); implied by the others
};

struct Settings {
  std::string database;        // URL or conninfo as configured (backends.h parses it); may hold a password
  std::string provider;        // name
  std::string model;           // name rows are stored under
  core::ModelSpec model_spec;  // built-in or generic spec with [models."name"] applied
  int dimensions = 0;          // of the vectors this configuration gives (checked against the model)
  // Whether `dimensions` is a fact (a built-in model, --dimensions, or [models] dimensions)
  // rather than the generic guess for a model nothing is known about.
  bool dimensions_known = false;
  core::SourceMapping mapping;                        // [source] and [output], always checked
  std::optional<ProviderSettings> provider_settings;  // set when Uses::provider
  std::optional<RunSettings> run;                     // set when Uses::run
};

// Types and checks the parts `uses` asks for; the names, the model spec, the dimensions
// (--dimensions and [models."NAME"] against the model table's range) and the source
// mapping always (a bad [source] is an error of the file, whatever the command).
// On failure: invalid_argument naming the flag, the value and its source, e.g.
// "--batch-size 0 (from env LENS_BATCH_SIZE): must be 1..2048", "--dimensions 5000 (from
// flag --dimensions): text-embedding-3-large gives 1..3072 dimensions", or
// core::make_source_mapping's.
[[nodiscard]] util::Result<Settings> make_settings(const RawConfig& raw, Uses uses);

// A whole number in `s` (optional leading spaces and sign, then digits only), or nullopt
// when it is anything else or out of range.
[[nodiscard]] std::optional<long long> parse_whole_number(std::string_view s);

}  // namespace lens::cli
