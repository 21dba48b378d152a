// What the command line said, as CLI11 parsed it (app.cpp defines every flag). Phase one of
// the configuration (raw_config.h) reads it; commands read their own switches from it.
#pragma once

#include <optional>
#include <string>

namespace lens::cli {

// Optional values are unset when the flag was not given, so that the environment, .env,
// lens-embed.toml or a default can decide (raw_config.h).
struct Flags {
  std::optional<std::string> db, provider, model, base_url, config_path, long_input, encoding_format,
      log_format, log_file, index, ca_cert, metrics_addr, cancel_batch;
  std::optional<long long> batch_size, limit, concurrency, dimensions, max_attempts, rpm, tpm,
      timeout_seconds, unavailable_after, sweep_every, k, sample, batch_queue_tokens;
  bool force = false, dry_run = false, follow = false, json = false, quiet = false, insecure = false,
       retry = false, verbose = false, ids = false, no_wait = false, create = false, rehash = false,
       source_indexes = false, batch_api = false, cancel_all = false, track_changes = false,
       untrack_changes = false;
  std::string query;  // search QUERY
  std::string file;   // tokens FILE ("" or "-" for stdin)
};

// Inclusive limits of a whole-number setting. The flags' checks (app.cpp) and the values
// from every other source (settings.cpp) use the same constants, so they cannot disagree.
struct Bounds {
  long long min;
  long long max;
};
inline constexpr Bounds k_batch_size_bounds{1, 2048};  // OpenAI's inputs per request
inline constexpr Bounds k_concurrency_bounds{1, 1024};
inline constexpr Bounds k_max_attempts_bounds{1, 100};
inline constexpr Bounds k_unavailable_after_bounds{1, 86'400};  // seconds
inline constexpr Bounds k_sweep_every_bounds{1, 7 * 86'400};    // seconds

}  // namespace lens::cli
