// `run --batch-api`: the cli side of a backfill through the Batch API (batch/batch_run.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "cli/flags.h"
#include "cli/raw_config.h"
#include "cli/settings.h"
#include "pipeline/options.h"
#include "provider/openai/batch_client.h"
#include "store/store.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace lens::cli {

// --batch-api, or [providers.NAME] batch = true.
[[nodiscard]] bool batch_api_requested(const Flags& flags, const RawConfig& config);

// Before anything is opened: what a batch run cannot do (yet), as invalid_argument (exit 2)
// naming the way out: a provider without the Batch API (local-hash),
// --long-input chunk, a bad batch_queue_tokens.
// failures --retry (`only_failures`) stays synchronous and passes.
[[nodiscard]] util::Status check_batch_mode(const Flags& flags, const RawConfig& config, const Settings& s,
                                            bool only_failures);

// The enqueued-token limit assumed for `model` when none is configured.
[[nodiscard]] std::int64_t default_queue_tokens(const std::string& model);

// Seconds since an ISO-8601 UTC timestamp (a BatchRecord's created_at); 0 if unreadable.
[[nodiscard]] std::int64_t batch_age_seconds(const std::string& iso);
// "42s", "17m", "3h05m".
[[nodiscard]] std::string batch_age_text(std::int64_t seconds);

// The Batch API client of the configured provider (an OpenAI-compatible one with a base
// URL and a key). On failure: invalid_argument naming what is missing.
[[nodiscard]] util::Result<std::unique_ptr<provider::openai::BatchClient>> make_batch_client(
    const Settings& s);

// Runs the batch driver on `store` (opened read_write and migrated) and prints its summary.
// Returns the exit status: 0 when every eligible exchange is embedded or permanently failed,
// 1 when batches are still in flight (with a line saying how many items and to rerun) or
// work is left, 2 for configuration (a provider without the Batch API: 404).
[[nodiscard]] int run_batch(const Flags& flags, const RawConfig& config, const Settings& s,
                            const pipeline::RunOptions& options, store::Store& store,
                            const tokenizer::Tokenizer& tokenizer, const std::string& arguments,
                            const std::string& worker);

}  // namespace lens::cli
