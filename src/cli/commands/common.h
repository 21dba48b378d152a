// What several commands do the same way: open the database (read-only, or to write and
// migrate), load the model's tokenizer, find the (provider, model) pairs a command acts on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/backends.h"
#include "cli/dotenv.h"
#include "cli/flags.h"
#include "cli/raw_config.h"
#include "cli/settings.h"
#include "tokenizer/tokenizer.h"

namespace lens::cli {

// Opens settings.database with options.access (not read_only) and migrates it to the
// current schema.
// On failure: open_store's error, or the migration's (e.g. a newer schema: configuration).
[[nodiscard]] util::Result<std::unique_ptr<store::Store>> open_migrated(const Settings& settings,
                                                                        StoreOptions options);

// Opens settings.database read-only: no DDL, no file created, no lock taken. On failure:
// configuration when lens-embed's tables are not there ("run `lens-embed init`"), or
// open_store's error.
[[nodiscard]] util::Result<std::unique_ptr<store::Store>> open_read_only(const Settings& settings);

// The configuration of a command that acts on `pair` (failures --retry, search): `flags`
// set to its provider and model, and to the size of its rows when the configuration would
// give another known size (a model of unknown range is never asked for a size), then
// resolved again (with `dotenv`, as at start). On failure: resolve_config's error.
[[nodiscard]] util::Result<RawConfig> config_for_pair(Flags& flags, const store::PairSummary& pair,
                                                      const DotenvOrigins& dotenv);

// "supermind / text-embedding-3-large".
[[nodiscard]] std::string pair_name(const std::string& provider, const std::string& model);
// The pairs of `pairs` whose provider and model match the filters ("" matches any).
[[nodiscard]] std::vector<store::PairSummary> matching(const std::vector<store::PairSummary>& pairs,
                                                       const std::string& provider, const std::string& model);

// The tokenizer of the model's encoding. On failure: invalid_argument naming the model when
// the encoding is unknown, or the tokenizer's error when its rank table cannot be read.
[[nodiscard]] util::Result<std::shared_ptr<const tokenizer::Tokenizer>> load_tokenizer(
    const core::ModelSpec& spec);

}  // namespace lens::cli
