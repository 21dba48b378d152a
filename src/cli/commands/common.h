// What several commands do the same way: open and migrate the database, load the model's
// tokenizer.
#pragma once

#include <memory>

#include "cli/backends.h"
#include "cli/settings.h"
#include "tokenizer/tokenizer.h"

namespace lens::cli {

// Opens settings.database and migrates it to the current schema.
// On failure: open_store's error, or the migration's (e.g. a newer schema: configuration).
[[nodiscard]] util::Result<std::unique_ptr<store::Store>> open_migrated(const Settings& settings,
                                                                        const StoreOptions& options = {});

// The tokenizer of the model's encoding. On failure: invalid_argument naming the model when
// the encoding is unknown, or the tokenizer's error when its rank table cannot be read.
[[nodiscard]] util::Result<std::shared_ptr<const tokenizer::Tokenizer>> load_tokenizer(
    const core::ModelSpec& spec);

}  // namespace lens::cli
